#!/usr/bin/env bash
# Installs what the build needs, then configures and builds nanogpt in Release mode into build/
# (or $NANOGPT_BUILD_DIR):
#   - the Debian packages that are missing (apt-get; quiet when all are there);
#   - PyTorch from PyPI, pinned in requirements.txt, into the project's virtual environment .venv/
#     (or $NANOGPT_VENV): its LibTorch is what the build links, and its torch is what every Python
#     test and tool runs. Requirements .venv already holds are not downloaded again;
#   - a CUDA build (NANOGPT_WITH_CUDA, linked against libtorch_cuda) where a CUDA toolkit (nvcc) is
#     found, else a CPU build from the same wheel.
# With --tests it also installs the rest of requirements.txt (Python nanoGPT's dependencies and the
# Python clients the tests compare with) and clang with its libFuzzer runtime for tools/fuzz.sh.
# With NANOGPT_PYTHON set to an interpreter that has torch (Debian 13's python3-torch, say), that
# interpreter and its LibTorch are used as they are: no virtual environment, nothing from PyPI.
# NANOGPT_BUILD_TARGETS (space-separated) builds only those targets.
# Usage: tools/setup.sh [--tests] [extra cmake arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake ninja-build g++ libcli11-dev libyaml-cpp-dev libgtest-dev libfmt-dev nlohmann-json3-dev libgloo-dev
          python3-venv)
# python3-dev: torch.compile's C++ backend (nanoGPT's compile=True); curl: the BPE vocabulary download test
test_packages=(clang libclang-rt-dev python3-dev curl)
with_tests=0
if [ "${1:-}" = "--tests" ]; then with_tests=1; shift; fi

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
updated=0
missing_of() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}
apt_install() {
  echo "installing: $*"
  if [ $updated = 0 ]; then $sudo apt-get update -qq && updated=1; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" > /dev/null
}
wanted=("${packages[@]}")
[ $with_tests = 0 ] || wanted+=("${test_packages[@]}")
mapfile -t missing < <(missing_of "${wanted[@]}")
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"

if [ -n "${NANOGPT_PYTHON:-}" ]; then
  python=$NANOGPT_PYTHON
  echo "Python: $python as it is (NANOGPT_PYTHON), $("$python" -c 'import torch; print("torch", torch.__version__)')"
else
  venv=${NANOGPT_VENV:-.venv}
  [ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv "$venv"
  python=$(cd "$venv/bin" && pwd)/python
  # the lines of requirements.txt this run needs: torch alone, or all of them with --tests
  mapfile -t requirements < <(grep -v -e '^#' -e '^$' requirements.txt)
  [ $with_tests = 1 ] || mapfile -t requirements < <(printf '%s\n' "${requirements[@]}" | grep '^torch==')
  stamp=$venv/nanogpt-installed.txt  # the requirement lines already installed
  touch "$stamp"
  mapfile -t to_install < <(printf '%s\n' "${requirements[@]}" | grep -vxF -f "$stamp" || true)
  if [ ${#to_install[@]} -gt 0 ]; then
    echo "installing into $venv from PyPI: ${to_install[*]}"
    "$python" -m pip install --quiet --disable-pip-version-check -c requirements.txt "${to_install[@]}"
    printf '%s\n' "${to_install[@]}" >> "$stamp"
  fi
fi

jobs=$(nproc)
build_dir=${NANOGPT_BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DNANOGPT_PYTHON="$python" "$@" \
  > build-configure.log 2>&1 || { cat build-configure.log; exit 1; }
grep '^-- nanogpt: LibTorch' build-configure.log | sed 's/^-- //'
rm -f build-configure.log
# Each LibTorch translation unit needs ~1 GB of memory to compile; keep that within RAM.
mem_jobs=$(( $(awk '/MemAvailable/ {print $2}' /proc/meminfo) / 1500000 ))
[ "$mem_jobs" -ge 1 ] && [ "$mem_jobs" -lt "$jobs" ] && jobs=$mem_jobs
targets=()
[ -z "${NANOGPT_BUILD_TARGETS:-}" ] || targets=(--target $NANOGPT_BUILD_TARGETS)
cmake --build "$build_dir" -j "$jobs" "${targets[@]}"
