#!/usr/bin/env bash
# The GPU check (docs/performance.md, "GPU check"): in one run on a GPU host,
#   1. build `nanogpt` against the LibTorch of the host's PyTorch (tools/gpu/build.sh),
#   2. logits of a small model on CUDA in bfloat16 against the CPU in float32 (nanogpt check-logits),
#      and the optimizer's fused update against LibTorch's AdamW on CUDA (nanogpt check-adamw),
#   3. nanogpt bench, GPT-2 124M shape, bfloat16, micro-batch 16 and 32,
#   4. nanoGPT's bench.py on the same shapes, eager and with compile=True,
#   5. the seed config (configs/train_gpt2_12gb.yaml; nanoGPT's config/train_gpt2.py with the same
#      micro-batch 16 x 1024 x 32) for a few iterations under a 12 GiB cap on both sides,
#   6. one markdown table of it all (tools/gpu/check_table.py), with the raw logs, in $OUT.
# Every step has its own timeout and the whole run a budget; a step that fails, times out or finds
# the budget spent shows so in the table and the others still run. Exit status 1 when a step failed.
#
#   tools/gpu/check.sh --prepare       on the Debian machine: copy nanoGPT into .device-nanogpt/
#   tools/gpu/check.sh                 on the GPU host (carry .device-kit and .device-nanogpt)
#   tools/gpu/check.sh --cpu-dry-run   every step on this CPU with tiny shapes, same table
#
# Options: --out DIR (default $OUT, else out-gpu-check), --build-dir DIR (default build-gpu; dry run:
# build, used as configured), --binary PATH (skip the build), --nanogpt DIR (default .device-nanogpt),
# --budget-s N (default 470; dry run 600), --jobs N (default nproc). Environment: PYTHON, the
# interpreter with PyTorch (default python3, the host's; dry run .venv/bin/python); NANOGPT_DIR for --prepare
# (default ../nanoGPT); KEEP_WORK=1 keeps the scratch folder (synthetic data, out_dirs).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

mode=gpu prepare=0 binary="" build_dir="" out=${OUT:-} budget_s="" nanogpt=$root/.device-nanogpt jobs=$(nproc)
while [ $# -gt 0 ]; do
  case $1 in
    --cpu-dry-run) mode=cpu-dry-run ;;
    --prepare) prepare=1 ;;
    --binary) binary=$2; shift ;;
    --build-dir) build_dir=$2; shift ;;
    --out) out=$2; shift ;;
    --budget-s) budget_s=$2; shift ;;
    --nanogpt) nanogpt=$2; shift ;;
    --jobs) jobs=$2; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "check.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ $prepare = 1 ]; then
  # a copy of the checkout's files, without .git, datasets (*.bin) and checkpoints (*.pt)
  src=${NANOGPT_DIR:-$root/../nanoGPT}
  [ -f "$src/train.py" ] && [ -f "$src/bench.py" ] || { echo "check.sh: no nanoGPT checkout in $src (set NANOGPT_DIR)" >&2; exit 2; }
  rm -rf .device-nanogpt && mkdir .device-nanogpt
  tar -C "$src" --exclude=.git --exclude='*.bin' --exclude='*.pt' --exclude='*.pkl' -cf - . | tar -C .device-nanogpt -xf -
  echo "copied $src to .device-nanogpt/ ($(du -sh .device-nanogpt | cut -f1); ignored by .gitignore)"
  [ -d .device-kit/root ] || echo "still missing: .device-kit/ (run ../shared/tools/device-kit.sh)"
  exit 0
fi

# --- settings of each mode ---
if [ $mode = gpu ]; then
  python=${PYTHON:-python3}
  build_dir=${build_dir:-build-gpu} budget_s=${budget_s:-470}
  device=cuda bench_dtype=bfloat16 seed_dtype=bfloat16
  shape=(--n_layer=12 --n_head=12 --n_embd=768) block=1024 micro_batches=(16 32) burn_in=10 timed_steps=20
  logits_shape=(--n_layer=6 --n_head=6 --n_embd=384 --block_size=256) logits_batch=4
  seed_shape=() seed_iters=3 seed_eval_iters=2 data_tokens=1000000
  nanogpt_bench_py=bench.py
  title="GPU check: nanogpt-cpp against nanoGPT, GPT-2 124M shape, bfloat16"
  timeouts=(build=300 logits=90 adamw=30 port_bench=120 nanogpt_eager=120 seed=150 nanogpt_compiled=240)
else
  python=${PYTHON:-$root/.venv/bin/python}
  build_dir=${build_dir:-build} budget_s=${budget_s:-600}
  device=cpu bench_dtype=float32 seed_dtype=float32  # nanoGPT's bench.py runs float32 on a CPU anyway
  shape=(--n_layer=2 --n_head=2 --n_embd=64) block=64 micro_batches=(2 4) burn_in=2 timed_steps=3
  logits_shape=(--n_layer=2 --n_head=2 --n_embd=64 --block_size=64) logits_batch=2
  seed_shape=(--n_layer=2 --n_head=2 --n_embd=64 --block_size=64 --batch_size=4 --gradient_accumulation_steps=2)
  seed_iters=2 seed_eval_iters=1 data_tokens=100000
  nanogpt_bench_py=bench_dry_run.py
  title="GPU check, CPU dry run: tiny shapes, float32 (bfloat16 for the logits); not performance figures"
  timeouts=(build=600 logits=120 adamw=60 port_bench=120 nanogpt_eager=120 seed=180 nanogpt_compiled=300)
fi
timeout_of() { local t; for t in "${timeouts[@]}"; do [ "${t%%=*}" = "$1" ] && echo "${t#*=}"; done; }
cap=12GiB cap_bytes=$((12 * 1024 * 1024 * 1024))
out=${out:-$root/out-gpu-check}
mkdir -p "$out" && out=$(cd "$out" && pwd)
rm -rf "$out/steps" "$out/logs" "$out/results" "$out/check.md" "$out/check.json"
mkdir -p "$out/steps" "$out/logs" "$out/results"
work=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check-XXXXXX")
[ "${KEEP_WORK:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT
if [ $mode = gpu ] && [ -d "$root/.device-kit/root/usr" ]; then
  export LD_LIBRARY_PATH=$root/.device-kit/root/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
fi
start_s=$(date +%s)

steps=(build logits adamw)
for mb in "${micro_batches[@]}"; do steps+=("port_bench_mb$mb"); done
for mb in "${micro_batches[@]}"; do steps+=("nanogpt_eager_mb$mb"); done
steps+=(port_seed nanogpt_seed)
for mb in "${micro_batches[@]}"; do steps+=("nanogpt_compiled_mb$mb"); done

# --- the run's description, for the table ---
torch_line=$("$python" -c 'import torch; print(torch.__version__, torch.version.cuda or "cpu", hasattr(torch, "compile"))' 2>&1 | tail -1)
gpu_line=$(command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -1)
# values go through the environment, so that no quote in them can break the Python
GPU_CHECK_DESCRIPTION="Host: $(hostname), $(nproc) cores; ${gpu_line:-no GPU seen by nvidia-smi}; Python torch: \
$torch_line (version, CUDA, has torch.compile). Shapes: ${shape[*]} --block_size=$block, vocab 50304, bias false; \
nanogpt bench: $burn_in + $timed_steps steps (bench.py: 10 + 20). Ratios are the port's speed over nanoGPT's (above 1: \
the port is faster); nanoGPT's MFU is recomputed on the port's peak FLOP/s (same shapes, same FLOPs per token). \
Seed run: $((seed_iters + 1)) iterations, 12 GiB cap (port: memory_limit; nanoGPT, eager: \
torch.cuda.set_per_process_memory_fraction; on a CPU nanoGPT has no cap and its peak is the RSS)." \
GPU_CHECK_STEPS="${steps[*]}" GPU_CHECK_MICRO_BATCHES="${micro_batches[*]}" GPU_CHECK_TITLE="$title" \
GPU_CHECK_MODE=$mode GPU_CHECK_BLOCK=$block GPU_CHECK_DEVICE=$device GPU_CHECK_BUDGET=$budget_s \
"$python" - "$out/meta.json" <<'EOF'
import json, os, sys
env = os.environ
json.dump({"mode": env["GPU_CHECK_MODE"], "title": env["GPU_CHECK_TITLE"], "description": env["GPU_CHECK_DESCRIPTION"],
           "micro_batches": [int(m) for m in env["GPU_CHECK_MICRO_BATCHES"].split()],
           "block_size": int(env["GPU_CHECK_BLOCK"]), "cap": "12 GiB", "seed_compile": False,
           "device": env["GPU_CHECK_DEVICE"], "steps": env["GPU_CHECK_STEPS"].split(),
           "budget_s": int(env["GPU_CHECK_BUDGET"])}, open(sys.argv[1], "w"), indent=1)
EOF

table() { "$python" "$root/tools/gpu/check_table.py" "$out" > /dev/null 2>> "$out/logs/check_table.log"; }

record() {  # record NAME STATUS RC SECONDS TIMEOUT_S REASON
  printf '{"step": "%s", "status": "%s", "rc": %s, "seconds": %s, "timeout_s": %s, "reason": "%s"}\n' \
    "$1" "$2" "$3" "$4" "$5" "${6//\"/\'}" > "$out/steps/$1.json"
  echo "== $1: $2${6:+ ($6)} after $4 s"
  table
}

skip() { record "$1" skipped 0 0 0 "$2"; }

# run_step NAME TIMEOUT_S COMMAND...: the command under its timeout (cut to what the budget has
# left), stdout and stderr in logs/NAME.log; returns its success
run_step() {
  local name=$1 limit=$2
  shift 2
  local left=$((budget_s - ($(date +%s) - start_s) - 10))
  if [ $left -lt 20 ]; then skip "$name" "the budget of $budget_s s was spent"; return 1; fi
  [ "$limit" -gt $left ] && limit=$left
  echo "== $name: timeout $limit s: $*"
  local t0 rc status
  t0=$(date +%s)
  { echo "\$ $*"; timeout --kill-after=10 "$limit" "$@"; } > "$out/logs/$name.log" 2>&1
  rc=$?
  status=ok
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then status=timeout; elif [ $rc -ne 0 ]; then status=failed; fi
  [ $status = ok ] || tail -n 8 "$out/logs/$name.log" | sed 's/^/   | /'
  record "$name" $status $rc $(($(date +%s) - t0)) "$limit" ""
  [ $status = ok ]
}

# --- 1. build ---
if [ -n "$binary" ]; then
  skip build "--binary $binary given"
  [ -x "$binary" ] || binary=""
elif [ $mode = gpu ]; then
  run_step build "$(timeout_of build)" env PYTHON="$python" bash "$root/tools/gpu/build.sh" "$build_dir" "$jobs" \
    && binary=$(cd "$build_dir" && pwd)/nanogpt
else
  run_step build "$(timeout_of build)" bash "$root/tools/gpu/build.sh" --local "$build_dir" "$jobs" \
    && binary=$(cd "$build_dir" && pwd)/nanogpt
fi
binary=${binary:+$(realpath "$binary")}

# nanoGPT's scripts, linked into a scratch folder with a synthetic dataset beside them
nanogpt_ready=""
if [ ! -f "$nanogpt/bench.py" ] || [ ! -f "$nanogpt/train.py" ]; then
  nanogpt_ready="no nanoGPT tree in $nanogpt (tools/gpu/check.sh --prepare)"
else
  mkdir -p "$work/nanogpt/data/synthetic"
  for f in model.py train.py bench.py configurator.py config; do ln -s "$(realpath "$nanogpt/$f")" "$work/nanogpt/$f"; done
  if [ $mode = cpu-dry-run ]; then
    # bench.py fixes the model at 12 x 12 x 768 in its source; the dry run takes a copy with a tiny one
    sed 's/n_layer = 12, n_head = 12, n_embd = 768,/n_layer = 2, n_head = 2, n_embd = 64,/' "$nanogpt/bench.py" \
      > "$work/nanogpt/$nanogpt_bench_py"
    grep -q "n_layer = 2, n_head = 2, n_embd = 64," "$work/nanogpt/$nanogpt_bench_py" \
      || nanogpt_ready="bench.py has no 'n_layer = 12, n_head = 12, n_embd = 768,' to shrink for the dry run"
  fi
fi
# random GPT-2 token ids, uint16 as nanoGPT's prepare.py writes them, for both seed runs
"$python" - "$work/nanogpt/data/synthetic" "$data_tokens" <<'EOF'
import array, os, random, sys
folder, count = sys.argv[1], int(sys.argv[2])
os.makedirs(folder, exist_ok=True)
rng = random.Random(1337)
for split in ("train", "val"):
    with open(os.path.join(folder, split + ".bin"), "wb") as f:
        array.array("H", (rng.randrange(50257) for _ in range(count))).tofile(f)
EOF

# --- 2. logits: the checked device and dtype against the CPU in float32 ---
if [ -z "$binary" ]; then
  skip logits "no nanogpt binary"
else
  run_step logits "$(timeout_of logits)" "$binary" check-logits "${logits_shape[@]}" --device=$device --dtype=bfloat16 \
    --batch-size "$logits_batch" --json "$out/results/logits.json"
fi

# --- 2b. the optimizer's update on the device against LibTorch's AdamW ---
if [ -z "$binary" ]; then
  skip adamw "no nanogpt binary"
else
  run_step adamw "$(timeout_of adamw)" "$binary" check-adamw --device=$device --json "$out/results/adamw.json"
fi

# --- 3. nanogpt bench ---
for mb in "${micro_batches[@]}"; do
  if [ -z "$binary" ]; then skip "port_bench_mb$mb" "no nanogpt binary"; continue; fi
  run_step "port_bench_mb$mb" "$(timeout_of port_bench)" "$binary" bench --synthetic --burn-in "$burn_in" --steps "$timed_steps" \
    --json "$out/results/port_bench_mb$mb.json" "${shape[@]}" --block_size=$block --batch_size="$mb" \
    --gradient_accumulation_steps=1 --dtype=$bench_dtype --device=$device --bias=false --dropout=0.0
done

# --- 4. nanoGPT's bench.py, eager (compiled at the end: it is the slowest step) ---
nanogpt_bench() {  # nanogpt_bench NAME MB COMPILE
  if [ -n "$nanogpt_ready" ]; then skip "$1" "$nanogpt_ready"; return; fi
  run_step "$1" "$(timeout_of "${1%_mb*}")" \
    env -C "$work/nanogpt" "$python" "$root/tools/nanogpt_runner.py" --script "$nanogpt_bench_py" \
    --batch_size="$2" --block_size=$block --bias=False --real_data=False --compile="$3" --device=$device \
    --dtype=$bench_dtype --profile=False
}
for mb in "${micro_batches[@]}"; do nanogpt_bench "nanogpt_eager_mb$mb" "$mb" False; done

# --- 5. the seed config under the cap ---
if [ -z "$binary" ]; then
  skip port_seed "no nanogpt binary"
else
  run_step port_seed "$(timeout_of seed)" "$binary" train "$root/configs/train_gpt2_12gb.yaml" --device=$device \
    --dtype=$seed_dtype --memory_limit=$cap "${seed_shape[@]}" --data_dir="$work/nanogpt/data/synthetic" \
    --out_dir="$work/port-seed" --max_iters=$seed_iters --eval_iters=$seed_eval_iters --log_interval=1 \
    --wandb_log=false --always_save_checkpoint=false
  cp "$work/port-seed/metrics.jsonl" "$out/results/port_seed_metrics.jsonl" 2> /dev/null
  table
fi
if [ ! -f "$nanogpt/train.py" ]; then
  skip nanogpt_seed "$nanogpt_ready"
else
  # config/train_gpt2.py is 12 x 40 micro-steps; the seed config's 16 x 32 is given on top of it
  run_step nanogpt_seed "$(timeout_of seed)" env -C "$work/nanogpt" "$python" "$root/tools/nanogpt_runner.py" \
    --cuda-memory-limit $cap_bytes config/train_gpt2.py --batch_size=16 --block_size=1024 \
    --gradient_accumulation_steps=32 "${seed_shape[@]}" --device=$device --dtype=$seed_dtype --compile=False \
    --dataset=synthetic --out_dir="$work/nanogpt-seed" --max_iters=$seed_iters --eval_iters=$seed_eval_iters \
    --log_interval=1 --wandb_log=False --always_save_checkpoint=False
fi

# --- 4b. nanoGPT's bench.py with torch.compile ---
has_compile=$("$python" -c 'import torch; print(hasattr(torch, "compile"))' 2> /dev/null)
for mb in "${micro_batches[@]}"; do
  if [ "$has_compile" != True ]; then
    skip "nanogpt_compiled_mb$mb" "torch $(echo "$torch_line" | cut -d' ' -f1) has no torch.compile"
  else
    nanogpt_bench "nanogpt_compiled_mb$mb" "$mb" True
  fi
done

# --- 6. the table ---
table
cat "$out/check.md"
echo "(also in $out/check.md, figures in check.json, logs in logs/; $(($(date +%s) - start_s)) s in all)"
failed=$(grep -l -E '"status": "(failed|timeout)"' "$out"/steps/*.json 2> /dev/null | wc -l)
[ "$failed" -eq 0 ] || { echo "$failed step(s) failed or timed out"; exit 1; }
