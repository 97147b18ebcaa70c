#!/usr/bin/env bash
# The main job on a fresh machine: install and build (tools/setup.sh), prepare Tiny Shakespeare
# (character level), train the CPU recipe (configs/train_shakespeare_char_cpu.yaml) on the GPU
# when one is usable and on the CPU otherwise (--device=auto; the log says which and why), and
# sample from it.
# Tiny Shakespeare comes from $NANOGPT_SHARED_DATA/tinyshakespeare/input.txt (or
# ../shared/data) when present, otherwise it is downloaded from nanoGPT's public address.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh

shared=${NANOGPT_SHARED_DATA:-../shared/data}
input=()
[ -f "$shared/tinyshakespeare/input.txt" ] && input=(--input "$shared/tinyshakespeare/input.txt")
build/nanogpt prepare char "${input[@]}" --out-dir data/shakespeare_char
build/nanogpt train configs/train_shakespeare_char_cpu.yaml --device=auto "$@"
build/nanogpt sample --out_dir=out-shakespeare-char-cpu --device=auto --num_samples=2 --max_new_tokens=300
