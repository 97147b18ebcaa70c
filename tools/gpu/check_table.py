#!/usr/bin/env python3
"""The table of tools/gpu/check.sh, from what its steps left in OUT (standard library only).

  python3 tools/gpu/check_table.py OUT

OUT holds meta.json (the run's settings), steps/NAME.json (status of each step: ok, failed,
timeout, skipped), logs/NAME.log and the steps' own outputs in results/. The tool writes
OUT/check.md (the table and a list of the steps) and OUT/check.json (every figure), and prints
the markdown. A step that failed, timed out or was skipped shows as such in its cells; the
table is always complete, so it can be rebuilt after every step.
"""

import json
import os
import re
import statistics
import sys

BENCH_LINE = re.compile(r"time per iteration: ([0-9.]+)ms, MFU: ([-0-9.]+)%")
ITER_LINE = re.compile(r"^iter (\d+): loss \S+, time ([0-9.]+)ms")
RUNNER_CUDA_LINE = re.compile(r"^nanogpt_runner: cuda:\d+ max_memory_allocated_bytes=(\d+) max_memory_reserved_bytes=(\d+)")
RUNNER_RSS_LINE = re.compile(r"^nanogpt_runner: peak_rss_bytes=(\d+)")


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_lines(path):
    try:
        with open(path, errors="replace") as f:
            return f.read().splitlines()
    except OSError:
        return []


class Run:
    """One check.sh output folder."""

    def __init__(self, out):
        self.out = out
        self.meta = read_json(os.path.join(out, "meta.json")) or {}

    def step(self, name):
        return read_json(os.path.join(self.out, "steps", name + ".json"))

    def log(self, name):
        return read_lines(os.path.join(self.out, "logs", name + ".log"))

    def result(self, name):
        return os.path.join(self.out, "results", name)

    def problem(self, name):
        """None when the step ran and succeeded, else the text its cells show."""
        step = self.step(name)
        if step is None:
            return "not run"
        status = step.get("status")
        if status == "ok":
            return None
        if status == "skipped":
            return "skipped: " + step.get("reason", "")
        if status == "timeout":
            return f"TIMEOUT after {step.get('timeout_s')} s (logs/{name}.log)"
        return f"FAILED, exit {step.get('rc')} (logs/{name}.log)"


def fmt_rate(value):
    return f"{value:,.0f}"


def fmt_ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "n/a"


def fmt_gib(value):
    return f"{value / 2**30:.2f} GiB"


def port_bench(run, mb):
    name = f"port_bench_mb{mb}"
    problem = run.problem(name)
    data = read_json(run.result(name + ".json")) if problem is None else None
    if problem is None and data is None:
        problem = f"FAILED: no results/{name}.json"
    return data, problem


def nanogpt_bench(run, mb, mode):
    name = f"nanogpt_{mode}_mb{mb}"
    problem = run.problem(name)
    if problem is not None:
        return None, problem
    for line in reversed(run.log(name)):
        match = BENCH_LINE.search(line)
        if match:
            ms = float(match.group(1))
            tokens = mb * run.meta.get("block_size", 1024)
            return {"ms_per_iter": ms, "tokens_per_s": tokens / (ms / 1000), "mfu_bench_py": float(match.group(2)) / 100}, None
    return None, f"FAILED: no 'time per iteration' line in logs/{name}.log"


def seed_port(run):
    name = "port_seed"
    step = run.step(name)
    lines = run.log(name)
    records = []
    for line in read_lines(run.result("port_seed_metrics.jsonl")):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("kind") == "iter":
            records.append(record)
    # the error line (main's "error: ..."), not the cap's announcement, which names out of memory too
    oom = any(line.startswith("error:") and "out of memory" in line for line in lines)
    figures = {"oom": oom}
    cuda = [r["cuda_peak_allocated_bytes"] for r in records if r.get("cuda_peak_allocated_bytes") is not None]
    reserved = [r["cuda_peak_reserved_bytes"] for r in records if r.get("cuda_peak_reserved_bytes") is not None]
    tensors = [r["peak_tensor_bytes"] for r in records if r.get("peak_tensor_bytes") is not None]
    if cuda:
        figures["peak_bytes"], figures["peak_kind"] = max(cuda), "CUDA max allocated"
        if reserved:
            figures["reserved_bytes"] = max(reserved)
    elif tensors:
        figures["peak_bytes"], figures["peak_kind"] = max(tensors), "CPU tensors"
    times = [r["ms"] for r in records if r.get("iter", 0) >= 1 and r.get("ms") is not None]
    if times:
        figures["ms_per_iter"] = statistics.median(times)
    return figures, step


def seed_nanogpt(run):
    name = "nanogpt_seed"
    step = run.step(name)
    lines = run.log(name)
    figures = {"oom": any(line.startswith("nanogpt_runner: out_of_memory") for line in lines)}
    times = []
    for line in lines:
        match = RUNNER_CUDA_LINE.match(line)
        if match:
            figures["peak_bytes"] = max(figures.get("peak_bytes", 0), int(match.group(1)))
            figures["reserved_bytes"] = max(figures.get("reserved_bytes", 0), int(match.group(2)))
            figures["peak_kind"] = "CUDA max allocated"
        match = RUNNER_RSS_LINE.match(line)
        if match and "peak_bytes" not in figures:
            figures["rss_bytes"] = int(match.group(1))
        match = ITER_LINE.match(line)
        if match and int(match.group(1)) >= 1:
            times.append(float(match.group(2)))
    if "peak_bytes" not in figures and "rss_bytes" in figures:
        figures["peak_bytes"], figures["peak_kind"] = figures.pop("rss_bytes"), "peak RSS"
    if times:
        figures["ms_per_iter"] = statistics.median(times)
    return figures, step


def seed_cells(run, name, figures, step):
    """fits?, peak and ms/iter cells of one side of the seed run."""
    if step is None or step.get("status") == "skipped":
        text = run.problem(name)
        return text, text, text
    if figures["oom"]:
        fits = "no (out of memory)"
    elif step.get("status") == "ok":
        fits = "yes"
    else:
        fits = run.problem(name)
    peak = "n/a"
    if "peak_bytes" in figures:
        peak = f"{fmt_gib(figures['peak_bytes'])} ({figures['peak_kind']}"
        if "reserved_bytes" in figures:
            peak += f"; reserved {fmt_gib(figures['reserved_bytes'])}"
        peak += ")"
    ms = f"{figures['ms_per_iter']:.1f}" if "ms_per_iter" in figures else "n/a"
    return fits, peak, ms


def mfu_cell(side, problem, port):
    """nanoGPT's MFU on the port's peak (the same shapes give the same FLOPs per token), else bench.py's own."""
    if not side:
        return problem
    if port and port["tokens_per_s"]:
        return f"{side['tokens_per_s'] * port['mfu'] / port['tokens_per_s'] * 100:.2f}%"
    return f"{side['mfu_bench_py'] * 100:.2f}% (bench.py's, of A100 312 TFLOP/s)"


def bench_rows(run, mb, figures):
    """The tokens/s and MFU rows of one micro-batch size; its figures go into figures[mbN]."""
    port, port_problem = port_bench(run, mb)
    eager, eager_problem = nanogpt_bench(run, mb, "eager")
    compiled, compiled_problem = nanogpt_bench(run, mb, "compiled")
    figures[f"mb{mb}"] = {"port": port, "nanogpt_eager": eager, "nanogpt_compiled": compiled}
    port_tps = port["tokens_per_s"] if port else None
    peak_note = f"; peak {port['peak_flops']:.3g} FLOP/s, {port['peak_flops_source']}" if port else ""
    return [[f"tokens/s, micro-batch {mb}",
             fmt_rate(port_tps) if port else port_problem,
             fmt_rate(eager["tokens_per_s"]) if eager else eager_problem,
             fmt_rate(compiled["tokens_per_s"]) if compiled else compiled_problem,
             fmt_ratio(port_tps, eager and eager["tokens_per_s"]),
             fmt_ratio(port_tps, compiled and compiled["tokens_per_s"])],
            [f"MFU, micro-batch {mb}{peak_note}",
             f"{port['mfu'] * 100:.2f}%" if port else port_problem,
             mfu_cell(eager, eager_problem, port), mfu_cell(compiled, compiled_problem, port), "", ""]]


def check_cell(run, figures, step, describe):
    """The cell of a self-check (check-logits, check-adamw): its figures, pass or FAIL."""
    problem, result = run.problem(step), read_json(run.result(f"{step}.json"))
    figures[step] = result
    if result is not None and problem and not result.get("passed", True):
        problem = None  # the check ran and failed on its figures: show them
    if problem is None and result is not None:
        return describe(result, "pass" if result.get("passed") else "FAIL")
    return problem or f"FAILED: no results/{step}.json"


def logits_cell(logits, verdict):
    error = logits.get("relative_error")
    if error is None:
        return f"NaN ({verdict})"
    return (f"{error:.2e} ({verdict}, tolerance {logits['tolerance']:.0e}; same argmax "
            f"{logits['argmax_agreement'] * 100:.1f}%)")


def adamw_cell(adamw, verdict):
    return (f"{max(adamw['weight_error'], adamw['moment_error']):.2e} ({verdict}, tolerance "
            f"{adamw['tolerance']:.0e}; {adamw['path']})")


def check_rows(run, figures):
    """The rows of the self-checks, logits then AdamW; their figures go into figures[step]."""
    cell = check_cell(run, figures, "logits", logits_cell)
    device = run.meta.get("device", "cuda")  # the checked device, when a check left no figures
    checked = figures["logits"]["checked"] if figures["logits"] else f"{device} bfloat16"
    rows = [[f"logits {checked} vs cpu float32: relative error", cell, "", "", "", ""]]
    cell = check_cell(run, figures, "adamw", adamw_cell)
    device = figures["adamw"]["device"] if figures["adamw"] else device
    rows.append([f"AdamW update on {device} vs LibTorch's AdamW: relative difference", cell, "", "", "", ""])
    return rows


def seed_rows(run, figures):
    """The rows of the seed run under the memory cap; nanoGPT's cells sit in the column of its mode."""
    cap = run.meta.get("cap", "12GiB")
    port_figures, port_step = seed_port(run)
    nano_figures, nano_step = seed_nanogpt(run)
    figures["seed"] = {"port": port_figures, "nanogpt": nano_figures}
    port_cells = seed_cells(run, "port_seed", port_figures, port_step)
    nano_cells = seed_cells(run, "nanogpt_seed", nano_figures, nano_step)
    nano_column = 3 if run.meta.get("seed_compile") else 2
    rows = []
    for label, k in (("fits?", 0), ("peak memory", 1), ("ms/iter (median from iter 1)", 2)):
        row = [f"{cap} seed run: {label}", port_cells[k], "", "", "", ""]
        row[nano_column] = nano_cells[k]
        if k == 2 and "ms_per_iter" in port_figures and "ms_per_iter" in nano_figures:
            row[nano_column + 2] = f"{nano_figures['ms_per_iter'] / port_figures['ms_per_iter']:.2f}"
        rows.append(row)
    return rows


def step_lines(run):
    """The list of the steps: status, seconds, reason and log of each."""
    lines = []
    for name in run.meta.get("steps", []):
        step = run.step(name)
        if step is None:
            lines.append(f"- {name}: not run yet")
            continue
        detail = step.get("reason") or ""
        seconds = f", {step['seconds']:.0f} s" if step.get("seconds") is not None else ""
        lines.append(f"- {name}: {step['status']}{seconds}{'; ' + detail if detail else ''} (logs/{name}.log)")
    return lines


def markdown(run, rows):
    """Title, description, the table of rows and the list of the steps."""
    header = ["check", "port", "nanoGPT eager", "nanoGPT compiled", "port / eager", "port / compiled"]
    text = [f"## {run.meta.get('title', 'GPU check')}", ""]
    if run.meta.get("description"):
        text += [run.meta["description"], ""]
    text += ["| " + " | ".join(header) + " |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    text += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    text += ["", "Steps:", ""] + step_lines(run)
    return "\n".join(text) + "\n"


def build_table(run):
    """(the markdown, every figure) of one check.sh output folder."""
    rows, figures = [], {"meta": run.meta}
    for mb in run.meta.get("micro_batches", [16, 32]):
        rows += bench_rows(run, mb, figures)
    rows += check_rows(run, figures)
    rows += seed_rows(run, figures)
    return markdown(run, rows), figures


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: check_table.py OUT")
    run = Run(sys.argv[1])
    text, figures = build_table(run)
    with open(os.path.join(run.out, "check.md"), "w") as f:
        f.write(text)
    with open(os.path.join(run.out, "check.json"), "w") as f:
        json.dump(figures, f, indent=1)
    print(text, end="")


if __name__ == "__main__":
    main()
