#!/usr/bin/env bash
# Fuzzes the pickle readers with libFuzzer, AddressSanitizer and UndefinedBehaviorSanitizer
# (clang from Debian): the plain-data reader (meta.pkl; src/pickle.cpp) from
# tests/fuzz/pickle_corpus, and the torch.save allow-list (ckpt.pt's data.pkl;
# src/torch_pickle.cpp) from tests/fuzz/torch_pickle_corpus.
# Usage: tools/fuzz_pickle.sh [seconds per target]   (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
command -v clang++ > /dev/null || { echo "clang++ is needed: apt-get install clang" >&2; exit 2; }
out=build-fuzz
flags=(-std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Iinclude)
for target in pickle torch_pickle; do
  mkdir -p "$out/$target-corpus"
  sources=(src/pickle.cpp src/pickle_writer.cpp)
  [ "$target" = torch_pickle ] && sources+=(src/torch_pickle.cpp)
  clang++ "${flags[@]}" "${sources[@]}" "tests/fuzz/${target}_fuzzer.cpp" -lfmt -lc10 -o "$out/${target}_fuzzer"
  echo "== $target: $seconds s"
  # new inputs go to build-fuzz/<target>-corpus; the committed seeds stay as they are
  "$out/${target}_fuzzer" -max_total_time="$seconds" -max_len=4096 -timeout=5 -artifact_prefix="$out/$target-" \
    "$out/$target-corpus" "tests/fuzz/${target}_corpus" 2>&1 | tail -3
done
