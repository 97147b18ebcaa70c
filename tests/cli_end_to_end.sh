#!/usr/bin/env bash
# End to end through the binary: prepare a char dataset, train a few iterations, resume,
# sample (with and without the KV cache), and the exit codes of bad input.
set -euo pipefail
nanogpt="$1"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }

for i in $(seq 1 300); do echo "First Citizen: we are accounted poor citizens, the patricians good."; done > input.txt
"$nanogpt" prepare char --input input.txt --out-dir data/tiny > prepare.log
grep -q "vocab size: 23" prepare.log || fail "prepare: $(cat prepare.log)"
[ -s data/tiny/train.bin ] && [ -s data/tiny/val.bin ] && [ -s data/tiny/meta.json ] && [ -s data/tiny/meta.pkl ] \
  || fail "prepare outputs missing"

cat > tiny.yaml <<'YAML'
out_dir: out-tiny
dataset: tiny
device: cpu
n_layer: 2
n_head: 2
n_embd: 32
block_size: 32
batch_size: 8
gradient_accumulation_steps: 1
max_iters: 30
lr_decay_iters: 30
warmup_iters: 5
learning_rate: 1.0e-2
min_lr: 1.0e-3
eval_interval: 10
eval_iters: 4
log_interval: 5
num_threads: 1
always_save_checkpoint: true
YAML
expect_exit() {  # expected code, pattern in stderr, command...
  local code=$1 pattern=$2; shift 2
  set +e; "$@" > /dev/null 2> err.txt; local got=$?; set -e
  [ "$got" = "$code" ] || fail "exit $got (expected $code) for: $* -- $(cat err.txt)"
  grep -q -- "$pattern" err.txt || fail "stderr of '$*' lacks '$pattern': $(cat err.txt)"
}
"$nanogpt" train tiny.yaml --max_iters=20 > train.log
grep -q "^iter 20: loss" train.log || fail "train log: $(tail -5 train.log)"
grep -q "^step 20: train loss" train.log || fail "no eval line"
[ -f out-tiny/ckpt.pt ] || fail "no checkpoint"
[ "$(grep -c '"kind":"iter"' out-tiny/metrics.jsonl)" = 5 ] || fail "metrics.jsonl: $(cat out-tiny/metrics.jsonl)"

# The binary makes idle OpenMP workers sleep (they would spin on the cores OpenBLAS needs) unless
# OMP_WAIT_POLICY is set; on one core it has no workers to put to sleep.
if [ "$(getconf _NPROCESSORS_ONLN)" -ge 2 ]; then
  (unset OMP_WAIT_POLICY; "$nanogpt" train tiny.yaml --max_iters=0 --out_dir=out-policy > policy.log)
  grep -q "^device: cpu, 1 thread (OMP_WAIT_POLICY=PASSIVE), LibTorch" policy.log || fail "wait policy: $(head -4 policy.log)"
fi
OMP_WAIT_POLICY=active "$nanogpt" train tiny.yaml --max_iters=0 --out_dir=out-policy > policy.log
grep -q "(OMP_WAIT_POLICY=active)" policy.log || fail "the user's wait policy was not kept: $(head -4 policy.log)"

# A removed config key is an error that says so (exit 2).
expect_exit 2 "config key 'split_products' was removed" "$nanogpt" train tiny.yaml --split_products=false

"$nanogpt" train tiny.yaml --init_from=resume > resume.log
grep -q "Resuming training from out-tiny" resume.log || fail "resume"
expect_exit 2 "block_size is 16 but the checkpoint in 'out-tiny' has 32" "$nanogpt" train tiny.yaml --init_from=resume --block_size=16
"$nanogpt" train tiny.yaml --init_from=resume --n_layer=3 --max_iters=31 > resume_shape.log
grep -q "note: resuming keeps the checkpoint's n_layer 2 (the config's 3 is not used" resume_shape.log \
  || fail "resume with another n_layer: $(head -8 resume_shape.log)"

# a fresh run in that out_dir moves the earlier run's checkpoint and metrics aside, not over
cp out-tiny/ckpt.pt earlier.pt
"$nanogpt" train tiny.yaml --max_iters=10 > fresh.log
grep -q "moved it to ckpt.prev.pt and its metrics.jsonl to metrics.prev.jsonl" fresh.log || fail "fresh run: $(head -12 fresh.log)"
cmp -s earlier.pt out-tiny/ckpt.prev.pt || fail "ckpt.prev.pt is not the earlier run's checkpoint"
[ -s out-tiny/metrics.prev.jsonl ] && [ -f out-tiny/ckpt.pt ] || fail "after a fresh run: $(ls out-tiny)"
# eval_only writes no checkpoint: it moves nothing and adds its eval line to the metrics
cp out-tiny/ckpt.pt fresh.pt
lines=$(wc -l < out-tiny/metrics.jsonl)
"$nanogpt" train tiny.yaml --eval_only=true > eval_only.log
cmp -s fresh.pt out-tiny/ckpt.pt && cmp -s earlier.pt out-tiny/ckpt.prev.pt || fail "eval_only moved a checkpoint"
[ "$(wc -l < out-tiny/metrics.jsonl)" = $((lines + 1)) ] || fail "eval_only metrics: $(tail -2 out-tiny/metrics.jsonl)"
grep -q "^iter 30: loss" resume.log || fail "resume did not reach 30"
grep -q "^iter 20: loss" resume.log || fail "resume did not restart at 20"

"$nanogpt" sample --out_dir=out-tiny --start="First" --num_samples=2 --max_new_tokens=40 --seed=7 > sample.txt
[ "$(grep -c -- '^---------------$' sample.txt)" = 2 ] || fail "sample count: $(cat sample.txt)"
head -1 sample.txt | grep -q "^First" || fail "sample does not start with the prompt"
"$nanogpt" sample --out_dir=out-tiny --start="First" --num_samples=1 --max_new_tokens=60 --top_k=1 > greedy_cached.txt
"$nanogpt" sample --out_dir=out-tiny --start="First" --num_samples=1 --max_new_tokens=60 --top_k=1 --no_kv_cache > greedy_full.txt
cmp -s greedy_cached.txt greedy_full.txt || fail "greedy text differs with and without the KV cache"
echo "Citizen" > prompt.txt
"$nanogpt" sample --out_dir=out-tiny --start=FILE:prompt.txt --num_samples=1 --max_new_tokens=5 | head -1 | grep -q "^Citizen" \
  || fail "FILE: prompt"

# A nanoGPT data folder: meta.pkl and no meta.json.
mkdir -p data/pklonly && cp data/tiny/train.bin data/tiny/val.bin data/tiny/meta.pkl data/pklonly/
"$nanogpt" train tiny.yaml --dataset=pklonly --out_dir=out-pkl --max_iters=2 --eval_interval=2 > pkl.log
grep -q "found vocab_size = 23 (inside data/pklonly)" pkl.log || fail "meta.pkl not read: $(head -5 pkl.log)"
"$nanogpt" sample --out_dir=out-pkl --start="First" --num_samples=1 --max_new_tokens=5 | head -1 | grep -q "^First" \
  || fail "sampling with meta.pkl"

# Ctrl-C: the current iteration ends, a checkpoint is written, the exit code is 0.
"$nanogpt" train tiny.yaml --out_dir=out-int --max_iters=100000 --eval_interval=100000 > int.log &
pid=$!
for _ in $(seq 1 100); do grep -q "^iter 5:" int.log 2>/dev/null && break; sleep 0.1; done
kill -INT $pid
wait $pid || fail "interrupted run exited with $?"
grep -q "^interrupted at iteration" int.log || fail "no interruption message: $(tail -3 int.log)"
[ -f out-int/ckpt.pt ] && [ ! -e out-int/ckpt.pt.tmp ] || fail "no checkpoint after Ctrl-C"

printf "# nanoGPT-style config\nbatch_size = 2 * 4  # micro-batch\nmax_iters = 3\n" > py_config.py
"$nanogpt" config import py_config.py > imported.yaml
grep -qx "batch_size: 8  # micro-batch" imported.yaml || fail "config import: $(cat imported.yaml)"
"$nanogpt" config show tiny.yaml > /dev/null || fail "config show"

# Hugging Face export, then init_from: gpt2 from that folder: the same weights sample the same text.
"$nanogpt" train tiny.yaml --bias=true --out_dir=out-bias --max_iters=2 --eval_interval=2 > bias.log
"$nanogpt" export --format hf --ckpt out-bias/ckpt.pt hf-out > export.log
[ -f hf-out/model.safetensors ] && [ -f hf-out/config.json ] || fail "export: $(cat export.log)"
"$nanogpt" train tiny.yaml --init_from=gpt2 --pretrained_dir=hf-out --out_dir=out-ft --max_iters=1 --eval_interval=1 \
  --learning_rate=0 --decay_lr=false > ft.log  # lr 0: the step leaves the weights as loaded
grep -q "Initializing from OpenAI GPT-2 weights: gpt2 (hf-out)" ft.log || fail "init_from gpt2: $(cat ft.log)"
"$nanogpt" sample --out_dir=out-bias --num_samples=1 --max_new_tokens=30 --top_k=1 > greedy_bias.txt
"$nanogpt" sample --out_dir=out-ft --num_samples=1 --max_new_tokens=30 --top_k=1 > greedy_ft.txt
cmp -s greedy_bias.txt greedy_ft.txt || fail "exported and re-imported weights sample differently"
if [ -f "${NANOGPT_SHARED_DATA:-}/gpt2/encoder.json" ]; then  # sample.py's init_from gpt2: GPT-2 BPE, no dataset
  "$nanogpt" sample --init_from=gpt2 --pretrained_dir=hf-out --vocab_dir="$NANOGPT_SHARED_DATA/gpt2" --start='!' \
    --num_samples=1 --max_new_tokens=5 > gpt2_sample.txt
  head -c 1 gpt2_sample.txt | grep -q '!' || fail "sample --init_from=gpt2: $(cat gpt2_sample.txt)"
  expect_exit 1 "outside the model's vocabulary of" "$nanogpt" sample --init_from=gpt2 --pretrained_dir=hf-out \
    --vocab_dir="$NANOGPT_SHARED_DATA/gpt2" --start=hello
fi

expect_exit 2 "unknown config key 'n_layers' (did you mean 'n_layer'?)" "$nanogpt" train tiny.yaml --n_layers=3
expect_exit 2 "expects an integer, got '1.5'" "$nanogpt" train tiny.yaml --batch_size=1.5
expect_exit 2 "config file 'missing.yaml' does not exist" "$nanogpt" train missing.yaml
expect_exit 1 "data/none/train.bin' does not exist" "$nanogpt" train tiny.yaml --dataset=none --out_dir=out-none
[ ! -e out-none/ckpt.pt ] || fail "a failed run left a checkpoint"
expect_exit 1 "checkpoint 'nowhere/ckpt.pt' does not exist" "$nanogpt" sample --out_dir=nowhere
expect_exit 2 "temperature must be > 0" "$nanogpt" sample --out_dir=out-tiny --temperature=0
expect_exit 2 "does not exist or is not a file" "$nanogpt" prepare char --input nothere.txt --out-dir x
expect_exit 2 "unknown subcommand 'frobnicate'" "$nanogpt" frobnicate
expect_exit 2 "temperature must be > 0, got nan" "$nanogpt" sample --out_dir=out-tiny --temperature=nan
expect_exit 2 "top_k must be >= 0" "$nanogpt" sample --out_dir=out-tiny --top_k=-1
expect_exit 2 "--data_dir 'nowhere' has no meta.json or meta.pkl" "$nanogpt" sample --out_dir=out-tiny --data_dir=nowhere
expect_exit 2 "peak-flops: expected a number in (0, inf), got '-1'" "$nanogpt" bench tiny.yaml --peak-flops=-1
expect_exit 1 "cannot write the profile 'nowhere/p.json'" "$nanogpt" bench tiny.yaml --profile nowhere/p.json
expect_exit 1 "cannot create 'nowhere/f.yaml.tmp'" "$nanogpt" memory tiny.yaml --budget 1GiB --write nowhere/f.yaml
expect_exit 1 "cannot create out_dir 'tiny.yaml'" "$nanogpt" train tiny.yaml --out_dir=tiny.yaml
expect_exit 1 "no gpt2 weights found" "$nanogpt" train tiny.yaml --init_from=gpt2 --pretrained_dir=nowhere
expect_exit 2 "bias: false" "$nanogpt" export --format hf --ckpt out-tiny/ckpt.pt hf-nobias
# a config planned for CUDA on this machine keeps CUDA's backend (nanoGPT's nccl), not this machine's gloo
"$nanogpt" memory tiny.yaml --device cuda --budget 1GiB --write fitted.yaml > /dev/null
grep -q '^device: "cuda"' fitted.yaml && grep -q '^backend: "nccl"' fitted.yaml \
  || fail "memory --device cuda --write: $(grep -E '^(device|backend):' fitted.yaml)"
expect_exit 2 "tiny.yaml:6 (n_embd), command line (n_head): n_embd (32) must be divisible by n_head (3)" \
  "$nanogpt" train tiny.yaml --n_head=3
printf "batch_size = len('ab')\n" > bad_config.py
expect_exit 2 "bad_config.py:1: 'len' is not a literal" "$nanogpt" config import bad_config.py
echo "cli end to end: ok"
