#!/usr/bin/env python3
"""Run Python nanoGPT's train.py (or bench.py) as it is and report its peak memory when it ends.

Run it from a nanoGPT checkout (train.py reads configurator.py, model.py and data/ from the
current folder):

  cd ../nanoGPT && PATH/TO/.venv/bin/python PATH/TO/tools/nanogpt_runner.py [--threads T] --device=cpu ...

The runner's own options come first, everything after them goes to the script as its command
line:

  --threads T                torch's thread count (as the port's num_threads sets it)
  --script FILE              the script to run instead of train.py (bench.py, for instance)
  --cuda-memory-limit BYTES  cap torch's CUDA caching allocator at BYTES of the GPU, as a smaller
                             GPU would (torch.cuda.set_per_process_memory_fraction); without
                             CUDA it only says that no cap applies

It then executes the script as __main__ with runpy; the file is not changed. Without CUDA,
torch.cuda.synchronize becomes a no-op first, since bench.py calls it unconditionally. When
the script ends, normally or with an error, the runner prints one line per CUDA device that
torch used, then the process's own peak resident set; an out-of-memory error is named first:

  nanogpt_runner: out_of_memory: CUDA out of memory. Tried to allocate ...
  nanogpt_runner: cuda:0 max_memory_allocated_bytes=N max_memory_reserved_bytes=M
  nanogpt_runner: peak_rss_bytes=N

tools/nanogpt_compare.py reads the CUDA lines; for the resident set it measures the process
from outside (wait4), which gives the same figure.
"""

import os
import resource
import runpy
import sys

import torch


def report_peaks():
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        # train.py may run on any cuda:N without making it the current device: report every one
        for index in range(torch.cuda.device_count()):
            allocated = torch.cuda.max_memory_allocated(index)
            if allocated > 0:
                print(f"nanogpt_runner: cuda:{index} max_memory_allocated_bytes={allocated} "
                      f"max_memory_reserved_bytes={torch.cuda.max_memory_reserved(index)}")
    rss_unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    print(f"nanogpt_runner: peak_rss_bytes={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * rss_unit}",
          flush=True)


def positive_int(args, option):
    if len(args) < 2 or not args[1].isdigit() or int(args[1]) < 1:
        sys.exit(f"nanogpt_runner: {option} expects a positive integer")
    return int(args[1])


def cap_cuda_memory(limit_bytes):
    if not torch.cuda.is_available():
        print(f"nanogpt_runner: no CUDA, the memory limit of {limit_bytes} bytes is not applied", flush=True)
        return
    total = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
    fraction = min(1.0, limit_bytes / total)
    torch.cuda.set_per_process_memory_fraction(fraction)
    print(f"nanogpt_runner: cuda memory limit {limit_bytes} bytes = {fraction:.4f} of {total}", flush=True)


def is_out_of_memory(error):
    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)  # torch >= 1.13
    return (oom_type is not None and isinstance(error, oom_type)) or "out of memory" in str(error)


def main():
    args = sys.argv[1:]
    script = "train.py"
    while args[:1] and args[0] in ("--threads", "--script", "--cuda-memory-limit"):
        if args[0] == "--threads":
            torch.set_num_threads(positive_int(args, "--threads"))
        elif args[0] == "--script":
            if len(args) < 2:
                sys.exit("nanogpt_runner: --script expects a file name")
            script = args[1]
        else:
            cap_cuda_memory(positive_int(args, "--cuda-memory-limit"))
        args = args[2:]
    if not os.path.exists(script):
        sys.exit(f"nanogpt_runner: no {script} in {os.getcwd()}; run from a nanoGPT checkout")
    if not torch.cuda.is_available():
        torch.cuda.synchronize = lambda device=None: None  # bench.py synchronizes even on the CPU
    sys.path.insert(0, os.getcwd())  # the scripts import model.py from their own folder
    sys.argv = [script] + args
    try:
        runpy.run_path(script, run_name="__main__")
    except Exception as error:
        if is_out_of_memory(error):
            print(f"nanogpt_runner: out_of_memory: {str(error).splitlines()[0] if str(error) else type(error).__name__}",
                  flush=True)
        raise
    finally:
        report_peaks()


if __name__ == "__main__":
    main()
