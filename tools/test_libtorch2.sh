#!/usr/bin/env bash
# Optional, not run by CI: builds the project against Debian 13 (trixie)'s LibTorch 2.6 (CPU) and
# runs every test there, in a trixie chroot made with debootstrap, while the host stays Debian 12.
# The chroot's Python is Debian's python3-torch 2.6 (NANOGPT_PYTHON=/usr/bin/python3: no venv,
# nothing from PyPI), so the interop tests load and write checkpoints with torch 2.6.
# See docs/libtorch-versions.md.
#
#   tools/test_libtorch2.sh [--root DIR] [CTEST_ARGS...]
#
# Needs root (debootstrap, chroot, bind mounts) and Debian's package archive. The chroot (default
# DIR /var/tmp/nanogpt-trixie, about 2.5 GB) is made once and reused. The tracked files of this
# working tree, edits included, are copied to DIR/src/nanogpt, where tools/setup.sh --tests
# installs the packages and builds in Release mode, as on Debian 12.
# NANOGPT_SHARED_DATA and NANOGPT_DIR (a nanoGPT checkout), when set, are bind-mounted read-only
# and passed on, as tools/test.sh does.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
chroot_dir=/var/tmp/nanogpt-trixie
ctest_args=()
while [ $# -gt 0 ]; do
  case $1 in
    --root) chroot_dir=$2; shift 2 ;;
    *) ctest_args+=("$1"); shift ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "tools/test_libtorch2.sh needs root (debootstrap, chroot, mount)" >&2; exit 2; }

if [ ! -x "$chroot_dir/usr/bin/apt-get" ]; then
  command -v debootstrap > /dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap > /dev/null
  echo "== debootstrap trixie into $chroot_dir"
  debootstrap --variant=minbase trixie "$chroot_dir" http://deb.debian.org/debian > "$chroot_dir.debootstrap.log" 2>&1 ||
    { tail -20 "$chroot_dir.debootstrap.log"; exit 1; }
fi

mounted=()
cleanup() {
  local i
  for (( i=${#mounted[@]}-1; i>=0; i-- )); do umount "${mounted[$i]}" 2>/dev/null || umount -l "${mounted[$i]}"; done
}
trap cleanup EXIT
bind() {  # bind SOURCE TARGET [ro]
  mkdir -p "$2"
  mount --bind "$1" "$2"
  [ "${3:-}" = ro ] && mount -o remount,bind,ro "$2"
  mounted+=("$2")
}
mount -t proc proc "$chroot_dir/proc"; mounted+=("$chroot_dir/proc")
bind /dev "$chroot_dir/dev"
bind /dev/pts "$chroot_dir/dev/pts"
env_args=(HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8)
if [ -n "${NANOGPT_SHARED_DATA:-}" ]; then
  bind "$NANOGPT_SHARED_DATA" "$chroot_dir/mnt/shared-data" ro
  env_args+=(NANOGPT_SHARED_DATA=/mnt/shared-data)
fi
if [ -n "${NANOGPT_DIR:-}" ]; then
  bind "$NANOGPT_DIR" "$chroot_dir/mnt/nanoGPT" ro
  env_args+=(NANOGPT_DIR=/mnt/nanoGPT)
fi
in_chroot() { chroot "$chroot_dir" /usr/bin/env -i "${env_args[@]}" bash -c "$1"; }

src=$chroot_dir/src/nanogpt
mkdir -p "$src"
# the copy is the tracked files as they are now: a file moved or deleted since the last run must
# not linger there (the build folder stays, for an incremental build)
find "$src" -mindepth 1 -maxdepth 1 ! -name build -exec rm -rf {} +
(cd "$root" && git ls-files -z | tar --null -T - -c) | tar -x -C "$src"
# Debian's LibTorch and torch (with OpenBLAS: without it LibTorch multiplies in the reference
# BLAS, about 20x slower; setuptools: torch.compile), then tools/setup.sh installs what else is
# missing and builds.
in_chroot "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  libtorch-dev python3-torch python3-numpy python3-matplotlib python3-setuptools libopenblas0-pthread > /dev/null"
in_chroot "cd /src/nanogpt && NANOGPT_PYTHON=/usr/bin/python3 tools/setup.sh --tests"
echo "== $(in_chroot 'python3 -c "import torch; print(\"LibTorch\", torch.__version__)"'), $(in_chroot 'g++ --version | head -1')"
quoted_args=""
[ ${#ctest_args[@]} -eq 0 ] || quoted_args=$(printf '%q ' "${ctest_args[@]}")
in_chroot "cd /src/nanogpt/build && ctest --output-on-failure --timeout 600 $quoted_args"
