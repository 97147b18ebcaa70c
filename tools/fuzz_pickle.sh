#!/usr/bin/env bash
# Fuzzes the pickle reader (src/pickle.cpp) with libFuzzer, AddressSanitizer and
# UndefinedBehaviorSanitizer (clang from Debian), starting from tests/fuzz/pickle_corpus.
# Usage: tools/fuzz_pickle.sh [seconds]   (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
command -v clang++ > /dev/null || { echo "clang++ is needed: apt-get install clang" >&2; exit 2; }
out=build-fuzz
mkdir -p "$out/corpus"
clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Iinclude \
  src/pickle.cpp tests/fuzz/pickle_fuzzer.cpp -lfmt -o "$out/pickle_fuzzer"
# new inputs go to build-fuzz/corpus; the committed seeds stay as they are
"$out/pickle_fuzzer" -max_total_time="$seconds" -max_len=4096 -timeout=5 -artifact_prefix="$out/" \
  "$out/corpus" tests/fuzz/pickle_corpus
