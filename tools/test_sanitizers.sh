#!/usr/bin/env bash
# Builds the tests with AddressSanitizer, LeakSanitizer and UndefinedBehaviorSanitizer (GCC, -O1,
# NANOGPT_SANITIZE) into build-asan/ and runs all of them with CTest, the CLI scripts included;
# LibTorch, OpenBLAS and Gloo themselves are not instrumented. A report stops the process that
# made it with exit code 99, which no test expects, so the test fails. Run by .ci/run.
# Usage: tools/test_sanitizers.sh [extra ctest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${NANOGPT_SHARED_DATA:-}" ] && [ -d ../shared/data ]; then
  NANOGPT_SHARED_DATA=$(cd ../shared/data && pwd)
fi
export NANOGPT_SHARED_DATA=${NANOGPT_SHARED_DATA:-}

# Exported before the build too: gtest_discover_tests runs the test binary at build time.
export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:exitcode=99
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=99

SECONDS=0
NANOGPT_BUILD_DIR=build-asan tools/setup.sh --tests -DCMAKE_BUILD_TYPE=Debug -DNANOGPT_SANITIZE=ON
echo "== sanitizer build: $SECONDS s"
SECONDS=0
# memory_flat measures RSS, which under ASan is mostly its quarantine; fault_injection times
# kills against checkpoint writes and needs no second, slower run (docs/reliability.md)
(cd build-asan && ctest --output-on-failure --timeout 900 -E '^(memory_flat|fault_injection)$' "$@")
echo "== sanitizer tests: $SECONDS s"
