#!/usr/bin/env python3
"""Train the same config with this port and with Python nanoGPT; compare losses and speed.

Both sides start from torch.manual_seed(1337), build the same model, draw the same batches
in the same order and take the same AdamW steps, so their per-iteration training losses
should agree to float rounding. The tool prints the losses side by side, the largest
difference, and the median time per iteration of each side.

Python nanoGPT's train.py runs unmodified from a scratch copy of the checkout; a small
runner sets the thread count and prints the loss with more digits (patched in memory).

The config translation and the data both sides read come from tools/nanogpt_setup.py. Needs
only the standard library and torch (for the nanoGPT side): the project's venv, which
tools/setup.sh makes. Example:

  .venv/bin/python tools/compare_nanogpt.py --nanogpt-dir ../nanoGPT \
      --config configs/train_shakespeare_char_cpu.yaml --iters 50 --threads 1 \
      --input ../shared/data/tinyshakespeare/input.txt
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace

from nanogpt_setup import copy_nanogpt_checkout, dataset_folder, nanogpt_args, resolved_config, thread_env

# Iterations at the start that are not timed (nanoGPT also lets the loop "settle" for 5).
WARMUP_ITERS = 5
NANOGPT_SEED = 1337

ITER_LINE = re.compile(r"^iter (\d+): loss (\S+), time ([0-9.]+)ms")
EVAL_LINE = re.compile(r"^step (\d+): train loss (\S+), val loss (\S+)")
TOKENS_LINE = re.compile(r"^tokens per iteration will be: ([0-9,]+)")

# The runner that executes nanoGPT's train.py. Only the loss format of the log line is
# changed, in memory, so that the comparison sees every digit of the float32 loss.
RUNNER_SOURCE = '''\
import os
import sys
import torch

sys.path.insert(0, os.getcwd())  # train.py imports model.py from its own folder, the cwd
torch.set_num_threads({threads})
with open("train.py") as f:
    source = f.read()
short_format = "loss {{lossf:.4f}}"
if source.count(short_format) != 1:
    sys.exit("compare runner: expected exactly one '%s' in train.py" % short_format)
source = source.replace(short_format, "loss {{lossf!r}}")
sys.argv = ["train.py"] + sys.argv[1:]
exec(compile(source, "train.py", "exec"), {{"__name__": "__main__", "__file__": "train.py"}})
'''


def parse_args():
    parser = argparse.ArgumentParser(
        description="Compare this port's training losses and speed with Python nanoGPT's.")
    parser.add_argument("--nanogpt-dir", help="a nanoGPT checkout (without it only this port is measured)")
    parser.add_argument("--python", default=sys.executable,
                        help="Python with torch that runs nanoGPT (default: this one, %(default)s)")
    parser.add_argument("--binary", default="build/nanogpt", help="this port's binary (default: %(default)s)")
    parser.add_argument("--config", required=True, help="YAML config, e.g. configs/train_shakespeare_char_cpu.yaml")
    parser.add_argument("--iters", type=int, default=50, help="iterations to run and compare (default: %(default)s)")
    parser.add_argument("--threads", type=int, help="CPU threads for both sides (default: the config's num_threads, else all cores)")
    parser.add_argument("--blas-threads", type=int,
                        help="OpenBLAS threads for both sides (OPENBLAS_NUM_THREADS; default: --threads)")
    parser.add_argument("--data-dir", help="a prepared dataset folder (train.bin, val.bin, meta.json)")
    parser.add_argument("--input", help="text file to prepare a char dataset from when --data-dir is not given")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override applied to both sides (repeatable)")
    parser.add_argument("--dtype", help="forwarded to both sides as the dtype key")
    parser.add_argument("--workdir", help="where runs, logs and the nanoGPT copy go (default: a new temp folder)")
    parser.add_argument("--json", dest="json_out", help="write the results to this JSON file")
    parser.add_argument("--resume-from", metavar="CKPT",
                        help="a ckpt.pt (nanoGPT's or this port's): both sides resume from a copy of it "
                             "(init_from=resume) and run --iters iterations from its iter_num")
    parser.add_argument("--max-loss-diff", type=float,
                        help="exit 1 if any iteration's |port loss - nanoGPT loss| exceeds this")
    args = parser.parse_args()
    if args.iters < 1:
        parser.error("--iters must be at least 1")
    for item in args.set:
        if "=" not in item:
            parser.error(f"--set expects KEY=VALUE, got '{item}'")
    return args


def run_logged(command, cwd, log_path, env):
    """Run a training; its output goes to log_path. Returns wall seconds."""
    print(f"  cwd: {cwd}\n  command: {' '.join(command)}\n  log: {log_path}", flush=True)
    start = time.time()
    with open(log_path, "w") as log:
        result = subprocess.run(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env)
    seconds = time.time() - start
    if result.returncode != 0:
        with open(log_path) as f:
            tail = f.read()[-3000:]
        sys.exit(f"error: command failed with exit code {result.returncode}:\n{tail}")
    return seconds


def checkpoint_iter_num(path):
    """iter_num of a ckpt.pt, read with torch (this tool runs under the Python that has it)."""
    import torch
    return int(torch.load(path, map_location="cpu")["iter_num"])


def fresh_out_dir(out_dir, resume_from):
    """An empty out_dir, holding a copy of the checkpoint to resume from when there is one."""
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    if resume_from:
        shutil.copyfile(resume_from, os.path.join(out_dir, "ckpt.pt"))


def run_port(args, config, overrides, data_dir, workdir, threads):
    out_dir = os.path.join(workdir, "port-out")
    fresh_out_dir(out_dir, args.resume_from)
    command = [os.path.abspath(args.binary), "train", os.path.abspath(args.config)]
    command += [f"--{k}={v}" for k, v in overrides]
    if args.resume_from:
        command.append("--init_from=resume")
    command += [f"--max_iters={args.start_iter + args.iters - 1}", "--log_interval=1", "--wandb_log=false",
                f"--out_dir={out_dir}", f"--data_dir={os.path.abspath(data_dir)}", f"--num_threads={threads}"]
    print("running this port:")
    seconds = run_logged(command, os.getcwd(), os.path.join(workdir, "port.log"), thread_env(threads, args.blas_threads))
    iters, evals = {}, {}
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        for line in f:
            record = json.loads(line)
            if record.get("kind") == "iter":
                iters[record["iter"]] = {"loss": record["loss"], "ms": record["ms"]}
            elif record.get("kind") == "eval":
                evals[record["iter"]] = {"train_loss": record["train_loss"], "val_loss": record["val_loss"]}
    return {"command": command, "wall_s": seconds, "iters": iters, "evals": evals}


def run_nanogpt(args, config, data_dir, workdir, threads, train_args):
    copy_dir, vocab_size = copy_nanogpt_checkout(args.nanogpt_dir, data_dir, config["dataset"], workdir)
    runner = os.path.join(workdir, "nanogpt_runner.py")
    with open(runner, "w") as f:
        f.write(RUNNER_SOURCE.format(threads=threads))
    fresh_out_dir(os.path.join(workdir, "nanogpt-out"), args.resume_from)
    command = [args.python, "-u", runner] + train_args
    print(f"running Python nanoGPT (vocab_size from meta.pkl: {vocab_size}):")
    log_path = os.path.join(workdir, "nanogpt.log")
    seconds = run_logged(command, copy_dir, log_path, thread_env(threads, args.blas_threads))
    with open(log_path) as f:
        iters, evals = parse_nanogpt_log(f)
    return {"command": command, "wall_s": seconds, "iters": iters, "evals": evals}


def parse_nanogpt_log(lines):
    """nanoGPT's 'iter N: loss X, time Yms' and 'step N: train loss X, val loss Y' lines, by iteration."""
    iters, evals = {}, {}
    for line in lines:
        if m := ITER_LINE.match(line):
            iters[int(m.group(1))] = {"loss": float(m.group(2)), "ms": float(m.group(3))}
        elif m := EVAL_LINE.match(line):
            evals[int(m.group(1))] = {"train_loss": float(m.group(2)), "val_loss": float(m.group(3))}
    return iters, evals


def logged_tokens_per_iter(log_path):
    """The first line both trainers print; a cheap check that they run the same batch shape."""
    with open(log_path) as f:
        for line in f:
            if m := TOKENS_LINE.match(line):
                return int(m.group(1).replace(",", ""))
    return None


def is_eval_iter(it, config):
    return config["eval_interval"] > 0 and it % config["eval_interval"] == 0


def speed(run, config, tokens_per_iter):
    timed = [r["ms"] for it, r in sorted(run["iters"].items())
             if it >= WARMUP_ITERS and not is_eval_iter(it, config)]
    if not timed:
        return {"timed_iters": 0, "median_ms": None, "tokens_per_s": None}
    median_ms = statistics.median(timed)
    return {"timed_iters": len(timed), "median_ms": median_ms, "tokens_per_s": tokens_per_iter / (median_ms / 1000.0)}


def fmt(value, spec):
    """format(value, spec), or a dash as wide as the spec asks when there is no value."""
    if value is None:
        width = re.match(r"\d*", spec).group()
        return "-".rjust(int(width) if width else 1)
    return format(value, spec)


def prepare(args):
    """The resolved config and everything both sides share: overrides, threads, workdir, data.
    Also sets args.start_iter (from --resume-from) and args.blas_threads (default: threads)."""
    overrides = [tuple(item.split("=", 1)) for item in args.set]
    if args.dtype:
        overrides.append(("dtype", args.dtype))
    config = resolved_config(args.binary, args.config, overrides)
    if config["init_from"] != "scratch":
        sys.exit(f"error: init_from is '{config['init_from']}'; the comparison starts from scratch, "
                 "or from a checkpoint with --resume-from")
    args.start_iter = checkpoint_iter_num(args.resume_from) if args.resume_from else 0
    if config["seed"] != NANOGPT_SEED:
        print(f"warning: seed is {config['seed']} but nanoGPT always seeds {NANOGPT_SEED}; losses will differ")
    threads = args.threads or (config["num_threads"] if config["num_threads"] > 0 else os.cpu_count())
    args.blas_threads = args.blas_threads or threads
    workdir = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="compare-nanogpt-"))
    os.makedirs(workdir, exist_ok=True)
    data_dir = dataset_folder(args.binary, args.data_dir, args.input, config, workdir)
    tokens_per_iter = config["gradient_accumulation_steps"] * config["batch_size"] * config["block_size"]
    return SimpleNamespace(overrides=overrides, config=config, threads=threads, tokens_per_iter=tokens_per_iter,
                           data_dir=data_dir, workdir=workdir)


def print_setting(args, setting):
    """What is compared: config, model, iterations, threads, data and workdir."""
    config = setting.config
    print(f"config: {args.config} {' '.join(f'{k}={v}' for k, v in setting.overrides)}")
    print(f"model: n_layer={config['n_layer']} n_head={config['n_head']} n_embd={config['n_embd']} "
          f"block_size={config['block_size']} dropout={config['dropout']} dtype={config['dtype']} device={config['device']}")
    print(f"iterations: {args.iters} ({args.start_iter}..{args.start_iter + args.iters - 1})"
          f"{', resumed from ' + args.resume_from if args.resume_from else ''}, tokens/iter: {setting.tokens_per_iter:,}, "
          f"threads: {setting.threads} (OpenBLAS {args.blas_threads}), "
          f"eval every {config['eval_interval']} iters x {config['eval_iters']} batches")
    print(f"data: {setting.data_dir}\nworkdir: {setting.workdir}\n")


def check_tokens_per_iter(workdir, expected, with_nanogpt):
    """Both sides must have trained the batch shape the config asks for."""
    logs = [("port", "port.log")] + ([("nanoGPT", "nanogpt.log")] if with_nanogpt else [])
    for name, log in logs:
        logged = logged_tokens_per_iter(os.path.join(workdir, log))
        if logged != expected:
            sys.exit(f"error: {name} trained {logged} tokens/iter, expected {expected}; see {workdir}/{log}")


def loss_rows(port, nano, first, count):
    """One row per iteration (both losses, their difference, both times), printed as a table."""
    rows = []
    print()
    print(f"{'iter':>5}  {'port loss':>12}  {'nanoGPT loss':>12}  {'abs diff':>10}")
    for it in range(first, first + count):
        p = port["iters"].get(it, {})
        n = nano["iters"].get(it, {}) if nano else {}
        port_loss, nano_loss = p.get("loss"), n.get("loss")
        diff = abs(port_loss - nano_loss) if port_loss is not None and nano_loss is not None else None
        rows.append({"iter": it, "port_loss": port_loss, "nanogpt_loss": nano_loss, "abs_diff": diff,
                     "port_ms": p.get("ms"), "nanogpt_ms": n.get("ms")})
        print(f"{it:>5}  {fmt(port_loss, '12.6f')}  {fmt(nano_loss, '12.6f')}  {fmt(diff, '10.3e')}")
    return rows


def loss_summary(rows, port, nano, max_loss_diff):
    """The largest difference, the iterations missing a loss and, with nanoGPT, the identical
    losses, the first iteration over the tolerance and the evaluations side by side (printed)."""
    diffs = [r["abs_diff"] for r in rows if r["abs_diff"] is not None]
    missing = [r["iter"] for r in rows if r["port_loss"] is None or (nano and r["nanogpt_loss"] is None)]
    max_diff = max(diffs) if diffs else None
    summary = {"max_abs_loss_diff": max_diff, "missing_iters": missing}
    if nano:
        identical = sum(1 for d in diffs if d == 0.0)
        tolerance = max_loss_diff if max_loss_diff is not None else 1e-4
        first_over = next((r["iter"] for r in rows if r["abs_diff"] is not None and r["abs_diff"] > tolerance), None)
        summary.update({"bit_identical_losses": identical, "first_iter_over_tolerance": first_over,
                        "tolerance": tolerance})
        print(f"\nmax abs loss diff over {len(diffs)} iterations: {max_diff:.3e} "
              f"({identical} bit-identical; first iteration over {tolerance:g}: {first_over})")
        for it in sorted(set(port["evals"]) & set(nano["evals"])):
            p, n = port["evals"][it], nano["evals"][it]
            print(f"eval at iter {it}: train loss {p['train_loss']:.4f} vs {n['train_loss']:.4f}, "
                  f"val loss {p['val_loss']:.4f} vs {n['val_loss']:.4f} (nanoGPT prints 4 digits)")
    if missing:
        print(f"warning: iterations without a loss on one side: {missing}")
    return summary


def speed_summary(port, nano, setting, blas_threads):
    """Median ms/iter and tokens/s of each side and their ratio, printed as a table."""
    port_speed = speed(port, setting.config, setting.tokens_per_iter)
    nano_speed = speed(nano, setting.config, setting.tokens_per_iter) if nano else None
    print(f"\nspeed: median over iterations >= {WARMUP_ITERS} without an eval, "
          f"{setting.threads} thread(s), OpenBLAS {blas_threads}")
    print(f"{'side':<8}  {'timed iters':>11}  {'ms/iter':>9}  {'tokens/s':>10}")
    for name, sp in (("port", port_speed), ("nanoGPT", nano_speed)):
        if sp:
            print(f"{name:<8}  {sp['timed_iters']:>11}  {fmt(sp['median_ms'], '9.2f')}  {fmt(sp['tokens_per_s'], '10.0f')}")
    ratio = None
    if nano_speed and port_speed["median_ms"] and nano_speed["median_ms"]:
        ratio = port_speed["median_ms"] / nano_speed["median_ms"]
        print(f"ms/iter ratio (port / nanoGPT): {ratio:.3f}  "
              f"({'port faster' if ratio < 1 else 'nanoGPT faster' if ratio > 1 else 'equal'})")
    return {"port_speed": port_speed, "nanogpt_speed": nano_speed, "ms_ratio_port_over_nanogpt": ratio}


def write_json(args, setting, summary, rows, port, nano):
    """The setting, the summary, every loss row and both sides' commands and evaluations (--json)."""
    result = {"config_path": args.config, "overrides": dict(setting.overrides), "config": setting.config,
              "iters": args.iters, "threads": setting.threads, "blas_threads": args.blas_threads,
              "tokens_per_iter": setting.tokens_per_iter, "data_dir": setting.data_dir, "workdir": setting.workdir,
              "summary": summary, "losses": rows,
              "port": {"command": port["command"], "wall_s": port["wall_s"], "evals": port["evals"]},
              "nanogpt": None if not nano else {"command": nano["command"], "wall_s": nano["wall_s"],
                                                "evals": nano["evals"]}}
    with open(args.json_out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"results written to {args.json_out}")


def main():
    args = parse_args()
    setting = prepare(args)
    print_setting(args, setting)
    config, workdir, threads = setting.config, setting.workdir, setting.threads
    # Built before any training, so that a config nanoGPT cannot take fails at once.
    nano_args = nanogpt_args(config, args.iters, args.nanogpt_dir, os.path.join(workdir, "nanogpt-out"),
                             args.start_iter, bool(args.resume_from)) if args.nanogpt_dir else None
    port = run_port(args, config, setting.overrides, setting.data_dir, workdir, threads)
    nano = run_nanogpt(args, config, setting.data_dir, workdir, threads, nano_args) if args.nanogpt_dir else None
    check_tokens_per_iter(workdir, setting.tokens_per_iter, bool(nano))

    rows = loss_rows(port, nano, args.start_iter, args.iters)
    summary = loss_summary(rows, port, nano, args.max_loss_diff)
    summary.update(speed_summary(port, nano, setting, args.blas_threads))
    if args.json_out:
        write_json(args, setting, summary, rows, port, nano)

    max_diff = summary["max_abs_loss_diff"]
    if args.max_loss_diff is not None and max_diff is not None and max_diff > args.max_loss_diff:
        print(f"FAIL: max abs loss diff {max_diff:.3e} > {args.max_loss_diff:g}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
