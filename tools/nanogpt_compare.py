#!/usr/bin/env python3
"""Run Python nanoGPT's train.py, eager and compiled, and this port on the same config, data,
device and iterations, and set their speed and memory side by side.

  .venv/bin/python tools/nanogpt_compare.py CONFIG.yaml --nanogpt DIR [--iters N] [--out DIR]
      [--nanogpt-modes eager,compiled] [--key=value ...]

Any --key=value is a config override for every side, as `nanogpt train` takes it. nanoGPT runs
with compile=False (eager) and compile=True (torch.compile, nanoGPT's default; on the CPU it
needs a C++ compiler), each a side of its own. The tool prints a markdown table (ms/iter,
tokens/s, peak memory, first and last loss, wall time; the port against each nanoGPT side) and
writes OUT/compare.json, OUT/compare.md and OUT/compare.png (bar charts of ms/iter and peak
memory, the loss curves). Every figure comes from the runs:

- ms/iter: the median of the iterations each side logs, leaving out the first --warmup
  (default: 5 or a tenth of the iterations, whichever is more; torch.compile's first
  iterations are its compilation) and every iteration that ran an evaluation; tokens/s = gradient_accumulation_steps * batch_size * block_size / that median.
- peak memory: the peak resident set of each process as the kernel counts it (wait4 on the
  child; for the port also the VmHWM it logs per window, see run_port); on CUDA also the caching allocator's peak allocated bytes: nanoGPT's
  torch.cuda.max_memory_allocated (tools/nanogpt_runner.py prints it at exit), the port's
  largest cuda_peak_allocated_bytes in metrics.jsonl.

nanoGPT runs unmodified from a scratch copy of the checkout (tools/nanogpt_setup.py: the config
translation and data this tool shares with tools/compare_nanogpt.py, which compares losses
digit by digit).
docs/compare.md describes the options and the measurements. Needs torch, and matplotlib for the
PNG: the project's venv with `tools/setup.sh --tests`.
"""

import argparse
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_nanogpt  # noqa: E402  (nanoGPT's log lines, the warmup floor)
import nanogpt_setup as translate  # noqa: E402  (config translation, data, nanoGPT copy, threads)
import plot_metrics  # noqa: E402

RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nanogpt_runner.py")
RUNNER_CUDA_LINE = re.compile(r"^nanogpt_runner: (cuda:\d+) max_memory_allocated_bytes=(\d+) "
                              r"max_memory_reserved_bytes=(\d+)")
OVERRIDE = re.compile(r"^--([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
MIB = 1024.0 * 1024.0
# nanoGPT's sides: (key in the JSON, name in the table, its compile setting)
NANOGPT_MODES = {"eager": ("nanogpt_eager", "nanoGPT eager", False),
                 "compiled": ("nanogpt_compiled", "nanoGPT compiled", True)}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Speed and memory of this port and Python nanoGPT on the same config, side by side. "
                    "Any --key=value is a config override for both sides.", allow_abbrev=False)
    parser.add_argument("config", help="YAML config, e.g. configs/train_shakespeare_char_cpu.yaml")
    parser.add_argument("--nanogpt", required=True, metavar="DIR", help="a nanoGPT checkout (only read)")
    parser.add_argument("--iters", type=int, default=50, help="iterations 0..N-1 on each side (default: %(default)s)")
    parser.add_argument("--out", default="compare-out", metavar="DIR",
                        help="folder for compare.json, compare.md, compare.png and the runs (default: %(default)s)")
    parser.add_argument("--binary", default="build/nanogpt", help="this port's binary (default: %(default)s)")
    parser.add_argument("--python", default=sys.executable, help="Python with torch for nanoGPT (default: %(default)s)")
    parser.add_argument("--threads", type=int, help="torch threads on both sides (default: the config's num_threads, else all cores)")
    parser.add_argument("--blas-threads", type=int, help="OPENBLAS_NUM_THREADS on both sides (default: --threads)")
    parser.add_argument("--data-dir", help="prepared dataset folder (train.bin, val.bin, meta.json or meta.pkl)")
    parser.add_argument("--input", help="text to prepare a char dataset from when --data-dir is not given")
    parser.add_argument("--warmup", type=int, help="iterations left out of the timing (default: max(5, iters/10))")
    parser.add_argument("--repeat", type=int, default=1, help="run port, nanoGPT, port, ... this many times each (default: 1)")
    parser.add_argument("--nanogpt-modes", default="eager,compiled", metavar="LIST",
                        help="nanoGPT sides to run: eager (compile=False), compiled (compile=True) or both "
                             "(default: %(default)s)")
    parser.add_argument("--no-png", action="store_true", help="skip the PNG (no matplotlib needed)")
    args, extra = parser.parse_known_args(argv)
    try:
        args.overrides = parse_overrides(extra)
    except ValueError as error:
        parser.error(str(error))
    if args.iters < 1 or args.repeat < 1:
        parser.error("--iters and --repeat must be at least 1")
    if args.warmup is None:
        args.warmup = default_warmup(args.iters)
    modes = [m.strip() for m in args.nanogpt_modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in NANOGPT_MODES]
    if unknown or not modes or len(set(modes)) != len(modes):
        parser.error(f"--nanogpt-modes '{args.nanogpt_modes}': expected eager, compiled or eager,compiled")
    args.peers = [NANOGPT_MODES[m] for m in NANOGPT_MODES if m in modes]
    return args


def parse_overrides(extra):
    """['--dropout=0.0', ...] -> [('dropout', '0.0'), ...]; anything else is an error."""
    overrides = []
    for item in extra:
        m = OVERRIDE.match(item)
        if not m:
            raise ValueError(f"unrecognized argument '{item}' (config overrides are --key=value)")
        overrides.append((m.group(1), m.group(2)))
    return overrides


def default_warmup(iters):
    return max(compare_nanogpt.WARMUP_ITERS, math.ceil(iters / 10))


def parse_runner_cuda_peaks(lines):
    """tools/nanogpt_runner.py's lines -> {'cuda:0': {'allocated_bytes': N, 'reserved_bytes': M}}."""
    peaks = {}
    for line in lines:
        if m := RUNNER_CUDA_LINE.match(line):
            peaks[m.group(1)] = {"allocated_bytes": int(m.group(2)), "reserved_bytes": int(m.group(3))}
    return peaks


def summarize_run(iters, evals, n_iters, warmup, eval_interval, tokens_per_iter):
    """Speed and losses of one run from its per-iteration records ({iter: {"loss", "ms"}})."""
    timed = [iters[i]["ms"] for i in sorted(iters)
             if warmup <= i < n_iters and not (eval_interval > 0 and i % eval_interval == 0)]
    median_ms = statistics.median(timed) if timed else None
    return {"timed_iters": len(timed), "median_ms": median_ms,
            "tokens_per_s": tokens_per_iter / (median_ms / 1000.0) if median_ms else None,
            "first_loss": iters[0]["loss"] if 0 in iters else None,
            "last_loss": iters[n_iters - 1]["loss"] if n_iters - 1 in iters else None,
            "missing_iters": [i for i in range(n_iters) if i not in iters],
            "losses": {i: iters[i]["loss"] for i in sorted(iters)},
            "val_losses": {i: evals[i]["val_loss"] for i in sorted(evals)}}


def ratio(a, b):
    return a / b if a is not None and b else None


def build_table(port_runs, peer_runs, n_iters, warmup, cuda):
    """Rows of the side-by-side table. peer_runs: {side key: [run per repeat]} of the nanoGPT
    sides, in table order. Each row holds the port's value per run, each side's value per run
    and the port/side ratio per run pair (None for losses), all measured."""
    def values(runs, key, scale=1.0):
        return [None if r[key] is None else r[key] * scale for r in runs]

    def row(label, key, spec, scale=1.0, with_ratio=True):
        port = values(port_runs, key, scale)
        peers = {side: values(runs, key, scale) for side, runs in peer_runs.items()}
        ratios = {side: [ratio(p, n) for p, n in zip(port, nano)] for side, nano in peers.items()} if with_ratio else None
        return {"key": key, "metric": label, "port": port, "peers": peers, "ratios": ratios, "format": spec}

    timed = f"median of iters {warmup}..{n_iters - 1}, no eval" if warmup < n_iters else "no timed iters"
    rows = [row(f"ms/iter ({timed})", "median_ms", ".1f"),
            row("tokens/s", "tokens_per_s", ",.0f"),
            row("peak RSS (MiB, from the OS)", "peak_rss_bytes", ".1f", 1 / MIB)]
    if cuda:
        rows.append(row("CUDA max allocated (MiB)", "cuda_peak_allocated_bytes", ".1f", 1 / MIB))
    rows += [row("first loss (iter 0)", "first_loss", ".4f", with_ratio=False),
             row(f"last loss (iter {n_iters - 1})", "last_loss", ".4f", with_ratio=False),
             row("wall time (s, start to exit)", "wall_s", ".1f")]
    return rows


def format_cell(values, spec):
    return " / ".join("-" if v is None else format(v, spec) for v in values)


def markdown_table(rows, names):
    """names: {side key: name in the table} of the nanoGPT sides, in table order."""
    header = ["metric", "port"] + list(names.values()) + [f"port / {name}" for name in names.values()]
    lines = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    for r in rows:
        cells = [r["metric"], format_cell(r["port"], r["format"])]
        cells += [format_cell(r["peers"][side], r["format"]) for side in names]
        cells += [format_cell(r["ratios"][side], ".2f") if r["ratios"] is not None else "" for side in names]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def comparison_json(setup, port_runs, peer_runs, rows):
    """Everything the table came from: the set-up, each run of each side, and the table itself."""
    return {**setup, "runs": {"port": port_runs, **peer_runs},
            "table": [{k: r[k] for k in ("key", "metric", "port", "peers", "ratios")} for r in rows]}


def run_measured(command, cwd, log_path, env):
    """Run one side to completion with its output in log_path. The peak resident set is the
    OS's own for this child (wait4), so it belongs to this run only."""
    load_before = os.getloadavg()[0]  # other work on the machine shows in the times; record it
    print(f"  $ (cd {cwd} && {' '.join(command)})\n  log: {log_path}  load average: {load_before:.2f}", flush=True)
    start = time.monotonic()
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    seconds = time.monotonic() - start
    if process.returncode != 0:
        with open(log_path) as f:
            sys.exit(f"error: exit code {process.returncode}:\n{f.read()[-3000:]}")
    rss_unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return {"command": command, "log": log_path, "wall_s": seconds, "peak_rss_bytes": usage.ru_maxrss * rss_unit,
            "load_average_before": load_before, "load_average_after": os.getloadavg()[0]}


def check_tokens_per_iter(log_path, expected):
    logged = compare_nanogpt.logged_tokens_per_iter(log_path)
    if logged != expected:
        sys.exit(f"error: {log_path} says {logged} tokens per iteration, expected {expected}")


def run_port(args, data_dir, run_dir, env, threads):
    out_dir = os.path.join(run_dir, "port-out")
    command = [os.path.abspath(args.binary), "train", os.path.abspath(args.config)]
    command += [f"--{k}={v}" for k, v in args.overrides]
    command += [f"--max_iters={args.iters - 1}", "--log_interval=1", "--wandb_log=false",
                f"--out_dir={out_dir}", f"--data_dir={os.path.abspath(data_dir)}", f"--num_threads={threads}"]
    result = run_measured(command, os.getcwd(), os.path.join(run_dir, "port.log"), env)
    metrics = plot_metrics.read_metrics(os.path.join(out_dir, "metrics.jsonl"))
    result["cuda_peak_allocated_bytes"] = largest_logged(metrics, "cuda_peak_allocated_bytes")
    result["logged_peak_tensor_bytes"] = largest_logged(metrics, "peak_tensor_bytes")  # JSON only
    # The port resets the kernel's high-water mark (VmHWM) after each log line to report per-window
    # peaks, so at exit the kernel only knows the last window's. Its logged VmHWM of every window
    # (with log_interval=1: every iteration) holds the rest; the run's peak is the larger.
    result["logged_peak_rss_bytes"] = largest_logged(metrics, "peak_rss_bytes")
    result["exit_peak_rss_bytes"] = result["peak_rss_bytes"]
    result["peak_rss_bytes"] = max(result["peak_rss_bytes"], result["logged_peak_rss_bytes"] or 0)
    return result, metrics


def largest_logged(metrics, key):
    """A peak field of the port's iter records; each holds the peak of its own log window."""
    values = [r[key] for r in metrics["iters"].values() if r.get(key) is not None]
    return max(values) if values else None


def run_nanogpt(args, config, copy_dir, run_dir, env, threads, side, compile_model):
    train_args = translate.nanogpt_args(config, args.iters, args.nanogpt, os.path.join(run_dir, f"{side}-out"),
                                        compile_model=compile_model)
    command = [args.python, "-u", RUNNER, "--threads", str(threads)] + train_args
    result = run_measured(command, copy_dir, os.path.join(run_dir, f"{side}.log"), env)
    with open(result["log"]) as f:
        lines = f.readlines()
    iters, evals = compare_nanogpt.parse_nanogpt_log(lines)
    device = config["device"] if ":" in config["device"] else config["device"] + ":0"
    result["cuda_peak_allocated_bytes"] = parse_runner_cuda_peaks(lines).get(device, {}).get("allocated_bytes")
    return result, {"iters": iters, "evals": evals}


def write_png(path, rows, names, first_metrics, title, cuda):
    """Bars of ms/iter and peak memory (CUDA max allocated on CUDA, else peak RSS), one per run,
    above the loss curves of the first run of each side. names: {side key: name}, port first;
    first_metrics: {side key: metrics of its first run}."""
    plt = plot_metrics.import_pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    by_key = {r["key"]: r for r in rows}
    memory_row = by_key["cuda_peak_allocated_bytes" if cuda else "peak_rss_bytes"]
    for ax, r, ylabel in ((axes[0][0], by_key["median_ms"], "ms per iteration"), (axes[0][1], memory_row, "MiB")):
        columns = [r["port"]] + [r["peers"][side] for side in names if side != "port"]
        repeats = len(r["port"])
        width = 0.8 / repeats
        for k in range(repeats):
            xs = [i + (k - (repeats - 1) / 2) * width for i in range(len(columns))]
            heights = [column[k] or 0.0 for column in columns]
            bars = ax.bar(xs, heights, width * 0.9, color=[f"C{i}" for i in range(len(columns))],
                          alpha=max(0.3, 1.0 - 0.25 * k))
            ax.bar_label(bars, labels=[format(h, r["format"]) for h in heights], fontsize="small")
        ax.set_xticks(range(len(columns)), list(names.values()))
        ax.set_title(r["metric"] + (f" ({repeats} runs each)" if repeats > 1 else ""))
        ax.set_ylabel(ylabel)
    plot_metrics.draw_loss_curves(axes[1][0], axes[1][1], [(names[side], first_metrics[side]) for side in names])
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    if not args.no_png:
        try:
            plot_metrics.import_pyplot()
        except plot_metrics.MetricsError as error:
            sys.exit(f"error: {error}; or pass --no-png")
    config = translate.resolved_config(args.binary, args.config, args.overrides)
    if config["init_from"] != "scratch":
        sys.exit(f"error: init_from is '{config['init_from']}'; the comparison needs 'scratch'")
    threads = args.threads or (config["num_threads"] if config["num_threads"] > 0 else os.cpu_count())
    blas_threads = args.blas_threads or threads
    cuda = config["device"].startswith("cuda")
    out = os.path.abspath(args.out)
    work = os.path.join(out, "work")
    os.makedirs(work, exist_ok=True)
    data_dir = translate.dataset_folder(args.binary, args.data_dir, args.input, config, work)
    tokens_per_iter = config["gradient_accumulation_steps"] * config["batch_size"] * config["block_size"]
    copy_dir, vocab_size = translate.copy_nanogpt_checkout(args.nanogpt, data_dir, config["dataset"], work)
    env = translate.thread_env(threads, blas_threads)
    translate.nanogpt_args(config, args.iters, args.nanogpt, "out")  # a config nanoGPT cannot take fails now
    print(f"config: {args.config} {' '.join(f'--{k}={v}' for k, v in args.overrides)}\n"
          f"model: n_layer={config['n_layer']} n_head={config['n_head']} n_embd={config['n_embd']} "
          f"block_size={config['block_size']} batch_size={config['batch_size']} dropout={config['dropout']} "
          f"dtype={config['dtype']} device={config['device']}; nanoGPT sides: "
          f"{', '.join(f'{name} (compile={compile_model})' for _, name, compile_model in args.peers)}\n"
          f"iterations 0..{args.iters - 1}, {tokens_per_iter:,} tokens/iter, {threads} torch thread(s), "
          f"OpenBLAS {blas_threads}; vocab_size from meta.pkl: {vocab_size}; data {data_dir}")

    names = {"port": "port", **{side: name for side, name, _ in args.peers}}
    runs = {side: [] for side in names}
    metrics = {side: [] for side in names}
    for k in range(args.repeat):
        run_dir = os.path.join(work, f"run{k + 1}")
        os.makedirs(run_dir, exist_ok=True)
        for key, compile_model in [("port", None)] + [(side, c) for side, _, c in args.peers]:
            name = names[key]
            print(f"run {k + 1}/{args.repeat}: {name}")
            if key == "port":
                result, run_metrics = run_port(args, data_dir, run_dir, env, threads)
            else:
                result, run_metrics = run_nanogpt(args, config, copy_dir, run_dir, env, threads, key, compile_model)
            check_tokens_per_iter(result["log"], tokens_per_iter)
            result.update(summarize_run(run_metrics["iters"], run_metrics["evals"], args.iters, args.warmup,
                                        config["eval_interval"], tokens_per_iter))
            if result["missing_iters"]:
                print(f"warning: {name} logged no loss for iterations {result['missing_iters']}")
            runs[key].append(result)
            metrics[key].append(run_metrics)

    peer_runs = {side: runs[side] for side, _, _ in args.peers}
    rows = build_table(runs["port"], peer_runs, args.iters, args.warmup, cuda)
    table = markdown_table(rows, {side: name for side, name, _ in args.peers})
    setup = {"config_path": args.config, "overrides": dict(args.overrides), "config": config,
             "iters": args.iters, "warmup_iters": args.warmup, "repeat": args.repeat, "threads": threads,
             "blas_threads": blas_threads, "tokens_per_iter": tokens_per_iter, "data_dir": data_dir,
             "nanogpt_checkout": os.path.abspath(args.nanogpt), "binary": os.path.abspath(args.binary),
             "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                         "load_average_at_end": os.getloadavg()}}
    print("\n" + table)
    with open(os.path.join(out, "compare.json"), "w") as f:
        json.dump(comparison_json(setup, runs["port"], peer_runs, rows), f, indent=1)
    with open(os.path.join(out, "compare.md"), "w") as f:
        f.write(table + "\n")
    written = ["compare.json", "compare.md"]
    if not args.no_png:
        title = (f"{os.path.basename(args.config)}, {args.iters} iters, {config['device']}, "
                 f"{threads} thread(s), OpenBLAS {blas_threads}")
        write_png(os.path.join(out, "compare.png"), rows, names, {side: metrics[side][0] for side in names}, title,
                  cuda)
        written.append("compare.png")
    print(f"\nwritten to {out}: {', '.join(written)} (runs and logs in {work})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
