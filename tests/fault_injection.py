#!/usr/bin/env python3
"""Faults against `nanogpt train`, through the binary, on a tiny CPU fp32 run:

- SIGKILL at random moments, a share of them while ckpt.pt is being written (the harness
  watches for ckpt.pt.tmp and kills a random few hundred microseconds after it appears);
- SIGTERM and SIGINT, which must save and exit 0;
- a full disk: out_dir on a small tmpfs (ENOSPC) where mounting is allowed, and a file-size
  limit (EFBIG) everywhere; the write must fail with a message, exit 1, and leave the previous
  checkpoint byte for byte.

After every fault the run is started again with init_from=resume (from scratch if no
checkpoint was written yet) until it completes. Every loss any attempt logged must equal the
loss an uninterrupted run logged at that iteration, and the final weights must equal the
uninterrupted run's. Both with dropout 0 and 0.2 (the checkpoint carries the RNG state).

Usage: fault_injection.py NANOGPT [--kills N] [--seed S]   (N SIGKILLs per dropout setting)
"""
import argparse
import collections
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

CONFIG = """\
out_dir: {out_dir}
dataset: tiny
data_dir: {data_dir}
device: cpu
num_threads: 1
n_layer: 2
n_head: 4
n_embd: 128
block_size: 64
batch_size: 4
dropout: {dropout}
gradient_accumulation_steps: 2
max_iters: {max_iters}
lr_decay_iters: 36
warmup_iters: 4
learning_rate: 1.0e-3
eval_interval: 3
eval_iters: 2
log_interval: 1
always_save_checkpoint: true
"""
MAX_ITERS = 36  # the iterations of a whole run, as lr_decay_iters above


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def logged_losses(out_dir):
    """Every (iteration, loss) that metrics.jsonl holds, in order, repeats included."""
    path = os.path.join(out_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    records = [json.loads(line) for line in open(path) if line.strip()]
    return [(r["iter"], r["loss"]) for r in records if r["kind"] == "iter"]


def checkpoint_bytes(out_dir):
    path = os.path.join(out_dir, "ckpt.pt")
    return open(path, "rb").read() if os.path.exists(path) else None


class Runner:
    def __init__(self, nanogpt, work, dropout):
        self.nanogpt, self.work, self.dropout = nanogpt, work, dropout

    def config(self, out_dir, max_iters):
        path = os.path.join(self.work, f"{os.path.basename(out_dir)}.yaml")
        with open(path, "w") as f:
            f.write(CONFIG.format(out_dir=out_dir, data_dir=os.path.join(self.work, "data"), dropout=self.dropout,
                                  max_iters=max_iters))
        return path

    def start(self, out_dir, preexec=None, max_iters=MAX_ITERS):
        """`nanogpt train`, resuming when out_dir holds a checkpoint."""
        command = [self.nanogpt, "train", self.config(out_dir, max_iters)]
        if os.path.exists(os.path.join(out_dir, "ckpt.pt")):
            command.append("--init_from=resume")
        with open(os.path.join(self.work, "attempt.log"), "w") as log:
            return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, preexec_fn=preexec)

    def log(self):
        """What the last attempt printed."""
        return open(os.path.join(self.work, "attempt.log")).read()

    def run(self, out_dir, preexec=None, max_iters=MAX_ITERS, timeout=300):
        proc = self.start(out_dir, preexec, max_iters)
        code = proc.wait(timeout=timeout)
        return code, self.log()


def checkpoint_version(out_dir):
    """(inode, bytes) of one version of ckpt.pt, read through one descriptor; None if absent.

    A save writes a new file and renames it over ckpt.pt, so an inode's bytes never change."""
    try:
        with open(os.path.join(out_dir, "ckpt.pt"), "rb") as f:
            return os.fstat(f.fileno()).st_ino, f.read()
    except FileNotFoundError:
        return None


def kill_mid_write(proc, tmp, started_ns, rng):
    """SIGKILL soon after this process starts writing ckpt.pt.tmp. Returns whether the kill
    landed, and the version of ckpt.pt seen when the write was noticed."""
    while proc.poll() is None:
        try:
            if os.stat(tmp).st_mtime_ns >= started_ns:
                previous = checkpoint_version(os.path.dirname(tmp))
                time.sleep(rng.uniform(0, 0.002))
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return True, previous
        except FileNotFoundError:
            pass
    return False, None


def wait_for_iteration(proc, log_path, at_iter):
    """Waits until the attempt logs iteration `at_iter`; False if it ended first."""
    while proc.poll() is None:
        with open(log_path) as log:
            if any(line.startswith(f"iter {at_iter}:") for line in log):
                return True
        time.sleep(0.01)
    return False


def faulted_run(runner, expected, kills, rng, counts):
    """Kills and stops the run until `kills` SIGKILLs are done, then lets it finish."""
    out_dir = os.path.join(runner.work, "faulted")
    tmp = os.path.join(out_dir, "ckpt.pt.tmp")
    duration = expected["seconds"]
    done_kills = 0
    attempts = 0

    def faults():
        yield from ("SIGTERM", "SIGINT")
        while done_kills < kills:  # a kill that comes after the attempt ended is tried again
            check(attempts < 4 * kills + 2, f"only {done_kills} of {kills} kills landed in {attempts} attempts")
            yield rng.choice(("write", "random"))
        yield "finish"

    for fault in faults():
        attempts += 1
        started_ns = time.time_ns()
        proc = runner.start(out_dir)
        if fault == "write":
            landed, previous = kill_mid_write(proc, tmp, started_ns, rng)
            now = checkpoint_version(out_dir)
            if landed and os.path.exists(tmp):
                check(previous is None or now is not None, "a kill during the write removed ckpt.pt")
                # Under load the rename may beat the kill and the next save's tmp file be the one
                # killed: ckpt.pt is then a newer complete version, not the one to compare with.
                if (now and now[0]) == (previous and previous[0]):
                    counts["killed while writing ckpt.pt"] += 1
                    check(now == previous, "a kill during the write changed the previous ckpt.pt")
        elif fault == "random":
            try:
                proc.wait(timeout=rng.uniform(0.05, duration))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
        elif fault in ("SIGTERM", "SIGINT"):
            at_iter = 5 if fault == "SIGTERM" else 12  # mid-run, never racing the run's own end
            if wait_for_iteration(proc, os.path.join(runner.work, "attempt.log"), at_iter):
                proc.send_signal(getattr(signal, fault))
            code = proc.wait(timeout=120)
            log = runner.log()
            check(code == 0, f"{fault}: exit code {code}, expected 0:\n{log[-2000:]}")
            check("interrupted at iteration" in log, f"{fault}: no 'interrupted at iteration' line:\n{log[-2000:]}")
            counts[f"{fault} saved and exited 0"] += 1
        else:
            code = proc.wait(timeout=300)
            log = runner.log()
            check(code == 0, f"the final resumed run failed with {code}:\n{log[-2000:]}")
        if proc.returncode == -signal.SIGKILL:
            done_kills += 1
            counts["SIGKILL"] += 1
        elif proc.returncode != 0:
            raise Failure(f"attempt ({fault}) exited {proc.returncode}:\n{runner.log()[-2000:]}")
    check(os.path.exists(os.path.join(out_dir, "ckpt.pt")), "no checkpoint at the end")
    check(not os.path.exists(tmp), "ckpt.pt.tmp left behind by the completed run")

    got = logged_losses(out_dir)
    identical = 0
    for it, loss in got:
        check(abs(loss - expected["losses"][it]) <= 1e-6,
              f"iteration {it}: loss {loss!r} after a fault, {expected['losses'][it]!r} without")
        identical += loss == expected["losses"][it]
    check({it for it, _ in got} == set(expected["losses"]), "some iterations were never logged")
    counts["losses compared"] += len(got)
    counts["losses bit-identical"] += identical


def same_model(path_a, path_b):
    """The model and optimizer tensors of two checkpoints are equal (needs Python torch)."""
    try:
        import torch
    except ImportError:
        return None
    a, b = torch.load(path_a, map_location="cpu"), torch.load(path_b, map_location="cpu")
    same = all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]) and a["model"].keys() == b["model"].keys()
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        same = same and all(torch.equal(sa[k], sb[k]) for k in sa)
    return same and a["iter_num"] == b["iter_num"]


def full_disk(runner, counts):
    """A checkpoint write that runs out of space fails clearly and keeps the previous one."""
    first = os.path.join(runner.work, "before-full")
    code, log = runner.run(first, max_iters=3)  # ckpt.pt at iteration 3
    check(code == 0, f"full disk: the first run failed:\n{log[-2000:]}")
    before = checkpoint_bytes(first)
    for how in ("tmpfs", "file size limit"):
        out_dir = os.path.join(runner.work, f"full-{how.replace(' ', '-')}")
        os.makedirs(out_dir)
        mounted = False
        if how == "tmpfs":  # room for the checkpoint but not for a second one beside it
            size = len(before) * 3 // 2 + 256 * 1024
            mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", out_dir],
                                     capture_output=True).returncode == 0
            if not mounted:
                print("  full disk, tmpfs: skipped (mounting is not allowed here)")
                continue
        try:
            for name in ("ckpt.pt", "metrics.jsonl"):
                shutil.copy(os.path.join(first, name), out_dir)

            def limit_file_size():
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
                resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) // 2, len(before) // 2))

            code, log = runner.run(out_dir, preexec=limit_file_size if how == "file size limit" else None)
            check(code == 1, f"{how}: exit code {code}, expected 1:\n{log[-2000:]}")
            check("cannot write" in log and "ckpt.pt" in log, f"{how}: the error does not name the write:\n{log[-2000:]}")
            check(checkpoint_bytes(out_dir) == before, f"{how}: the previous checkpoint changed")
            check(not os.path.exists(os.path.join(out_dir, "ckpt.pt.tmp")), f"{how}: ckpt.pt.tmp left behind")
            counts[f"full disk ({how}) refused, old checkpoint kept"] += 1
            print(f"  full disk, {how}: {log.strip().splitlines()[-1]}")
        finally:
            if mounted:
                subprocess.run(["umount", out_dir], check=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("nanogpt")
    parser.add_argument("--kills", type=int, default=12, help="SIGKILLs per dropout setting")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    nanogpt = os.path.abspath(args.nanogpt)
    rng = random.Random(args.seed)
    print(f"seed {args.seed}")
    counts = collections.Counter()
    work = tempfile.mkdtemp(prefix="nanogpt-faults-")
    try:
        text = "".join(f"{i % 7} First Citizen: we are accounted poor citizens, the patricians good.\n" for i in range(400))
        with open(os.path.join(work, "input.txt"), "w") as f:
            f.write(text)
        subprocess.run([nanogpt, "prepare", "char", "--input", os.path.join(work, "input.txt"), "--out-dir",
                        os.path.join(work, "data")], check=True, capture_output=True)
        for dropout in (0.0, 0.2):
            print(f"dropout {dropout}:")
            runner = Runner(nanogpt, work, dropout)
            for name in ("straight", "faulted"):
                shutil.rmtree(os.path.join(work, name), ignore_errors=True)
            t0 = time.time()
            code, log = runner.run(os.path.join(work, "straight"))
            check(code == 0, f"the uninterrupted run failed:\n{log[-2000:]}")
            expected = {"seconds": time.time() - t0, "losses": dict(logged_losses(os.path.join(work, "straight")))}
            check(len(expected["losses"]) == MAX_ITERS + 1, "the uninterrupted run did not log every iteration")
            faulted_run(runner, expected, args.kills, rng, counts)
            same = same_model(os.path.join(work, "straight", "ckpt.pt"), os.path.join(work, "faulted", "ckpt.pt"))
            check(same is not False, "the final weights or optimizer state differ from the uninterrupted run's")
            if same:
                counts["final checkpoints equal to the uninterrupted run's"] += 1
            else:
                print("  final weights: not compared (no Python torch)")
            if dropout == 0.0:
                full_disk(runner, counts)
    except Failure as failure:
        print(f"FAIL (seed {args.seed}): {failure}", file=sys.stderr)
        print(f"work folder kept: {work}", file=sys.stderr)
        return 1
    shutil.rmtree(work, ignore_errors=True)
    for name, count in counts.items():
        print(f"{name}: {count}")
    if counts["SIGKILL"] < 2 * args.kills or counts["killed while writing ckpt.pt"] == 0:
        print(f"FAIL: expected {2 * args.kills} SIGKILLs, some during a write: {counts}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
