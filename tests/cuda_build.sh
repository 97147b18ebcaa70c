#!/usr/bin/env bash
# The CUDA build (NANOGPT_WITH_CUDA) as a user without a GPU meets it: the binary is linked against
# libtorch_cuda, starts, says it is a CUDA build, trains on the CPU with device auto and says why,
# and answers --device=cuda with one clear error and exit code 1 (a machine without a usable GPU is
# not a bad config). Where a GPU is usable, device auto must choose it instead.
# Usage: tests/cuda_build.sh path/to/nanogpt
set -euo pipefail
nanogpt=$(realpath "$1")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }

readelf -d "$nanogpt" | grep -q 'NEEDED.*\[libtorch_cuda\.so\]' \
  || fail "nanogpt is not linked against libtorch_cuda: $(readelf -d "$nanogpt" | grep NEEDED)"
version=$("$nanogpt" --version)
[[ $version == "nanogpt (LibTorch "*", CUDA build)" ]] || fail "--version: $version"
echo "$version"

for i in $(seq 1 200); do echo "First Citizen: we are accounted poor citizens, the patricians good."; done > input.txt
"$nanogpt" prepare char --input input.txt --out-dir data/tiny > /dev/null
cat > tiny.yaml <<'YAML'
dataset: tiny
n_layer: 1
n_head: 2
n_embd: 16
block_size: 16
batch_size: 4
max_iters: 4
eval_interval: 4
eval_iters: 2
log_interval: 2
num_threads: 1
YAML
"$nanogpt" train tiny.yaml --device=auto --out_dir=out-auto > auto.log || fail "train --device=auto: $(tail -5 auto.log)"
grep -q "^iter 4: loss" auto.log || fail "no iteration 4 in: $(tail -5 auto.log)"
choice=$(grep '^device: ' auto.log)
echo "$choice"
gpu=0
if [[ $choice == "device: cuda"* ]]; then gpu=1; fi
if [ $gpu = 1 ]; then
  [[ $choice == "device: cuda:0 (device auto: a CUDA device is usable)"* ]] || fail "device auto on a GPU: $choice"
  echo "a CUDA device is usable here: the --device=cuda refusal is not tested"
  exit 0
fi
[[ $choice == "device: cpu (device auto: no CUDA device is usable: "*"), "*", LibTorch "*", CUDA build" ]] \
  || fail "device auto without a GPU: $choice"

set +e
"$nanogpt" train tiny.yaml --device=cuda --out_dir=out-cuda > cuda.log 2> cuda.err
code=$?
set -e
[ $code = 1 ] || fail "train --device=cuda without a GPU: exit $code (expected 1): $(cat cuda.err)"
[ "$(wc -l < cuda.err)" = 1 ] || fail "expected one line of error, got: $(cat cuda.err)"
grep -q "^error: device 'cuda': no CUDA device is usable (.*); use device: cpu, or auto" cuda.err \
  || fail "the error does not say that no CUDA device is usable: $(cat cuda.err)"
[ ! -e out-cuda/ckpt.pt ] || fail "a checkpoint was written"
cat cuda.err
echo "cuda build: ok"
