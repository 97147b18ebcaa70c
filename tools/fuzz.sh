#!/usr/bin/env bash
# Fuzzes the readers with libFuzzer, AddressSanitizer and UndefinedBehaviorSanitizer (clang
# from Debian), each from its seed corpus in tests/fuzz/<target>_corpus:
#   pickle        the plain-data pickle reader (meta.pkl; src/formats/pickle.cpp)
#   torch_pickle  the torch.save allow-list (ckpt.pt's data.pkl; src/formats/torch_pickle.cpp)
#   config        the YAML config loader and its validation (src/base/config.cpp, src/base/config_checks.cpp)
#   bpe           the GPT-2 tokenizer, with an exact decode(encode(x)) == x check; needs
#                 GPT-2's vocabulary in $NANOGPT_GPT2_VOCAB_DIR (skipped without it)
#   token_file    train.bin/val.bin batches and meta.json (src/data/data.cpp, src/tokenizer/char_tokenizer.cpp)
# Usage: tools/fuzz.sh [seconds per target] [target...]   (default 60 s, all targets)
# Exits 1 when a target crashed, leaked or timed out; the input is written to
# build-fuzz/<target>-crash-* (or -leak-, -timeout-), as the output says.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(pickle torch_pickle config bpe token_file)
command -v clang++ > /dev/null || { echo "clang++ is needed: apt-get install clang" >&2; exit 2; }
out=build-fuzz
failed=()
# LibTorch of the build's Python (tools/setup.sh's .venv, or NANOGPT_PYTHON); the fmt of /usr/include
# ahead of the copy in LibTorch's include folder, as CMakeLists.txt does
python=${NANOGPT_PYTHON:-.venv/bin/python}
torch=$("$python" -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2> /dev/null) \
  || { echo "no torch in $python: run tools/setup.sh first (or set NANOGPT_PYTHON)" >&2; exit 2; }
mkdir -p "$out/fmt-include" && ln -sfn /usr/include/fmt "$out/fmt-include/fmt"
flags=(-std=c++20 -g -O1 -Wno-psabi -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Iinclude -Isrc
       -I"$out/fmt-include" -D_GLIBCXX_USE_CXX11_ABI=1 -isystem "$torch/include"
       -isystem "$torch/include/torch/csrc/api/include")
torch_libs=(-L"$torch/lib" -Wl,-rpath,"$torch/lib" -ltorch_cpu -lc10)
# every target's sources and libraries; each source is compiled once, on all cores, and shared
declare -A target_sources target_libs
for target in "${targets[@]}"; do
  case $target in
    pickle) sources=(src/formats/pickle.cpp src/formats/pickle_writer.cpp); libs=() ;;
    torch_pickle) sources=(src/formats/pickle.cpp src/formats/pickle_writer.cpp src/formats/torch_pickle.cpp); libs=(-L"$torch/lib" -Wl,-rpath,"$torch/lib" -lc10) ;;
    config) sources=(src/base/config.cpp src/base/config_checks.cpp src/base/device.cpp src/base/utf8.cpp)
            libs=(-lyaml-cpp "${torch_libs[@]}") ;;
    bpe)
      if [ ! -f "${NANOGPT_GPT2_VOCAB_DIR:-}/encoder.json" ]; then echo "== bpe: skipped (set NANOGPT_GPT2_VOCAB_DIR)"; continue; fi
      sources=(src/tokenizer/bpe.cpp src/tokenizer/pretokenize.cpp src/base/utf8.cpp src/tokenizer/bpe_vocab.cpp src/base/fileio.cpp src/data/prepare.cpp src/tokenizer/char_tokenizer.cpp
               src/formats/pickle.cpp src/formats/pickle_writer.cpp src/data/data.cpp)
      libs=("${torch_libs[@]}") ;;
    token_file)
      sources=(src/data/data.cpp src/base/fileio.cpp src/tokenizer/char_tokenizer.cpp src/formats/pickle.cpp src/formats/pickle_writer.cpp)
      libs=("${torch_libs[@]}") ;;
    *) echo "unknown target '$target'; expected pickle, torch_pickle, config, bpe or token_file" >&2; exit 2 ;;
  esac
  target_sources[$target]="${sources[*]} tests/fuzz/${target}_fuzzer.cpp"
  target_libs[$target]="${libs[*]}"
done
object_of() { local name=${1//\//_}; echo "$out/obj/${name%.cpp}.o"; }
built=()
for target in "${!target_sources[@]}"; do
  [ -n "${FUZZ_NO_REBUILD:-}" ] && [ -x "$out/${target}_fuzzer" ] || built+=("$target")
done
if [ ${#built[@]} -gt 0 ]; then
  mkdir -p "$out/obj"
  export -f object_of
  export out
  for target in "${built[@]}"; do printf '%s\n' ${target_sources[$target]}; done | sort -u |
    xargs -P "$(nproc)" -I{} bash -c 'clang++ "$@" -c {} -o "$(object_of {})"' _ "${flags[@]}"
  for target in "${built[@]}"; do
    objects=()
    for source in ${target_sources[$target]}; do objects+=("$(object_of "$source")"); done
    # shellcheck disable=SC2086
    clang++ "${flags[@]}" "${objects[@]}" -lfmt ${target_libs[$target]} -o "$out/${target}_fuzzer"
  done
fi
for target in "${targets[@]}"; do
  [ -n "${target_sources[$target]:-}" ] || continue
  mkdir -p "$out/$target-corpus"
  echo "== $target: $seconds s"
  # new inputs go to build-fuzz/<target>-corpus; the committed seeds stay as they are
  status=0
  "$out/${target}_fuzzer" -max_total_time="$seconds" -max_len=4096 -timeout=10 -artifact_prefix="$out/$target-" \
    "$out/$target-corpus" "tests/fuzz/${target}_corpus" > "$out/$target.log" 2>&1 || status=$?
  grep -E "^Done|SUMMARY|Test unit written" "$out/$target.log" || true
  if [ $status != 0 ]; then
    tail -n 40 "$out/$target.log" >&2
    echo "== $target: FAILED (exit $status); full output in $out/$target.log" >&2
    failed+=("$target")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found problems in: ${failed[*]}" >&2
  exit 1
fi
