#!/usr/bin/env bash
# Builds the `nanogpt` binary for tools/gpu/check.sh (Release, tests off).
#
#   tools/gpu/build.sh BUILD_DIR [JOBS]          against the LibTorch of $PYTHON's PyTorch (default
#                                                python3: the host's), with the Debian libraries of .device-kit/
#   tools/gpu/build.sh --local BUILD_DIR [JOBS]  the CPU dry run: an existing build folder as it is
#                                                configured, else a fresh one on the project's .venv
#
# .device-kit/ comes from ../shared/tools/device-kit.sh (yaml-cpp, CLI11, fmt, nlohmann-json, GoogleTest
# unpacked from Debian 12 packages). A CUDA LibTorch's CMake files need the CUDA toolkit (nvcc): it is
# taken from PATH, $CUDA_HOME or /usr/local/cuda. When the first build fails, the script tries once more
# without the c10d backends (NCCL, Gloo) of multi-process training, which the check does not use, and
# says so in its last line.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
local_build=0
if [ "${1:-}" = --local ]; then local_build=1; shift; fi
build=${1:?usage: tools/gpu/build.sh [--local] BUILD_DIR [JOBS]}
jobs=${2:-$(nproc)}

if [ $local_build = 1 ]; then
  if [ -f "$build/CMakeCache.txt" ]; then
    # as configured: passing options here would change the cache and rebuild everything
    cmake --build "$build" --target nanogpt -j "$jobs"
  else
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DNANOGPT_BUILD_TESTS=OFF \
      $(command -v ninja > /dev/null && echo -G Ninja)
    cmake --build "$build" --target nanogpt -j "$jobs"
  fi
  "$build/nanogpt" --help > /dev/null
  echo "nanogpt-build: $build/nanogpt (local LibTorch)"
  exit 0
fi

python=${PYTHON:-python3}
read -r torch_version torch_cuda < <("$python" -c 'import torch; print(torch.__version__, torch.version.cuda)')
echo "PyTorch $torch_version (CUDA $torch_cuda) of $python"

kit=$root/.device-kit/root/usr
if [ ! -d "$kit" ]; then
  echo "error: no $kit: run ../shared/tools/device-kit.sh on a Debian 12 machine and carry .device-kit/" >&2
  exit 1
fi
export LD_LIBRARY_PATH=$kit/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
prefix="$kit;$kit/lib/x86_64-linux-gnu/cmake"

cuda_args=()
nvcc=$(command -v nvcc || true)
for dir in "${CUDA_HOME:-}" /usr/local/cuda; do
  if [ -z "$nvcc" ] && [ -n "$dir" ] && [ -x "$dir/bin/nvcc" ]; then nvcc=$dir/bin/nvcc; fi
done
if [ -n "$nvcc" ]; then
  cuda_home=$(dirname "$(dirname "$(readlink -f "$nvcc")")")
  export CUDA_HOME=$cuda_home PATH=$cuda_home/bin:$PATH
  # nothing here is compiled for the GPU: the flags only keep CMake's CUDA probes from failing
  cuda_args=(-DCMAKE_CUDA_COMPILER="$nvcc" -DCUDA_TOOLKIT_ROOT_DIR="$cuda_home" -DCUDAToolkit_ROOT="$cuda_home"
             -DCMAKE_CUDA_FLAGS=-allow-unsupported-compiler -DUSE_SYSTEM_NVTX=ON)
  echo "CUDA toolkit: $cuda_home ($("$nvcc" --version | tail -1))"
elif [ "$torch_cuda" != None ]; then
  echo "warning: no nvcc on PATH, in \$CUDA_HOME or /usr/local/cuda: a CPU build (NANOGPT_WITH_CUDA needs the toolkit)" >&2
fi

generator=()
if command -v ninja > /dev/null; then generator=(-G Ninja); fi
configure() {
  cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DNANOGPT_BUILD_TESTS=OFF \
    -DCMAKE_PREFIX_PATH="$prefix" -DNANOGPT_PYTHON="$(command -v "$python")" "${cuda_args[@]}" "$@"
}
backends="with the c10d backends CMake found"
if ! { configure && cmake --build "$build" --target nanogpt -j "$jobs"; }; then
  echo "nanogpt-build: the build failed (above); once more without the NCCL and Gloo backends"
  configure -DNANOGPT_NCCL=OFF -DNANOGPT_GLOO=OFF
  cmake --build "$build" --target nanogpt -j "$jobs"
  backends="WITHOUT the NCCL and Gloo backends (the first build failed)"
fi
"$build/nanogpt" --help > /dev/null
grep -q "NANOGPT_WITH_CUDA" "$build/CMakeFiles/nanogpt_core.dir/flags.make" "$build/build.ninja" 2> /dev/null \
  && cuda_build=CUDA || cuda_build="no CUDA (NANOGPT_WITH_CUDA not set)"
echo "nanogpt-build: $build/nanogpt, $cuda_build, $backends"
