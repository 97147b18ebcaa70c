#!/usr/bin/env bash
# tools/gpu/check.sh --cpu-dry-run end to end: every step of the GPU check on this CPU with tiny
# shapes (the build step is a no-op build of BUILD_DIR), then the table: every figure a CPU can
# give is a number, the logits and AdamW checks pass, both seed runs fit, and the compiled column
# holds numbers where Python's torch has torch.compile (2.x) and says why it was skipped otherwise
# (torch 1.13).
# Needs a karpathy/nanoGPT checkout (NANOGPT_DIR, else ../nanoGPT beside the checkout) and
# torch and numpy in $NANOGPT_PYTHON; skips (77) otherwise.
# Usage: tests/gpu_check_dry_run.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
root=$(cd "$(dirname "$0")/.." && pwd)
python=${NANOGPT_PYTHON:-python3}  # the build's Python (CTest sets it)
nanogpt=${NANOGPT_DIR:-$root/../nanoGPT}
[ -f "$nanogpt/bench.py" ] || { echo "skipped: set NANOGPT_DIR to a karpathy/nanoGPT checkout (none in $nanogpt)"; exit 77; }
"$python" -c "import torch, numpy" 2> /dev/null || { echo "skipped: $python has no torch or numpy"; exit 77; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
start=$(date +%s)
PYTHON=$python "$root/tools/gpu/check.sh" --cpu-dry-run --build-dir "$build" --nanogpt "$nanogpt" --out "$out" \
  --jobs 1 > "$out/run.txt" 2>&1 || { tail -60 "$out/run.txt"; exit 1; }
echo "dry run: $(($(date +%s) - start)) s"
cat "$out/check.md"
"$python" - "$out/check.md" <<'PY'
import re
import sys

import torch

rows = {}
for line in open(sys.argv[1]):
    if line.startswith("| ") and not line.startswith(("| ---", "| check ")):
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        rows[cells[0]] = cells[1:]
has_compile = hasattr(torch, "compile")
number = re.compile(r"^-?[0-9][0-9,]*(\.[0-9]+)?(e[-+]?[0-9]+)?%?( |$)")
problems = []


def row(prefix):
    found = [cells for label, cells in rows.items() if label.startswith(prefix)]
    if len(found) != 1:
        problems.append(f"expected one row starting with '{prefix}', found {len(found)}")
        return ["?"] * 5
    return found[0]


def numeric(prefix, column, name):
    cell = row(prefix)[column]
    if not number.match(cell):
        problems.append(f"{prefix} / {name}: not a number: '{cell}'")


for mb in (2, 4):
    for column, name in ((0, "port"), (1, "nanoGPT eager"), (3, "port / eager")):
        numeric(f"tokens/s, micro-batch {mb}", column, name)
    for column, name in ((0, "port"), (1, "nanoGPT eager")):
        numeric(f"MFU, micro-batch {mb}", column, name)
    for prefix in (f"tokens/s, micro-batch {mb}", f"MFU, micro-batch {mb}"):
        if has_compile:
            numeric(prefix, 2, "nanoGPT compiled")
        elif not row(prefix)[2].startswith("skipped: torch "):
            problems.append(f"{prefix} / nanoGPT compiled: expected 'skipped: torch ...', got '{row(prefix)[2]}'")
    if has_compile:
        numeric(f"tokens/s, micro-batch {mb}", 4, "port / compiled")
numeric("logits cpu bfloat16 vs cpu float32", 0, "port")
if "(pass" not in row("logits cpu bfloat16")[0]:
    problems.append(f"logits check did not pass: {row('logits cpu bfloat16')[0]}")
numeric("AdamW update on cpu", 0, "port")
if "(pass" not in row("AdamW update on cpu")[0] or "fused kernel" not in row("AdamW update on cpu")[0]:
    problems.append(f"AdamW check did not pass on LibTorch's fused kernel: {row('AdamW update on cpu')[0]}")
for column, name in ((0, "port"), (1, "nanoGPT eager")):
    if row("12 GiB seed run: fits?")[column] != "yes":
        problems.append(f"seed run / {name}: fits? is '{row('12 GiB seed run: fits?')[column]}'")
    numeric("12 GiB seed run: peak memory", column, name)
    numeric("12 GiB seed run: ms/iter", column, name)
numeric("12 GiB seed run: ms/iter", 3, "port / eager")
if problems:
    sys.exit("table check failed:\n  " + "\n  ".join(problems))
print(f"table check: {len(rows)} rows, all figures present")
PY
