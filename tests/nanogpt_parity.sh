#!/usr/bin/env bash
# Loss parity with Python nanoGPT, the short version of docs/comparing-with-nanogpt.md: 10
# iterations of the CPU recipe (fp32, dropout 0) from scratch, then 10 more resumed on both
# sides from the checkpoint that Python nanoGPT wrote, then 10 from scratch with dropout 0.2
# (the same random stream: the port's fused attention draws nanoGPT's dropout masks); every
# loss within 1e-4.
# Needs a karpathy/nanoGPT checkout in NANOGPT_DIR and torch in $NANOGPT_PYTHON; skips (77) otherwise.
# Usage: tests/nanogpt_parity.sh path/to/nanogpt
set -euo pipefail
nanogpt_script=train.py
source "$(dirname "$0")/nanogpt_side_by_side.sh"
common=(--nanogpt-dir "$NANOGPT_DIR" --binary "$nanogpt" --config "$root/configs/train_shakespeare_char_cpu.yaml"
        --threads 1 --iters 10 --max-loss-diff 1e-4 --set eval_interval=5 --set eval_iters=2
        --set always_save_checkpoint=true)
cd "$work"
# tiktoken is imported by nanoGPT's sample.py only, not by train.py; nothing to stub here
"$python" "$root/tools/compare_nanogpt.py" "${common[@]}" --input "$input" --workdir scratch > scratch.log \
  || { tail -30 scratch.log; exit 1; }
grep "max abs loss diff" scratch.log
[ -f scratch/nanogpt-out/ckpt.pt ] || { echo "nanoGPT wrote no checkpoint"; exit 1; }
"$python" "$root/tools/compare_nanogpt.py" "${common[@]}" --data-dir scratch/data/shakespeare_char \
  --resume-from scratch/nanogpt-out/ckpt.pt --workdir resumed > resumed.log || { tail -30 resumed.log; exit 1; }
grep "max abs loss diff" resumed.log
"$python" "$root/tools/compare_nanogpt.py" "${common[@]}" --data-dir scratch/data/shakespeare_char \
  --set dropout=0.2 --workdir dropout > dropout.log || { tail -30 dropout.log; exit 1; }
grep "max abs loss diff" dropout.log
