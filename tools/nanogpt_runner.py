#!/usr/bin/python3
"""Run Python nanoGPT's train.py as it is and report its peak memory when it ends.

Run it from a nanoGPT checkout (train.py reads configurator.py, model.py and data/ from the
current folder):

  cd ../nanoGPT && /usr/bin/python3 PATH/TO/tools/nanogpt_runner.py [--threads T] --device=cpu ...

Everything after the runner's own `--threads T` goes to train.py as its command line. The
runner sets torch's thread count (as the port's num_threads does), then executes train.py as
__main__ with runpy; the file is not changed. When train.py ends, normally or with an error,
it prints one line per CUDA device that torch used, then the process's own peak resident set:

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


def main():
    args = sys.argv[1:]
    if args[:1] == ["--threads"]:
        if len(args) < 2 or not args[1].isdigit() or int(args[1]) < 1:
            sys.exit("nanogpt_runner: --threads expects a positive integer")
        torch.set_num_threads(int(args[1]))
        args = args[2:]
    if not os.path.exists("train.py"):
        sys.exit(f"nanogpt_runner: no train.py in {os.getcwd()}; run from a nanoGPT checkout")
    sys.path.insert(0, os.getcwd())  # train.py imports model.py from its own folder
    sys.argv = ["train.py"] + args
    try:
        runpy.run_path("train.py", run_name="__main__")
    finally:
        report_peaks()


if __name__ == "__main__":
    main()
