#!/usr/bin/env bash
# GPT-2 BPE encoding throughput on all of pd_books: tiktoken's "gpt2" (the npm package, the
# Rust core of Python's tiktoken compiled to WebAssembly) on one thread, against this port on
# one thread and on all threads. Checks that both give the same ids for every file and for a
# random text of every kind of character, and that the Unicode classes of
# src/unicode_classes.inc are the ones inside tiktoken. Prints a table.
#
# Usage: tools/bench_tokenizer.sh [BUILD_DIR]       (default build/; REPEAT=3 runs, best counts)
# Needs node and npm with the npm registry reachable, and $NANOGPT_SHARED_DATA (../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."
nanogpt="$(pwd)/${1:-build}/nanogpt"
shared="${NANOGPT_SHARED_DATA:-../shared/data}"
repeat="${REPEAT:-3}"
tiktoken_version=1.0.22
unicode_version=16.0.0
[ -x "$nanogpt" ] || { echo "no $nanogpt: build first" >&2; exit 1; }
books=()
for f in "$shared"/pd_books/*.txt; do [ "$(basename "$f")" = README.txt ] || books+=("$f"); done
[ ${#books[@]} -gt 0 ] || { echo "no pd_books in $shared" >&2; exit 1; }
export NANOGPT_GPT2_VOCAB_DIR="${NANOGPT_GPT2_VOCAB_DIR:-$shared/gpt2}"
command -v npm > /dev/null || { echo "npm is not installed (apt-get install npm)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "installing tiktoken@$tiktoken_version and @unicode/unicode-$unicode_version from the npm registry..."
if ! npm install --silent --prefix "$tmp" "tiktoken@$tiktoken_version" "@unicode/unicode-$unicode_version" > "$tmp/npm.log" 2>&1; then
  cat "$tmp/npm.log" >&2
  echo "cannot install from the npm registry (offline?): no tiktoken to compare with" >&2
  exit 1
fi

# tiktoken: ids of each file as uint16 files, and the best of $repeat timed runs over all files
mkdir -p "$tmp/tiktoken" "$tmp/port"
reference() { NODE_PATH="$tmp/node_modules" node tools/tiktoken_reference.cjs "$@"; }
read -r bytes tik_tokens tik_seconds < <(reference encode "$tmp/tiktoken" "$repeat" "${books[@]}")

# the same ids, file by file
for f in "${books[@]}"; do
  "$nanogpt" tokenize encode --format uint16 "$f" > "$tmp/port/$(basename "$f").bin"
  cmp -s "$tmp/port/$(basename "$f").bin" "$tmp/tiktoken/$(basename "$f").bin" \
    || { echo "ids differ from tiktoken on $f" >&2; exit 1; }
done
echo "ids: equal to tiktoken's on all ${#books[@]} files ($tik_tokens tokens)"
reference random "$tmp/random.txt" "$tmp/random.tiktoken.bin"
"$nanogpt" tokenize encode --format uint16 "$tmp/random.txt" > "$tmp/random.port.bin"
cmp -s "$tmp/random.port.bin" "$tmp/random.tiktoken.bin" || { echo "ids differ from tiktoken on a random text" >&2; exit 1; }
echo "ids: equal to tiktoken's on a random text of $(stat -c %s "$tmp/random.txt") bytes (every kind of character)"

# the Unicode classes: regenerated table equals the committed one, and equals tiktoken's own tables
node tools/gen_unicode_classes.mjs "$tmp/node_modules/@unicode/unicode-$unicode_version" > "$tmp/unicode_classes.inc"
cmp -s "$tmp/unicode_classes.inc" src/unicode_classes.inc \
  || { echo "src/unicode_classes.inc differs from Unicode $unicode_version: run tools/gen_unicode_classes.sh" >&2; exit 1; }
node tools/gen_unicode_classes.mjs "$tmp/node_modules/@unicode/unicode-$unicode_version" \
  --check-wasm "$tmp/node_modules/tiktoken/tiktoken_bg.wasm" 2> "$tmp/wasm.log" \
  || { cat "$tmp/wasm.log" >&2; echo "tiktoken's Unicode tables are not Unicode $unicode_version" >&2; exit 1; }
echo "unicode: src/unicode_classes.inc (Unicode $unicode_version) = the L, N, White_Space tables inside tiktoken"

port_mbs() {  # threads -> MB/s from `nanogpt tokenize bench`
  "$nanogpt" tokenize bench --threads "$1" --repeat "$repeat" "${books[@]}" | sed -E 's/.* ([0-9.]+) MB\/s$/\1/'
}
port1=$(port_mbs 1)
threads=$(nproc)
portn=$(port_mbs "$threads")
tik=$(awk -v b="$bytes" -v s="$tik_seconds" 'BEGIN { printf "%.2f", b / s / 1e6 }')
ratio() { awk -v a="$1" -v b="$tik" 'BEGIN { printf "%.1fx", a / b }'; }

echo
echo "GPT-2 encode_ordinary on pd_books ($bytes bytes, $tik_tokens tokens, 7 calls), best of $repeat;"
echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, node $(node --version)"
echo
echo "| encoder | threads | MB/s | vs tiktoken |"
echo "| --- | ---: | ---: | ---: |"
echo "| tiktoken $tiktoken_version (npm, WebAssembly) | 1 | $tik | 1.0x |"
echo "| nanogpt-cpp | 1 | $port1 | $(ratio "$port1") |"
echo "| nanogpt-cpp | $threads | $portn | $(ratio "$portn") |"
