#!/usr/bin/env bash
# GPT-2 BPE through the binary: tokenize encode/decode round trips, prepare gpt2 on Tiny
# Shakespeare (nanoGPT's sha256) and on documents, train and sample on a GPT-2 dataset.
# Needs $NANOGPT_SHARED_DATA (gpt2/, tinyshakespeare/); exits 77 (skipped) without it.
set -euo pipefail
nanogpt="$1"
shared="${NANOGPT_SHARED_DATA:-}"
if [ -z "$shared" ] || [ ! -f "$shared/gpt2/encoder.json" ]; then
  echo "NANOGPT_SHARED_DATA/gpt2 is not available; skipping"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
export NANOGPT_GPT2_VOCAB_DIR="$shared/gpt2"
input="$shared/tinyshakespeare/input.txt"

# encode / decode
[ "$(printf 'Hello world' | "$nanogpt" tokenize encode)" = "15496 995" ] || fail "encode Hello world"
[ "$(printf 'Hello world' | "$nanogpt" tokenize encode -)" = "15496 995" ] || fail "encode from -"
[ "$(printf 'a<|endoftext|>' | "$nanogpt" tokenize encode --allow-special)" = "64 50256" ] || fail "--allow-special"
[ "$(printf 'a<|endoftext|>' | "$nanogpt" tokenize encode | wc -w)" = 8 ] || fail "<|endoftext|> is text without --allow-special"
"$nanogpt" tokenize encode "$input" > ids.txt
[ "$(wc -l < ids.txt)" = 1 ] && [ "$(wc -w < ids.txt)" = 338025 ] || fail "Tiny Shakespeare: $(wc -w < ids.txt) ids"
"$nanogpt" tokenize decode ids.txt > decoded.txt
cmp -s decoded.txt "$input" || fail "text round trip"
"$nanogpt" tokenize encode --format uint16 --threads 1 "$input" > ids.bin
[ "$(stat -c %s ids.bin)" = $((338025 * 2)) ] || fail "uint16 size"
"$nanogpt" tokenize decode --format uint16 < ids.bin | cmp -s - "$input" || fail "uint16 round trip"
# a character cut between tokens: the file gets the exact bytes (the first token of an emoji)
first=$(printf '\xf0\x9f\x98\x80' | "$nanogpt" tokenize encode | cut -d' ' -f1)
echo "$first" | "$nanogpt" tokenize decode > cut.bin
[ "$(od -An -tx1 cut.bin | tr -d ' ')" = "f09f98" ] || fail "decode of a partial character: $(od -An -tx1 cut.bin)"

# prepare gpt2: nanoGPT's data/shakespeare/prepare.py, byte for byte (reference_stats.json)
"$nanogpt" prepare gpt2 --input "$input" --out-dir data/shakespeare > prepare.log 2> prepare.err
grep -q "train has 301966 tokens" prepare.log && grep -q "val has 36059 tokens" prepare.log || fail "$(cat prepare.log)"
[ ! -s prepare.err ] || fail "stderr is not a terminal, yet: $(cat prepare.err)"
sha() { sha256sum "$1" | cut -d' ' -f1; }
[ "$(sha data/shakespeare/train.bin)" = 502a2bdc8210d1ac5d5674867cb74467dd31db575d25cf6dbb08c8bdbea8680f ] || fail "train.bin sha256"
[ "$(sha data/shakespeare/val.bin)" = 68a53422394c26a655ebe641f5c6f49888e8f4e45fe5d6f02abda63ba3ebd65b ] || fail "val.bin sha256"
grep -q '"tokenizer": "gpt2"' data/shakespeare/meta.json || fail "meta.json: $(cat data/shakespeare/meta.json)"

# documents, split at a separator
printf 'first doc\n\n\nsecond doc\n\n\nthird doc' > docs.txt
"$nanogpt" prepare gpt2 --input docs.txt --out-dir data/docs --doc-separator '\n\n\n' --val-fraction 0.3 > docs.log
grep -q "3 documents: 2 to train.bin, 1 to val.bin" docs.log || fail "$(cat docs.log)"
[ "$("$nanogpt" tokenize decode --format uint16 data/docs/val.bin | grep -c '<|endoftext|>')" = 1 ] || fail "val document"

# train on the GPT-2 dataset (the model gets nanoGPT's padded 50304), then sample with GPT-2 BPE
"$nanogpt" train --dataset=shakespeare --device=cpu --out_dir=out-gpt2 --n_layer=1 --n_head=2 --n_embd=16 \
  --block_size=16 --batch_size=2 --gradient_accumulation_steps=1 --max_iters=2 --eval_interval=2 --eval_iters=1 \
  --warmup_iters=1 --lr_decay_iters=2 --always_save_checkpoint=true --num_threads=1 > train.log
grep -q "defaulting to vocab_size of GPT-2 to 50304" train.log || fail "train vocab: $(head -5 train.log)"
"$nanogpt" sample --out_dir=out-gpt2 --start="<|endoftext|>ROMEO:" --num_samples=1 --max_new_tokens=5 > sample.txt
head -1 sample.txt | grep -q "^<|endoftext|>ROMEO:" || fail "sample: $(cat sample.txt)"
# no meta at all: GPT-2, as nanoGPT's sample.py without meta.pkl
rm data/shakespeare/meta.json
"$nanogpt" sample --out_dir=out-gpt2 --start="ROMEO:" --num_samples=1 --max_new_tokens=5 > sample2.txt
head -1 sample2.txt | grep -q "^ROMEO:" || fail "sample without meta: $(cat sample2.txt)"

expect_exit() {  # expected code, pattern in stderr, command...
  local code=$1 pattern=$2; shift 2
  set +e; "$@" > /dev/null 2> err.txt; local got=$?; set -e
  [ "$got" = "$code" ] || fail "exit $got (expected $code) for: $* -- $(cat err.txt)"
  grep -q -- "$pattern" err.txt || fail "stderr of '$*' lacks '$pattern': $(cat err.txt)"
}
printf 'ok \xff' > bad.txt
expect_exit 1 "bad.txt: invalid UTF-8 at byte offset 3" "$nanogpt" tokenize encode bad.txt
echo "15496 nope" > bad_ids.txt
expect_exit 1 "bad_ids.txt: 'nope' at byte offset 6 is not a token id" "$nanogpt" tokenize decode bad_ids.txt
echo "50257" > big_id.txt
expect_exit 1 "token id 50257 is outside GPT-2's vocabulary" "$nanogpt" tokenize decode big_id.txt
expect_exit 2 "--format must be text or uint16" "$nanogpt" tokenize encode --format json "$input"
expect_exit 1 "vocab dir 'nowhere' has no encoder.json" "$nanogpt" tokenize encode --vocab-dir nowhere "$input"
expect_exit 2 "does not exist or is not a file" "$nanogpt" prepare gpt2 --input nothere.txt --out-dir x
expect_exit 2 "unknown escape" "$nanogpt" prepare gpt2 --input docs.txt --out-dir x --doc-separator '\q'
echo "cli tokenize: ok"
