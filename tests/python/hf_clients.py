"""The port's Hugging Face folders against transformers and safetensors from PyPI
(driven by tests/test_hf_clients.cpp).

  check-export DIR   DIR/hf (nanogpt export --format hf of DIR/ckpt.pt): safetensors reads
                     every tensor, equal to the checkpoint's weights as torch.load reads them;
                     GPT2LMHeadModel.from_pretrained gives DIR/port_logits.bin for
                     DIR/tokens.bin (1e-5 relative), and greedy generate from DIR/prompt.bin
                     gives the tokens of DIR/port_greedy.bin.
  write-hf DIR       a small random GPT-2 made and saved by transformers (save_pretrained, as
                     safetensors) in DIR/hf_saved, and its logits for DIR/tokens.bin in
                     DIR/hf_logits.bin.

Arrays are raw little-endian bytes with their shape in DIR/<name>.json. Exit status 0 when
every check passes; the first failure is printed.
"""
import json
import os
import sys

import safetensors
import torch
import transformers
from safetensors import safe_open
from transformers import GPT2Config, GPT2LMHeadModel

CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
RELATIVE_TOLERANCE = 1e-5


def fail(message):
    sys.exit(f"hf_clients: {message}")


def read_array(directory, name, dtype):
    with open(os.path.join(directory, name + ".json")) as f:
        shape = json.load(f)["shape"]
    data = bytearray(open(os.path.join(directory, name + ".bin"), "rb").read())
    return torch.frombuffer(data, dtype=dtype).view(*shape)


def write_array(directory, name, tensor):
    with open(os.path.join(directory, name + ".json"), "w") as f:
        json.dump({"shape": list(tensor.shape)}, f)
    open(os.path.join(directory, name + ".bin"), "wb").write(tensor.contiguous().numpy().tobytes())


def relative_error(got, expected):
    return ((got - expected).abs().max() / expected.abs().max()).item()


def check_safetensors(directory):
    checkpoint = torch.load(os.path.join(directory, "ckpt.pt"), map_location="cpu")  # weights_only=True
    weights = {k: v for k, v in checkpoint["model"].items() if k != "lm_head.weight"}  # tied to wte
    with safe_open(os.path.join(directory, "hf", "model.safetensors"), framework="pt") as f:
        if f.metadata() != {"format": "pt"}:
            fail(f"safetensors metadata {f.metadata()}, transformers expects {{'format': 'pt'}}")
        if set(f.keys()) != set(weights):
            fail(f"safetensors names: missing {set(weights) - set(f.keys())}, unexpected {set(f.keys()) - set(weights)}")
        for name, weight in weights.items():
            expected = weight.t() if name.endswith(CONV1D) else weight
            if not torch.equal(f.get_tensor(name), expected):
                fail(f"safetensors tensor {name} differs from the checkpoint's")
    print(f"safetensors {safetensors.__version__}: {len(weights)} tensors equal to ckpt.pt's")


def check_export(directory):
    check_safetensors(directory)
    with open(os.path.join(directory, "hf", "config.json")) as f:
        hf_config = json.load(f)
    vocab_size = hf_config["vocab_size"]
    for key in ("bos_token_id", "eos_token_id"):  # <|endoftext|> where the vocabulary has it, else none
        if hf_config.get(key, "absent") != (50256 if vocab_size > 50256 else None):
            fail(f"config.json {key} is {hf_config.get(key, 'absent')} for a vocabulary of {vocab_size}")
    model = GPT2LMHeadModel.from_pretrained(os.path.join(directory, "hf"))
    model.eval()
    tokens = read_array(directory, "tokens", torch.int64)
    expected = read_array(directory, "port_logits", torch.float32)
    with torch.no_grad():
        logits = model(tokens).logits
    error = relative_error(logits, expected)
    if not error <= RELATIVE_TOLERANCE:
        fail(f"transformers' logits differ from the port's by {error:.3g} (relative), more than {RELATIVE_TOLERANCE}")
    print(f"transformers {transformers.__version__}: logits {tuple(logits.shape)} within {error:.3g} of the port's")
    prompt = read_array(directory, "prompt", torch.int64)
    port_greedy = read_array(directory, "port_greedy", torch.int64)
    new_tokens = port_greedy.shape[1] - prompt.shape[1]
    with torch.no_grad():
        greedy = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new_tokens,
                                min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    if not torch.equal(greedy, port_greedy):
        fail(f"greedy generate gives {greedy.tolist()}, the port's greedy sample {port_greedy.tolist()}")
    print(f"greedy generate: the port's {new_tokens} tokens")


def write_hf(directory):
    torch.manual_seed(7)
    config = GPT2Config(vocab_size=50, n_positions=16, n_embd=32, n_layer=2, n_head=2,
                        activation_function="gelu",  # nanoGPT's exact GELU, which the port uses
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        bos_token_id=None, eos_token_id=None)  # GPT-2's 50256 is outside this vocabulary
    model = GPT2LMHeadModel(config)
    with torch.no_grad():  # transformers starts biases at 0 and LayerNorms at 1: make every tensor count
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    model.eval()
    model.save_pretrained(os.path.join(directory, "hf_saved"), safe_serialization=True)
    tokens = read_array(directory, "tokens", torch.int64)
    with torch.no_grad():
        write_array(directory, "hf_logits", model(tokens).logits)


if __name__ == "__main__":
    commands = {"check-export": check_export, "write-hf": write_hf}
    if len(sys.argv) != 3 or sys.argv[1] not in commands:
        fail(__doc__)
    commands[sys.argv[1]](sys.argv[2])
