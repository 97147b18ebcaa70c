#!/usr/bin/env bash
# The readers of files a user hands in, built with AddressSanitizer, LeakSanitizer and
# UndefinedBehaviorSanitizer (GCC, -O1, NANOGPT_SANITIZE) into build-asan/: their unit tests
# (nanogpt_reader_tests: configs, pickles, checkpoints, safetensors, token files, the tokenizer)
# and, through the sanitized binary, tests/bad_inputs.sh (every reader and option given something
# wrong) and tests/cli_tokenize.sh. LibTorch, yaml-cpp and Gloo themselves are not instrumented.
# The build is a CPU build (NANOGPT_WITH_CUDA off), which also checks that a CUDA wheel gives one.
# A report stops the process that made it with exit code 99, which no test expects, so the test
# fails. tools/fuzz.sh fuzzes the same readers. Run by .ci/run.
# Usage: tools/test_sanitizers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${NANOGPT_SHARED_DATA:-}" ] && [ -d ../shared/data ]; then
  NANOGPT_SHARED_DATA=$(cd ../shared/data && pwd)
fi
export NANOGPT_SHARED_DATA=${NANOGPT_SHARED_DATA:-}
export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:exitcode=99
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=99

SECONDS=0
NANOGPT_BUILD_DIR=build-asan NANOGPT_BUILD_TARGETS="nanogpt nanogpt_reader_tests" tools/setup.sh --tests \
  -DCMAKE_BUILD_TYPE=Debug -DNANOGPT_SANITIZE=ON -DNANOGPT_WITH_CUDA=OFF
echo "== sanitizer build: $SECONDS s"
SECONDS=0
failed=()
build-asan/tests/nanogpt_reader_tests --gtest_brief=1 || failed+=(nanogpt_reader_tests)
export NANOGPT_PYTHON=${NANOGPT_PYTHON:-$PWD/.venv/bin/python}
bash tests/bad_inputs.sh "$PWD/build-asan/nanogpt" || failed+=(bad_inputs)
status=0
bash tests/cli_tokenize.sh "$PWD/build-asan/nanogpt" || status=$?
[ $status = 0 ] || [ $status = 77 ] || failed+=(cli_tokenize)
echo "== sanitizer tests: $SECONDS s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed under the sanitizers: ${failed[*]}" >&2
  exit 1
fi
