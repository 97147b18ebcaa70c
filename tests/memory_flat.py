#!/usr/bin/env python3
"""Memory does not grow over a long run (nanoGPT once leaked through a memmap per batch):

- a 2,000-iteration CPU training run: the peak RSS of every logging window after iteration 100
  (metrics.jsonl's peak_rss_bytes) stays within 5% of the smallest one;
- sampling: one process drawing 1,000 samples peaks within 5% of one drawing 100.

Usage: memory_flat.py NANOGPT [--iters N] [--samples N]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

CONFIG = """\
out_dir: {out_dir}
dataset: tiny
data_dir: {data_dir}
device: cpu
num_threads: 1
n_layer: 2
n_head: 2
n_embd: 32
block_size: 32
batch_size: 8
gradient_accumulation_steps: 1
max_iters: {iters}
lr_decay_iters: {iters}
warmup_iters: 10
learning_rate: 1.0e-3
eval_interval: 500
eval_iters: 5
log_interval: 50
always_save_checkpoint: true
"""
TOLERANCE = 0.05


def peak_rss_of(command):
    """Runs `command` to completion; returns its own peak RSS in bytes (wait4's ru_maxrss)."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"FAIL: {' '.join(command)} exited {status}: {proc.stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss * 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("nanogpt")
    parser.add_argument("--iters", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=1000)
    args = parser.parse_args()
    nanogpt = os.path.abspath(args.nanogpt)
    work = tempfile.mkdtemp(prefix="nanogpt-memory-flat-")
    failures = []
    try:
        with open(os.path.join(work, "input.txt"), "w") as f:
            f.write("".join(f"{i % 9} Before we proceed any further, hear me speak.\n" for i in range(2000)))
        subprocess.run([nanogpt, "prepare", "char", "--input", os.path.join(work, "input.txt"), "--out-dir",
                        os.path.join(work, "data")], check=True, capture_output=True)
        out_dir = os.path.join(work, "out")
        config = os.path.join(work, "long.yaml")
        with open(config, "w") as f:
            f.write(CONFIG.format(out_dir=out_dir, data_dir=os.path.join(work, "data"), iters=args.iters))
        subprocess.run([nanogpt, "train", config], check=True, stdout=subprocess.DEVNULL)

        records = [json.loads(line) for line in open(os.path.join(out_dir, "metrics.jsonl"))]
        windows = [(r["iter"], r["peak_rss_bytes"]) for r in records if r["kind"] == "iter" and r["iter"] >= 100]
        rss = [v for _, v in windows]
        growth = max(rss) / min(rss) - 1
        print(f"training, {args.iters} iterations: peak RSS per window after iteration 100 "
              f"{min(rss) / 2**20:.1f} to {max(rss) / 2**20:.1f} MiB over {len(rss)} windows "
              f"(at 100: {rss[0] / 2**20:.1f}, last: {rss[-1] / 2**20:.1f}), spread {growth:.2%}")
        if len(windows) < args.iters // 50 - 2 or growth > TOLERANCE:
            failures.append(f"training RSS spread {growth:.2%} over {len(windows)} windows: {windows}")

        sample = [nanogpt, "sample", f"--out_dir={out_dir}", "--start=Before", "--max_new_tokens=8", "--seed=3"]
        few = peak_rss_of(sample + [f"--num_samples={args.samples // 10}"])
        many = peak_rss_of(sample + [f"--num_samples={args.samples}"])
        growth = many / few - 1
        print(f"sampling: peak RSS {few / 2**20:.1f} MiB for {args.samples // 10} samples, "
              f"{many / 2**20:.1f} MiB for {args.samples}, growth {growth:+.2%}")
        if growth > TOLERANCE:
            failures.append(f"sampling RSS grew {growth:.2%}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
