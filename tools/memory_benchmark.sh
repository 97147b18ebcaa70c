#!/usr/bin/env bash
# Estimate vs measured peak tensor bytes over a grid of small configs (docs/memory.md).
# usage: tools/memory_benchmark.sh [path/to/nanogpt]   (default: build/nanogpt)
set -euo pipefail
bin=${1:-}
if [[ -z "$bin" ]]; then
  for candidate in build/nanogpt; do [[ -x $candidate ]] && bin=$candidate && break; done
fi
[[ -x "$bin" ]] || { echo "no nanogpt binary; pass its path" >&2; exit 2; }

# name | overrides (--key=value ...); every case: bias false, dropout 0 unless named
grid=(
  "L2 C64 T64 B4 fp32|--n_layer=2 --n_head=2 --n_embd=64 --block_size=64 --batch_size=4 --vocab-size=4096"
  "L4 C128 T128 B4 fp32|--n_layer=4 --n_head=4 --n_embd=128 --block_size=128 --batch_size=4 --vocab-size=4096"
  "L4 C128 T256 B2 fp32|--n_layer=4 --n_head=4 --n_embd=128 --block_size=256 --batch_size=2 --vocab-size=4096"
  "L2 C256 T128 B8 fp32|--n_layer=2 --n_head=4 --n_embd=256 --block_size=128 --batch_size=8 --vocab-size=4096"
  "L4 C128 T128 B4 fp32 ckpt|--n_layer=4 --n_head=4 --n_embd=128 --block_size=128 --batch_size=4 --vocab-size=4096 --activation_checkpointing=blocks"
  "L4 C128 T128 B4 fp32 chunk128|--n_layer=4 --n_head=4 --n_embd=128 --block_size=128 --batch_size=4 --vocab-size=4096 --loss_chunk_size=128"
  "L4 C128 T128 B4 fp32 ckpt chunk128|--n_layer=4 --n_head=4 --n_embd=128 --block_size=128 --batch_size=4 --vocab-size=4096 --activation_checkpointing=blocks --loss_chunk_size=128"
  "L6 C128 T256 B4 fp32 ckpt/2 chunk256|--n_layer=6 --n_head=4 --n_embd=128 --block_size=256 --batch_size=4 --vocab-size=4096 --activation_checkpointing=blocks --checkpoint_every=2 --loss_chunk_size=256"
  "L4 C128 T128 B4 fp32 dropout0.1|--n_layer=4 --n_head=4 --n_embd=128 --block_size=128 --batch_size=4 --vocab-size=4096 --dropout=0.1"
  "L2 C256 T64 B2 fp32 V8192|--n_layer=2 --n_head=4 --n_embd=256 --block_size=64 --batch_size=2 --vocab-size=8192"
  "L4 C128 T128 B4 fp32 bias|--n_layer=4 --n_head=4 --n_embd=128 --block_size=128 --batch_size=4 --vocab-size=4096 --bias=true"
  "L2 C64 T64 B4 bf16|--n_layer=2 --n_head=2 --n_embd=64 --block_size=64 --batch_size=4 --vocab-size=1024 --dtype=bfloat16"
  "L2 C64 T128 B2 bf16 ckpt|--n_layer=2 --n_head=2 --n_embd=64 --block_size=128 --batch_size=2 --vocab-size=1024 --dtype=bfloat16 --activation_checkpointing=blocks"
  "L2 C64 T64 B4 bf16 chunk64|--n_layer=2 --n_head=2 --n_embd=64 --block_size=64 --batch_size=4 --vocab-size=1024 --dtype=bfloat16 --loss_chunk_size=64"
  "L2 C64 T128 B2 bf16 ckpt chunk64|--n_layer=2 --n_head=2 --n_embd=64 --block_size=128 --batch_size=2 --vocab-size=1024 --dtype=bfloat16 --activation_checkpointing=blocks --loss_chunk_size=64"
)

printf '| config | estimate (bytes) | measured peak tensor bytes | error | peak RSS |\n'
printf '| --- | ---: | ---: | ---: | ---: |\n'
worst=0
for row in "${grid[@]}"; do
  name=${row%%|*}
  read -r -a args <<<"${row#*|}"
  out=$("$bin" memory "${args[@]}" --device=cpu --gradient_accumulation_steps=2 --num_threads=2 --measure)
  est=$(awk '/^estimated peak tensor bytes/ {print $5}' <<<"$out")
  meas=$(awk '/^measured peak tensor bytes/ {print $5}' <<<"$out")
  rss=$(awk '/^measured peak RSS/ {print $5 " " $6}' <<<"$out")
  err=$(awk -v e="$est" -v m="$meas" 'BEGIN {printf "%+.1f%%", 100 * (e - m) / m}')
  worst=$(awk -v e="$est" -v m="$meas" -v w="$worst" 'BEGIN {x = 100 * (e - m) / m; if (x < 0) x = -x; print (x > w ? x : w)}')
  printf '| %s | %s | %s | %s | %s |\n' "$name" "$est" "$meas" "$err" "$rss"
done
echo
echo "largest |error|: ${worst}%"
