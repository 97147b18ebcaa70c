#!/usr/bin/env python3
"""Python nanoGPT's initial weights for a config, for checking this port's init against them.

Builds nanoGPT's GPT (model.py imported from --nanogpt-dir) right after torch.manual_seed(1337),
as train.py does, and then

- prints a few chosen entries exactly (float.hex) and the float64 sum of every tensor, in
  named_parameters order (which lists the tied wte/lm_head weight once), so that a C++ test
  can assert the port's init without Python; and
- with --port-checkpoint, compares every tensor bit for bit with a checkpoint of the port.
  With --binary and --data-dir instead, it makes that checkpoint itself: one training step
  at learning rate 0, which leaves every weight exactly as initialised (AdamW multiplies by
  1 - 0 * weight_decay and adds -0 * update).

Needs only the standard library and torch: the project's venv, which tools/setup.sh makes.
Example:

  .venv/bin/python tools/check_init_against_python.py --nanogpt-dir ../nanoGPT
"""

import argparse
import contextlib
import math
import os
import subprocess
import sys
import tempfile
import warnings

import torch

SEED = 1337
# (parameter name, row, columns) of the entries printed exactly; columns are a slice.
PROBES = [
    ("transformer.wte.weight", 0, slice(None, 4)),
    ("transformer.wte.weight", 64, slice(-4, None)),
    ("transformer.wpe.weight", 63, slice(None, 4)),
    ("transformer.h.0.attn.c_attn.weight", 0, slice(None, 4)),
    ("transformer.h.3.mlp.c_proj.weight", 127, slice(-4, None)),
    ("transformer.h.3.attn.c_proj.weight", 5, slice(None, 4)),
    ("transformer.h.0.mlp.c_fc.weight", 511, slice(None, 4)),
]


def parse_args():
    parser = argparse.ArgumentParser(description="Print or compare Python nanoGPT's initial GPT weights.")
    parser.add_argument("--nanogpt-dir", required=True, help="a nanoGPT checkout (its model.py is imported)")
    parser.add_argument("--n_layer", type=int, default=4)
    parser.add_argument("--n_head", type=int, default=4)
    parser.add_argument("--n_embd", type=int, default=128)
    parser.add_argument("--block_size", type=int, default=64)
    parser.add_argument("--vocab_size", type=int, default=65)
    parser.add_argument("--bias", choices=["True", "False"], default="False")
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--port-checkpoint", help="a ckpt.pt of the port holding its initial weights")
    parser.add_argument("--binary", help="this port's binary; with --data-dir, makes --port-checkpoint itself")
    parser.add_argument("--data-dir", help="a prepared dataset whose vocab_size is --vocab_size (for --binary)")
    args = parser.parse_args()
    if args.binary and not args.data_dir:
        parser.error("--binary needs --data-dir (the port trains one step at learning rate 0)")
    return args


def model_args(args):
    return dict(n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd, block_size=args.block_size,
                vocab_size=args.vocab_size, bias=args.bias == "True", dropout=args.dropout)


def python_initial_weights(nanogpt_dir, config):
    sys.path.insert(0, os.path.abspath(nanogpt_dir))
    from model import GPT, GPTConfig  # nanoGPT's model.py
    torch.manual_seed(SEED)
    with contextlib.redirect_stdout(sys.stderr):  # its warnings and parameter count
        model = GPT(GPTConfig(**config))
    return {name: p.detach() for name, p in model.named_parameters()}


def print_probes(weights, config):
    print(f"# nanoGPT init, torch {torch.__version__}, torch.manual_seed({SEED}), "
          + ", ".join(f"{k}={v}" for k, v in config.items()))
    print("# entries (float32 values, float.hex and repr)")
    for name, row, cols in PROBES:
        if name not in weights or row >= weights[name].shape[0]:
            print(f"{name}: not in this config")
            continue
        values = weights[name][row, cols].tolist()
        label = f"{name}[{row},:{cols.stop}]" if cols.start is None else f"{name}[{row},{cols.start}:]"
        print(f"{label} = [{', '.join(float(v).hex() for v in values)}]  # {values}")
    print("# float64 sum of every tensor: p.double().sum(), named_parameters order;")
    print("# 'exact' where it equals math.fsum, i.e. any summation order in float64 gives it")
    for name, p in weights.items():
        total = p.double().sum().item()
        exact = total == math.fsum(p.double().flatten().tolist())
        print(f"{name} {tuple(p.shape)} sum = {total.hex()}  # {total!r}{' exact' if exact else ''}")


def make_port_checkpoint(binary, data_dir, config, out_dir):
    """One step at learning rate 0 with a checkpoint after it: the port's initial weights."""
    command = [binary, "train", "--init_from=scratch", f"--data_dir={data_dir}", f"--out_dir={out_dir}",
               "--device=cpu", "--dtype=float32", "--compile=false", "--max_iters=1", "--eval_interval=1",
               "--eval_iters=1", "--always_save_checkpoint=true", "--learning_rate=0.0", "--min_lr=0.0",
               "--gradient_accumulation_steps=1", "--batch_size=1", "--num_threads=1"]
    command += [f"--{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in config.items()
                if k != "vocab_size"]  # the port takes vocab_size from the dataset's meta
    print(f"# making the port's checkpoint: {' '.join(command)}", file=sys.stderr)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return os.path.join(out_dir, "ckpt.pt")


def load_port_weights(path):
    """Model tensors of a port checkpoint: nanoGPT's dict layout, or LibTorch's archive."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            checkpoint = torch.load(path, map_location="cpu")
            if isinstance(checkpoint, dict) and "model" in checkpoint:
                return dict(checkpoint["model"])
        except RuntimeError:
            pass
        archive = torch.jit.load(path, map_location="cpu")  # torch::serialize::OutputArchive
        return {name[len("model."):]: t.detach() for name, t in archive.named_parameters()
                if name.startswith("model.")}


def compare(python_weights, port_weights):
    mismatches = 0
    for name, expected in python_weights.items():
        actual = port_weights.get(name)
        if actual is None:
            print(f"MISSING  {name}")
            mismatches += 1
        elif actual.shape != expected.shape or actual.dtype != expected.dtype:
            print(f"SHAPE    {name}: port {tuple(actual.shape)} {actual.dtype}, "
                  f"nanoGPT {tuple(expected.shape)} {expected.dtype}")
            mismatches += 1
        elif not torch.equal(actual, expected):
            differing = int((actual != expected).sum())
            largest = (actual.double() - expected.double()).abs().max().item()
            print(f"DIFFER   {name}: {differing} of {expected.numel()} entries, largest by {largest:.3e}")
            mismatches += 1
        else:
            print(f"equal    {name}")
    # the causal masks are buffers that nanoGPT's model.py registers too (torch < 2.0), not parameters
    extra = sorted(name for name in set(port_weights) - set(python_weights) - {"lm_head.weight"}
                   if not name.endswith((".attn.bias", ".attn.masked_bias")))
    for name in extra:
        print(f"EXTRA    {name} (not a nanoGPT parameter)")
    print(f"{len(python_weights) - mismatches} of {len(python_weights)} tensors bit-identical"
          + (f", {len(extra)} extra in the port" if extra else ""))
    return mismatches == 0 and not extra


def main():
    args = parse_args()
    config = model_args(args)
    weights = python_initial_weights(args.nanogpt_dir, config)
    print_probes(weights, config)
    checkpoint = args.port_checkpoint
    if args.binary:
        checkpoint = make_port_checkpoint(args.binary, os.path.abspath(args.data_dir), config,
                                          tempfile.mkdtemp(prefix="init-check-"))
    if checkpoint:
        print(f"# bit-for-bit comparison with {checkpoint}")
        return 0 if compare(weights, load_port_weights(checkpoint)) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
