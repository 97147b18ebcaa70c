#!/usr/bin/env bash
# GPT-2 BPE encoding throughput on all of pd_books: Python tiktoken's "gpt2" (its Rust core,
# from the venv, requirements.txt) on one thread, against this port on one thread and on all
# threads. Checks that both give the same ids for every file and for a random text of every
# kind of character. Prints a table.
#
# Usage: tools/bench_tokenizer.sh [BUILD_DIR]       (default build/; REPEAT=3 runs, best counts)
# Needs the venv (tools/setup.sh --tests) and $NANOGPT_SHARED_DATA (../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."
nanogpt="$(pwd)/${1:-build}/nanogpt"
python="${NANOGPT_PYTHON:-.venv/bin/python}"
shared="${NANOGPT_SHARED_DATA:-../shared/data}"
repeat="${REPEAT:-3}"
[ -x "$nanogpt" ] || { echo "no $nanogpt: build first" >&2; exit 1; }
"$python" -c 'import tiktoken' 2> /dev/null || { echo "$python has no tiktoken: run tools/setup.sh --tests" >&2; exit 1; }
books=()
for f in "$shared"/pd_books/*.txt; do [ "$(basename "$f")" = README.txt ] || books+=("$f"); done
[ ${#books[@]} -gt 0 ] || { echo "no pd_books in $shared" >&2; exit 1; }
export NANOGPT_GPT2_VOCAB_DIR="${NANOGPT_GPT2_VOCAB_DIR:-$shared/gpt2}"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# tiktoken: ids of each file as uint16 files, and the best of $repeat timed runs over all files
mkdir -p "$tmp/tiktoken" "$tmp/port"
reference() { "$python" tools/tiktoken_gpt2.py "$1" "$NANOGPT_GPT2_VOCAB_DIR" "${@:2}"; }
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

port_mbs() {  # threads -> MB/s from `nanogpt tokenize bench`
  "$nanogpt" tokenize bench --threads "$1" --repeat "$repeat" "${books[@]}" | sed -E 's/.* ([0-9.]+) MB\/s$/\1/'
}
port1=$(port_mbs 1)
threads=$(nproc)
portn=$(port_mbs "$threads")
tik=$(awk -v b="$bytes" -v s="$tik_seconds" 'BEGIN { printf "%.2f", b / s / 1e6 }')
ratio() { awk -v a="$1" -v b="$tik" 'BEGIN { printf "%.1fx", a / b }'; }
tik_version=$("$python" -c 'import tiktoken; print(tiktoken.__version__)')

echo
echo "GPT-2 encode_ordinary on pd_books ($bytes bytes, $tik_tokens tokens, ${#books[@]} calls), best of $repeat;"
echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, $("$python" --version)"
echo
echo "| encoder | threads | MB/s | vs tiktoken |"
echo "| --- | ---: | ---: | ---: |"
echo "| tiktoken $tik_version (Python, Rust core) | 1 | $tik | 1.0x |"
echo "| nanogpt-cpp | 1 | $port1 | $(ratio "$port1") |"
echo "| nanogpt-cpp | $threads | $portn | $(ratio "$portn") |"
