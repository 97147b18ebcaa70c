#!/usr/bin/env bash
# Installs what is missing (Debian packages, requirements.txt into .venv), builds, and runs every
# test (GoogleTest + CLI end to end + the Python clients). Tests that need ../shared/data read it
# from NANOGPT_SHARED_DATA (default ../shared/data) and skip with a message when it is absent;
# those that compare with Python nanoGPT need NANOGPT_DIR (a karpathy/nanoGPT checkout).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS=0
tools/setup.sh --tests
echo "== install and build: $SECONDS s"
if [ -z "${NANOGPT_SHARED_DATA:-}" ] && [ -d ../shared/data ]; then
  NANOGPT_SHARED_DATA=$(cd ../shared/data && pwd)
fi
export NANOGPT_SHARED_DATA=${NANOGPT_SHARED_DATA:-}
cd build
SECONDS=0
ctest --output-on-failure --timeout 600
echo "== tests: $SECONDS s"
