#!/usr/bin/env bash
# Optional, not run by CI: builds the project against another PyPI release of PyTorch, in a venv
# and a build folder of its own (.venv-torchVERSION/, build-torchVERSION/; both ignored by git),
# a CUDA build where nvcc is found as tools/setup.sh does, and with --tests runs every test there
# (NANOGPT_PYTHON is that venv, so the Python side runs the same torch). See docs/libtorch-versions.md.
#
#   tools/check_torch_version.sh VERSION [--tests] [CTEST_ARGS...]     e.g. 2.11.0
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:?usage: tools/check_torch_version.sh VERSION [--tests] [CTEST_ARGS...]}
shift
tests=0
if [ "${1:-}" = --tests ]; then tests=1; shift; fi
venv=.venv-torch$version
[ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv "$venv"
wanted=(torch==$version)
[ $tests = 0 ] || mapfile -t wanted < <(grep -v -e '^#' -e '^$' -e '^torch==' requirements.txt; echo "torch==$version")
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${wanted[@]}"
SECONDS=0
NANOGPT_PYTHON=$PWD/$venv/bin/python NANOGPT_BUILD_DIR=build-torch$version tools/setup.sh
echo "== torch $version: built in $SECONDS s: $(build-torch$version/nanogpt --version)"
if [ $tests = 1 ]; then
  if [ -z "${NANOGPT_SHARED_DATA:-}" ] && [ -d ../shared/data ]; then export NANOGPT_SHARED_DATA=$(cd ../shared/data && pwd); fi
  cd "build-torch$version" && ctest --output-on-failure --timeout 600 "$@"
fi
