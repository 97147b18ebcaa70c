#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (GoogleTest + CLI end to end).
# Tests that need ../shared/data read it from NANOGPT_SHARED_DATA (default ../shared/data)
# and skip with a message when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh --tests
if [ -z "${NANOGPT_SHARED_DATA:-}" ] && [ -d ../shared/data ]; then
  NANOGPT_SHARED_DATA=$(cd ../shared/data && pwd)
fi
export NANOGPT_SHARED_DATA=${NANOGPT_SHARED_DATA:-}
cd build
ctest --output-on-failure --timeout 600
