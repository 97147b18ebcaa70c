# Sourced by the tests that run Python nanoGPT beside this port (nanogpt_parity.sh,
# sample_parity.sh) with the port's binary as $1 and the nanoGPT script they need as
# $nanogpt_script: sets nanogpt, root, python, work (removed on exit) and input (Tiny
# Shakespeare from NANOGPT_SHARED_DATA, else a small generated text); skips (77) without a
# karpathy/nanoGPT checkout in NANOGPT_DIR or without torch in $NANOGPT_PYTHON.
nanogpt=$(realpath "$1")
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${NANOGPT_PYTHON:-python3}  # the build's Python (CTest sets it)
[ -f "${NANOGPT_DIR:-}/$nanogpt_script" ] || { echo "skipped: set NANOGPT_DIR to a karpathy/nanoGPT checkout"; exit 77; }
"$python" -c "import torch" 2> /dev/null || { echo "skipped: $python has no torch"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
input=${NANOGPT_SHARED_DATA:-}/tinyshakespeare/input.txt
if [ ! -f "$input" ]; then
  input=$work/input.txt
  for i in $(seq 400); do echo "ROMEO: line $i, the quick brown fox jumps over the lazy dog; First Citizen speaks."; done > "$input"
fi
