#!/usr/bin/env bash
# Installs the Debian packages the build needs (only those missing; quiet when all are there),
# then configures and builds nanogpt in Release mode into build/ (or $NANOGPT_BUILD_DIR).
# With --tests it also installs what the interop tests use (Debian's python3-torch, the same
# 1.13.1 as libtorch-dev, and python3-matplotlib) and clang with its libFuzzer runtime for
# tools/fuzz.sh; if those cannot be installed the build goes on and those tests skip with a
# message (tools/fuzz.sh stops, naming clang++).
# Usage: tools/setup.sh [--tests] [extra cmake arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake ninja-build g++ libtorch-dev libcli11-dev libyaml-cpp-dev libgtest-dev libfmt-dev
          nlohmann-json3-dev libopenblas0-pthread libgloo-dev)
# python3-setuptools and python3-dev: torch.compile's C++ backend, which the GPU check's dry run
# uses where python3-torch is 2.x (Debian 13); curl: the BPE vocabulary download test
test_packages=(python3-torch python3-matplotlib python3-setuptools python3-dev curl clang libclang-rt-dev)
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
mapfile -t missing < <(missing_of "${packages[@]}")
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
if [ $with_tests = 1 ]; then
  mapfile -t missing < <(missing_of "${test_packages[@]}")
  if [ ${#missing[@]} -gt 0 ] && ! apt_install "${missing[@]}"; then
    echo "warning: could not install ${missing[*]}; the Python interop tests will skip" >&2
  fi
fi

jobs=$(nproc)
build_dir=${NANOGPT_BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" > build-configure.log 2>&1 \
  || { cat build-configure.log; exit 1; }
rm -f build-configure.log
# Each LibTorch translation unit needs ~1 GB of memory to compile; keep that within RAM.
mem_jobs=$(( $(awk '/MemAvailable/ {print $2}' /proc/meminfo) / 1500000 ))
[ "$mem_jobs" -ge 1 ] && [ "$mem_jobs" -lt "$jobs" ] && jobs=$mem_jobs
cmake --build "$build_dir" -j "$jobs"
