#!/usr/bin/env bash
# Sampled text equals Python nanoGPT's sample.py, character for character: a char-level checkpoint
# trained here (block 64, so 300 new tokens crop the context), sampled by both with the same seed,
# with the KV cache and without it, with sample.py's defaults and with another start, seed,
# temperature and top-k.
# Needs a karpathy/nanoGPT checkout in NANOGPT_DIR and torch in $NANOGPT_PYTHON; skips (77) otherwise.
# Usage: tests/sample_parity.sh path/to/nanogpt
set -euo pipefail
nanogpt_script=sample.py
source "$(dirname "$0")/nanogpt_side_by_side.sh"
"$nanogpt" prepare char --input "$input" --out-dir "$work/data/shakespeare_char" > /dev/null
"$nanogpt" train "$root/configs/train_shakespeare_char.yaml" --out_dir="$work/out" --data_dir="$work/data/shakespeare_char" \
  --device=cpu --compile=false --n_layer=2 --n_head=2 --n_embd=64 --block_size=64 --batch_size=8 \
  --max_iters=40 --eval_interval=40 --eval_iters=2 --log_interval=40 --num_threads=2 > "$work/train.log"

# sample.py reads data/<dataset>/meta.pkl and configurator.py from its working directory
cd "$work"
for f in sample.py model.py configurator.py; do ln -s "$NANOGPT_DIR/$f" .; done
# sample.py imports tiktoken at the top; a char-level checkpoint never uses it
"$python" -c "import tiktoken" 2> /dev/null || printf 'def get_encoding(name):\n    raise ImportError\n' > tiktoken.py

compare() {  # name, then the options both take
  local name=$1; shift
  "$python" -c 'import runpy, sys, torch
torch.set_num_threads(1)
sys.argv = ["sample.py"] + sys.argv[1:]
sys.path.insert(0, ".")
runpy.run_path("sample.py", run_name="__main__")' --out_dir=out --device=cpu --dtype=float32 "$@" \
    | grep -v -e '^Overriding: ' -e '^number of parameters: ' -e '^Loading meta from ' > "$name.nanogpt"
  "$nanogpt" sample --out_dir=out --num_threads=1 "$@" > "$name.port"
  "$nanogpt" sample --out_dir=out --num_threads=1 --no_kv_cache "$@" > "$name.port-no-cache"
  [ "$(wc -c < "$name.nanogpt")" -gt 500 ] || { echo "$name: nanoGPT printed too little"; cat "$name.nanogpt"; exit 1; }
  cmp "$name.nanogpt" "$name.port" || { diff "$name.nanogpt" "$name.port" | head -20; exit 1; }
  cmp "$name.nanogpt" "$name.port-no-cache" || { diff "$name.nanogpt" "$name.port-no-cache" | head -20; exit 1; }
  echo "$name: the same $(wc -c < "$name.port") bytes from nanoGPT's sample.py and from nanogpt sample (KV cache and without)"
}
compare defaults --num_samples=2 --max_new_tokens=300
compare other --num_samples=3 --max_new_tokens=150 --start=ROMEO: --seed=7 --temperature=1.0 --top_k=5
# the two settings must give different text, or the comparison above says nothing about them
! cmp -s defaults.port other.port
