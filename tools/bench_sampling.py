#!/usr/bin/env python3
"""Sampling speed of this port (KV cache, and without it) against Python nanoGPT's sample.py,
on the same checkpoint, the same thread count and the same CPU, one after the other.

Each side runs `--num_samples S --max_new_tokens N` and, to take out process start-up and
model loading, the same with `--max_new_tokens 1`; generation speed is
S * (N - 1) / (time(N) - time(1)), in CPU seconds of the process (user + system). The best of
--repeats runs counts for each.

  .venv/bin/python tools/bench_sampling.py --nanogpt build/nanogpt --nanogpt-dir ../nanoGPT [--out-dir OUT]

Without --out-dir it makes a checkpoint of the baby GPT shape (configs/train_shakespeare_char.yaml:
6 layers, 6 heads, 384 wide, block 256) by training one iteration on data/shakespeare_char
(prepare it first: `nanogpt prepare char --out-dir data/shakespeare_char`). sample.py runs in
a scratch folder that links nanoGPT's scripts and this project's data/, so it reads the
meta.pkl that `prepare` wrote (sample.py opens data/<dataset>/meta.pkl and configurator.py
relative to its working directory). nanoGPT's sample.py runs under the Python that runs this
script, which needs torch: the project's venv, which tools/setup.sh makes.
"""
import argparse
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# sample.py imports tiktoken even for a char-level checkpoint, which never uses it
TIKTOKEN_STUB = "def get_encoding(name):\n    raise ImportError('tiktoken is not installed')\n"
NANOGPT_SAMPLE = """
import runpy, sys, torch
torch.set_num_threads(int(sys.argv[1]))
nanogpt_dir = sys.argv[2]
sys.argv = ["sample.py"] + sys.argv[3:]
sys.path.insert(0, nanogpt_dir)  # model.py
runpy.run_path(nanogpt_dir + "/sample.py", run_name="__main__")
"""


def timed(command, cwd=None, env=None):
    """The command's CPU seconds (user + system, from wait4): steadier than wall time on a
    shared machine, and equal to it for one thread on an idle one."""
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed ({status}): {' '.join(command)}\n{proc.stderr.read()[-3000:]}")
    return usage.ru_utime + usage.ru_stime


def make_checkpoint(nanogpt, out_dir, threads, block_size):
    subprocess.run([nanogpt, "train", os.path.join(ROOT, "configs/train_shakespeare_char.yaml"), f"--out_dir={out_dir}",
                    f"--block_size={block_size}", "--batch_size=1",
                    f"--data_dir={os.path.join(ROOT, 'data/shakespeare_char')}", "--device=cpu", "--compile=false",
                    "--max_iters=1", "--eval_interval=1", "--eval_iters=1", "--log_interval=1",
                    f"--num_threads={threads}"], check=True, stdout=subprocess.DEVNULL)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nanogpt", default=os.path.join(ROOT, "build/nanogpt"), help="this port's binary")
    parser.add_argument("--nanogpt-dir", help="a karpathy/nanoGPT checkout (without it, only this port runs)")
    parser.add_argument("--out-dir", help="folder with ckpt.pt (default: a fresh baby-GPT checkpoint)")
    parser.add_argument("--block-size", type=int, default=256,
                        help="block_size of the fresh checkpoint: past it, every step recomputes the whole window")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    nanogpt = os.path.abspath(args.nanogpt)
    work = tempfile.mkdtemp(prefix="nanogpt-bench-sampling-")
    out_dir = os.path.abspath(args.out_dir) if args.out_dir else os.path.join(work, "out")
    if not args.out_dir:
        make_checkpoint(nanogpt, out_dir, args.threads, args.block_size)

    def port(extra):
        return lambda n: timed([nanogpt, "sample", f"--out_dir={out_dir}", f"--num_samples={args.samples}",
                                f"--max_new_tokens={n}", f"--num_threads={args.threads}", "--start=\n"] + extra)

    sides = [("this port, KV cache", port([])), ("this port, no KV cache", port(["--no_kv_cache"]))]
    if args.nanogpt_dir:
        with open(os.path.join(work, "tiktoken.py"), "w") as f:
            f.write(TIKTOKEN_STUB)
        nanogpt_dir = os.path.abspath(args.nanogpt_dir)
        if not os.path.isfile(os.path.join(nanogpt_dir, "sample.py")):
            sys.exit(f"--nanogpt-dir {args.nanogpt_dir}: no sample.py there (expected a karpathy/nanoGPT checkout)")
        os.symlink(os.path.join(nanogpt_dir, "configurator.py"), os.path.join(work, "configurator.py"))
        os.symlink(os.path.join(ROOT, "data"), os.path.join(work, "data"))
        env = dict(os.environ, PYTHONPATH=work + os.pathsep + os.environ.get("PYTHONPATH", ""))
        sides.append(("nanoGPT sample.py", lambda n: timed(
            [sys.executable, "-c", NANOGPT_SAMPLE, str(args.threads), nanogpt_dir, f"--out_dir={out_dir}",
             "--device=cpu", "--dtype=float32", "--compile=False", f"--num_samples={args.samples}",
             f"--max_new_tokens={n}"], cwd=work, env=env)))

    print(f"{args.samples} samples x {args.tokens} tokens, {args.threads} thread(s), best of {args.repeats}, "
          f"checkpoint {out_dir}\n")
    print("| run | start-up (1 token), CPU s | total, CPU s | generation tokens per CPU s |")
    print("| --- | ---: | ---: | ---: |")
    speeds = {}
    for name, run in sides:
        startup = min(run(1) for _ in range(args.repeats))
        total = min(run(args.tokens) for _ in range(args.repeats))
        speeds[name] = args.samples * (args.tokens - 1) / max(total - startup, 1e-9)
        print(f"| {name} | {startup:.2f} | {total:.2f} | {speeds[name]:.1f} |")
    if "nanoGPT sample.py" in speeds:
        reference = speeds["nanoGPT sample.py"]
        print("\n" + ", ".join(f"{name}: {speed / reference:.2f}x nanoGPT" for name, speed in speeds.items()
                               if name != "nanoGPT sample.py"))


if __name__ == "__main__":
    main()
