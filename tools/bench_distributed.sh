#!/usr/bin/env bash
# Data-parallel scaling on this machine: nanoGPT's baby GPT (configs/train_shakespeare_char.yaml)
# on the CPU, one process against two Gloo processes at the same tokens per iteration (one process
# accumulates 2 micro-batches of --batch_size x 256, two processes run 1 each). Prints a Markdown
# table: ms per iteration, tokens/s in all and per process, the gradient all-reduce per step (from
# the first bucket's launch to the last one's completion, and the part backward waited for), the
# speed-up against one process on one core and the efficiency (speed-up per core used).
#
# usage: tools/bench_distributed.sh [--iters N] [--batch_size B] [--build DIR] [--launcher auto|torchrun|processes]
#   --iters N        iterations 0..N per run (default 4); iteration 0 is not timed
#   --batch_size B   micro-batch (default 32; the config's 64 needs 5.6 GB of RSS per process,
#                    and two of them got one killed by the kernel's OOM killer on a shared 23 GB machine)
#   The data is Tiny Shakespeare from $NANOGPT_SHARED_DATA/tinyshakespeare/input.txt (default
#   ../shared/data), prepared into a temporary folder. torchrun is the Python's
#   torch.distributed.run: $NANOGPT_PYTHON, default the project's venv (tools/setup.sh);
#   --launcher auto takes it where that Python has torch, else starts the processes itself.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build"
iters=4
batch_size=32
launcher=auto
while [ $# -gt 0 ]; do
  case "$1" in
    --iters) iters="$2"; shift 2 ;;
    --batch_size) batch_size="$2"; shift 2 ;;
    --build) build="$2"; shift 2 ;;
    --launcher) launcher="$2"; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
nanogpt="$build/nanogpt"
[ -x "$nanogpt" ] || { echo "no $nanogpt: build first (tools/setup.sh)" >&2; exit 1; }
python=${NANOGPT_PYTHON:-$root/.venv/bin/python}
command -v "$python" > /dev/null || python=python3  # the summary below needs only the standard library
if [ "$launcher" = auto ]; then
  if "$python" -c "import torch.distributed.run" 2> /dev/null; then launcher=torchrun; else launcher=processes; fi
fi
input="${NANOGPT_SHARED_DATA:-$root/../shared/data}/tinyshakespeare/input.txt"
work=$(mktemp -d)
trap 'if [ -n "${finished:-}" ]; then rm -rf "$work"; else echo "logs kept in $work" >&2; fi' EXIT
if [ -f "$input" ]; then
  "$nanogpt" prepare char --input "$input" --out-dir "$work/data" > /dev/null
else
  "$nanogpt" prepare char --out-dir "$work/data" > /dev/null  # downloads Tiny Shakespeare
fi

common=("$root/configs/train_shakespeare_char.yaml" --device=cpu --backend=gloo --data_dir="$work/data"
        --max_iters="$iters" --batch_size="$batch_size" --eval_interval=1000000 --eval_iters=1 --log_interval=1 --always_save_checkpoint=false)

run_one() {  # out name, threads
  OMP_NUM_THREADS=$2 OPENBLAS_NUM_THREADS=$2 "$nanogpt" train "${common[@]}" --num_threads="$2" \
    --gradient_accumulation_steps=2 --out_dir="$work/$1" > "$work/$1.log" 2>&1 \
    || { cat "$work/$1.log" >&2; exit 1; }
}

run_two() {  # out name
  if [ "$launcher" = torchrun ]; then
    OPENBLAS_NUM_THREADS=1 "$python" -m torch.distributed.run --standalone --nproc_per_node=2 --no_python -r 1 -t 1 \
      "$nanogpt" train "${common[@]}" --num_threads=1 --gradient_accumulation_steps=2 --out_dir="$work/$1" \
      > "$work/$1.log" 2>&1 || { cat "$work/$1.log" >&2; exit 1; }
  else
    local port=$((20000 + RANDOM % 20000)) pids=()
    for rank in 0 1; do
      RANK=$rank LOCAL_RANK=$rank WORLD_SIZE=2 LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
        OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$nanogpt" train "${common[@]}" --num_threads=1 \
        --gradient_accumulation_steps=2 --out_dir="$work/$1" > "$work/$1.rank$rank.log" 2>&1 &
      pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || { cat "$work/$1".rank*.log >&2; exit 1; }; done
  fi
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores), launcher for 2 processes: $launcher" >&2
run_one one_1thread 1
run_one one_2threads 2
run_two two_processes
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

echo "baby GPT, micro-batch $batch_size x 256, 2 micro-batches per iteration, iterations 1..$iters (medians)"
"$python" - "$work" <<'PY'
import json, statistics, sys
work = sys.argv[1]

def summary(name):
    rows = [json.loads(l) for l in open(f"{work}/{name}/metrics.jsonl")]
    its = [r for r in rows if r["kind"] == "iter" and r["iter"] >= 1]  # iteration 0 warms up
    med = lambda key: statistics.median(r[key] for r in its) if its and key in its[0] else None
    return {"ms": med("ms"), "tps": med("tokens_per_s"), "ar": med("allreduce_ms"), "exp": med("allreduce_exposed_ms")}

runs = [("1 process, 1 thread", "one_1thread", 1, 1), ("1 process, 2 threads", "one_2threads", 1, 2),
        ("2 processes (Gloo), 1 thread each", "two_processes", 2, 2)]
base = summary("one_1thread")["tps"]
print("| run | ms/iter | tokens/s | tokens/s per process | all-reduce ms/step | of which exposed | speed-up | efficiency |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for label, name, procs, cores in runs:
    s = summary(name)
    ar = f"{s['ar']:.0f}" if s["ar"] is not None else "-"
    ex = f"{s['exp']:.0f}" if s["exp"] is not None else "-"
    speedup = s["tps"] / base
    print(f"| {label} | {s['ms']:.0f} | {s['tps']:.0f} | {s['tps'] / procs:.0f} | {ar} | {ex} | {speedup:.2f} | {speedup / cores:.2f} |")
print()
print("speed-up: tokens/s against 1 process on 1 thread; efficiency: speed-up per core used")
PY
finished=1
