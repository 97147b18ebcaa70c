"""Checks, with Python's torch, that ckpt.pt files cross between this port and Python.

  check-port DIR      DIR/port.pt (written by the port) loads as nanoGPT loads it: keys, shapes,
                      dtypes, a strict load_state_dict, logits equal DIR/port_logits.bin for
                      DIR/tokens.bin, and its optimizer state loads into torch.optim.AdamW.
  write-python DIR    writes DIR/python.pt as nanoGPT's train.py does (torch.compile's
                      `_orig_mod.` prefix included) and DIR/python_logits.bin.
  check-hf DIR        DIR/hf (nanogpt export --format hf) holds GPT2LMHeadModel's config.json
                      and safetensors layout; its weights give DIR/port_logits.bin.
  compare A B         every tensor and number of checkpoint A equals B's.

Exit status 0 when every check passes; the first failure is printed.
"""
import json
import os
import pickletools
import sys
import zipfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_gpt import GPT  # noqa: E402

MODEL_ARGS = dict(n_layer=2, n_head=2, n_embd=16, block_size=8, bias=True, vocab_size=11, dropout=0.0)
TOP_KEYS = ["model", "optimizer", "model_args", "iter_num", "best_val_loss", "config"]


def fail(message):
    sys.exit(f"checkpoint_interop: {message}")


def tokens(directory):
    with open(os.path.join(directory, "tokens.json")) as f:
        shape = json.load(f)["shape"]
    data = torch.frombuffer(bytearray(open(os.path.join(directory, "tokens.bin"), "rb").read()), dtype=torch.int64)
    return data.view(*shape)


def read_floats(path, like):
    data = torch.frombuffer(bytearray(open(path, "rb").read()), dtype=torch.float32)
    return data.view(like.shape)


# The opcodes that torch.load's weights_only unpickler reads (torch/_weights_only_unpickler.py,
# PyTorch 2.6). It is torch.load's default from 2.6 on, so nanoGPT's train.py and sample.py load
# a ckpt.pt with it there; 1.13's has fewer (no BINFLOAT), so on 1.13 only this list is checked.
WEIGHTS_ONLY_OPCODES = {
    "GLOBAL", "NEWOBJ", "REDUCE", "BUILD", "APPEND", "APPENDS", "SETITEM", "SETITEMS", "MARK",
    "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "NONE", "NEWFALSE", "NEWTRUE", "EMPTY_TUPLE",
    "EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET", "BININT", "BININT1", "BININT2", "BINFLOAT",
    "BINUNICODE", "SHORT_BINSTRING", "BINPERSID", "BINGET", "LONG_BINGET", "BINPUT",
    "LONG_BINPUT", "LONG1", "PROTO", "STOP",
}


def check_weights_only_opcodes(path):
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
        used = {op.name for op, _, _ in pickletools.genops(archive.read(name))}
    if used - WEIGHTS_ONLY_OPCODES:
        fail(f"{path}: opcodes {sorted(used - WEIGHTS_ONLY_OPCODES)} that torch.load(weights_only=True) cannot read")


def check_port(directory):
    path = os.path.join(directory, "port.pt")
    check_weights_only_opcodes(path)
    ckpt = torch.load(path, map_location="cpu")  # weights_only=True by default from PyTorch 2.6 on
    missing = [k for k in TOP_KEYS if k not in ckpt]
    if missing:
        fail(f"port.pt lacks {missing}")
    model = GPT(ckpt["model_args"])
    expected = model.state_dict()
    if list(ckpt["model"].keys()) != list(expected.keys()):
        fail(f"state_dict keys differ:\n  port:   {list(ckpt['model'].keys())}\n  Python: {list(expected.keys())}")
    for name, tensor in expected.items():
        saved = ckpt["model"][name]
        if saved.shape != tensor.shape or saved.dtype != tensor.dtype:
            fail(f"{name}: {saved.dtype}{tuple(saved.shape)}, Python has {tensor.dtype}{tuple(tensor.shape)}")
    if ckpt["model"]["lm_head.weight"].data_ptr() != ckpt["model"]["transformer.wte.weight"].data_ptr():
        fail("lm_head.weight does not share transformer.wte.weight's storage")
    model.load_state_dict(ckpt["model"])  # strict, as nanoGPT's sample.py and train.py load
    model.eval()
    with torch.no_grad():
        logits = model(tokens(directory))
    port_logits = read_floats(os.path.join(directory, "port_logits.bin"), logits)
    diff = (logits - port_logits).abs().max().item()
    if diff > 1e-5:
        fail(f"logits differ by {diff}")
    config = ckpt["config"]
    optimizer = model.configure_optimizer(config["weight_decay"], config["learning_rate"],
                                          (config["beta1"], config["beta2"]))
    optimizer.load_state_dict(ckpt["optimizer"])
    for index, state in ckpt["optimizer"]["state"].items():
        if state["step"].dtype != torch.float32 or state["step"].dim() != 0:
            fail(f"optimizer state {index}: step must be a 0-d float32 tensor")
    loss = model(tokens(directory)).logsumexp(-1).mean()
    loss.backward()
    optimizer.step()  # the loaded state is usable
    print(f"port.pt loads in Python: {len(expected)} tensors, logits max diff {diff:.2e}, "
          f"optimizer state for {len(ckpt['optimizer']['state'])} parameters, iter_num {ckpt['iter_num']}")


def write_python(directory):
    torch.manual_seed(1234)
    model = GPT(MODEL_ARGS)
    optimizer = model.configure_optimizer(0.1, 1e-3, (0.9, 0.95))
    x = torch.randint(MODEL_ARGS["vocab_size"], (4, MODEL_ARGS["block_size"]))
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), x.roll(-1, 1).flatten())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    state = {"_orig_mod." + k: v for k, v in model.state_dict().items()}  # as torch.compile leaves it
    config = {"dataset": "shakespeare_char", "batch_size": 4, "learning_rate": 1e-3, "compile": True}
    torch.save({"model": state, "optimizer": optimizer.state_dict(), "model_args": MODEL_ARGS,
                "iter_num": 7, "best_val_loss": torch.tensor(2.5), "config": config},
               os.path.join(directory, "python.pt"))
    model.eval()
    with torch.no_grad():
        model(tokens(directory)).numpy().astype("float32").tofile(os.path.join(directory, "python_logits.bin"))


def read_safetensors(path):
    """The format by hand, independent of the safetensors package: header length, JSON, bytes."""
    dtypes = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64}
    with open(path, "rb") as f:
        data = f.read()
    header_size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + header_size])
    body = bytearray(data[8 + header_size:])
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        tensors[name] = torch.frombuffer(body[begin:end], dtype=dtypes[info["dtype"]]).view(info["shape"]).clone()
    return header.get("__metadata__"), tensors


def check_hf(directory):
    with open(os.path.join(directory, "hf", "config.json")) as f:
        config = json.load(f)
    if config["architectures"] != ["GPT2LMHeadModel"] or config["model_type"] != "gpt2":
        fail(f"config.json is not GPT2LMHeadModel's: {config}")
    metadata, tensors = read_safetensors(os.path.join(directory, "hf", "model.safetensors"))
    if metadata != {"format": "pt"}:
        fail(f"safetensors metadata {metadata}, transformers expects format pt")
    args = dict(n_layer=config["n_layer"], n_head=config["n_head"], n_embd=config["n_embd"],
                block_size=config["n_positions"], vocab_size=config["vocab_size"], bias=True, dropout=0.0)
    model = GPT(args)
    conv1d = (".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight")
    state = {k: (v.t() if k.endswith(conv1d) else v) for k, v in tensors.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith(".attn.bias") and k != "lm_head.weight"]
    if missing or unexpected:
        fail(f"safetensors names: missing {missing}, unexpected {unexpected}")
    model.eval()
    with torch.no_grad():
        logits = model(tokens(directory))
    diff = (logits - read_floats(os.path.join(directory, "port_logits.bin"), logits)).abs().max().item()
    if diff > 1e-5:
        fail(f"logits of the exported weights differ by {diff}")
    print(f"hf export loads as GPT2LMHeadModel weights: {len(tensors)} tensors, logits max diff {diff:.2e}")


def compare(path_a, path_b):
    a, b = torch.load(path_a), torch.load(path_b)
    strip = lambda state: {k.replace("_orig_mod.", ""): v for k, v in state.items() if not k.endswith(".attn.bias")}
    model_a, model_b = strip(a["model"]), strip(b["model"])
    if model_a.keys() != model_b.keys():
        fail(f"model keys differ: {sorted(model_a.keys() ^ model_b.keys())}")
    for k in model_a:
        if not torch.equal(model_a[k], model_b[k]):
            fail(f"model tensor {k} differs")
    state_a, state_b = a["optimizer"]["state"], b["optimizer"]["state"]
    if state_a.keys() != state_b.keys():
        fail("optimizer state indices differ")
    for index in state_a:
        for name in ("step", "exp_avg", "exp_avg_sq"):
            if not torch.equal(torch.as_tensor(state_a[index][name]), torch.as_tensor(state_b[index][name])):
                fail(f"optimizer state {index}.{name} differs")
    norm = lambda v: tuple(v) if isinstance(v, (list, tuple)) else v
    for ga, gb in zip(a["optimizer"]["param_groups"], b["optimizer"]["param_groups"]):
        for key in ("lr", "betas", "eps", "weight_decay", "params"):
            if norm(ga[key]) != norm(gb[key]):
                fail(f"param group {key}: {ga[key]} vs {gb[key]}")
    if a["iter_num"] != b["iter_num"] or float(a["best_val_loss"]) != float(b["best_val_loss"]):
        fail("iter_num or best_val_loss differ")
    if a["model_args"] != b["model_args"]:
        fail(f"model_args differ: {a['model_args']} vs {b['model_args']}")
    print(f"{path_b} holds the same {len(model_a)} tensors and optimizer state as {path_a}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "check-port":
        check_port(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "write-python":
        write_python(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "check-hf":
        check_hf(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
