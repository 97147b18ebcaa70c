#!/usr/bin/env bash
# Bad input, table-driven: every reader and option of the binary gets something wrong and
# must answer with exit code 2 (usage/config) or 1 (runtime) and one clear message naming the
# file, key or value; never a crash, a hang or a partial file left behind.
# Usage: tests/bad_inputs.sh path/to/nanogpt [--markdown]   (--markdown prints docs/errors.md's table)
set -euo pipefail
nanogpt=$(realpath "$1")
markdown=${2:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
python=${NANOGPT_PYTHON:-python3}  # the build's Python (CTest sets it)
python_torch=0
"$python" -c "import torch" 2> /dev/null && python_torch=1
gpt2_vocab=${NANOGPT_SHARED_DATA:-/nonexistent}/gpt2  # GPT-2's encoder.json and vocab.bpe, when at hand

# fixtures: a char dataset, a trained checkpoint, broken variants of each
for _ in $(seq 60); do printf 'First Citizen:\nBefore we proceed any further, hear me speak.\n'; done > text.txt
"$nanogpt" prepare char --input text.txt --out-dir data/ok > /dev/null
cat > tiny.yaml <<YAML
device: cpu
data_dir: data/ok
out_dir: out
n_layer: 1
n_head: 2
n_embd: 16
block_size: 16
batch_size: 2
max_iters: 2
eval_interval: 2
eval_iters: 1
log_interval: 1
num_threads: 1
YAML
"$nanogpt" train tiny.yaml > /dev/null
printf 'n_layer: [1, 2\n' > syntax.yaml
printf -- '- 1\n- 2\n' > list.yaml
printf 'n_layers: 3\n' > unknown.yaml
printf 'batch_size: many\n' > wrongtype.yaml
mkdir -p data/none data/empty data/odd data/short data/bigid data/badjson data/evilpkl data/cutpkl
: > data/empty/train.bin; : > data/empty/val.bin
printf 'abc' > data/odd/train.bin; cp data/odd/train.bin data/odd/val.bin
head -c 20 data/ok/train.bin > data/short/train.bin; cp data/short/train.bin data/short/val.bin
printf '\x46\x00%.0s' $(seq 300) > data/bigid/train.bin; cp data/bigid/train.bin data/bigid/val.bin  # id 70
cp data/ok/meta.json data/bigid/meta.json
for d in badjson evilpkl cutpkl; do cp data/ok/train.bin data/ok/val.bin "data/$d/"; done
printf '{"vocab_size": 3, "itos": ["a"' > data/badjson/meta.json
printf "cos\nsystem\n(S'echo hi'\ntR." > data/evilpkl/meta.pkl
head -c 20 data/ok/meta.pkl > data/cutpkl/meta.pkl
mkdir -p cut notzip vocab_bad
head -c 3000 out/ckpt.pt > cut/ckpt.pt
echo "not a checkpoint" > notzip/ckpt.pt
printf '{' > vocab_bad/encoder.json; : > vocab_bad/vocab.bpe
printf 'batch_size = len("ab")\n' > call_config.py
printf 'batch_size: 4\nbatch_size: 8\n' > twice.yaml
printf 'batch_size: 4\n---\nbatch_size: 8\n' > twodocs.yaml
printf 'batch_size:\n' > novalue.yaml
: > empty.txt; mkdir -p folder/ckpt.pt
mkdir -p data/three && printf '{"vocab_size": 3, "itos": ["a", "b", "c"]}' > data/three/meta.json
mkdir -p hugecfg; : > hugecfg/model.safetensors
printf '{"n_layer": 1e30, "n_head": 12, "n_embd": 768, "vocab_size": 50257, "n_positions": 1024}' > hugecfg/config.json
if [ $python_torch = 1 ]; then
  "$python" - <<'PY'
import os, torch
good = torch.load("out/ckpt.pt")
class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))
def save(folder, ckpt):
    os.makedirs(folder, exist_ok=True)
    torch.save(ckpt, os.path.join(folder, "ckpt.pt"))
save("evil", dict(good, model=Evil()))
save("module", dict(good, model=torch.nn.Linear(2, 2)))
save("shape", dict(good, model_args=dict(good["model_args"], n_embd=32)))
save("intweights", dict(good, model={k: v.long() for k, v in good["model"].items()}))
save("nomodel", {k: v for k, v in good.items() if k != "model"})
save("floatargs", dict(good, model_args=dict(good["model_args"], n_layer=1e30)))
save("floatconfig", dict(good, config=dict(good["config"], batch_size=1e30)))
save("headsplit", dict(good, model_args=dict(good["model_args"], n_embd=17)))
data = bytearray(open("out/ckpt.pt", "rb").read())  # one bit of one weight flipped
data[data.find(good["model"]["transformer.wte.weight"].numpy().tobytes()[:32]) + 5] ^= 0x10
os.makedirs("flipped")
open("flipped/ckpt.pt", "wb").write(data)
PY
fi

rows=()   # "code|pattern|needs|command"
add() { rows+=("$1|$2|$3|$4"); }
# config and YAML
add 2 "syntax.yaml:2:1: YAML syntax error" - "train syntax.yaml"
add 2 "list.yaml: expected a mapping of config keys to values" - "train list.yaml"
add 2 "unknown config key 'n_layers' (did you mean 'n_layer'?)" - "train unknown.yaml"
add 2 "key 'batch_size' expects an integer, got 'many'" - "train wrongtype.yaml"
add 2 "key 'bias' expects true or false, got 'maybe'" - "train tiny.yaml --bias=maybe"
add 2 "config key 'batch_size' must be a positive integer, got 0" - "train tiny.yaml --batch_size=0"
add 2 "config key 'dropout' must be in [0, 1), got 1.5" - "train tiny.yaml --dropout=1.5"
add 2 "n_embd (30) must be divisible by n_head (4)" - "train tiny.yaml --n_embd=30 --n_head=4"
add 2 "lr_decay_iters (10) must be larger than warmup_iters (100)" - "train tiny.yaml --warmup_iters=100 --lr_decay_iters=10"
add 2 "config key 'dtype' must be" - "train tiny.yaml --dtype=float64"
add 2 "device 'tpu' is not supported; expected cpu, cuda, cuda:N or auto" - "train tiny.yaml --device=tpu"
add 2 "dtype 'float16' needs device cuda" - "train tiny.yaml --dtype=float16"
add 2 "config key 'init_from' must be 'scratch', 'resume', 'gpt2'" - "train tiny.yaml --init_from=gpt3"
add 2 "memory_budget" - "train tiny.yaml --memory_budget=12apples"
add 2 "config key 'activation_checkpointing' must be 'none' or 'blocks', got 'all'" - "train tiny.yaml --activation_checkpointing=all"
add 2 "override '--max_iters' must look like --key=value" - "train tiny.yaml --max_iters"
add 2 "config file 'missing.yaml' does not exist" - "train missing.yaml"
add 2 "twice.yaml:2: key 'batch_size' is set twice (first at twice.yaml:1)" - "train twice.yaml"
add 2 "twodocs.yaml:2: a second YAML document starts here; expected one" - "train twodocs.yaml"
add 2 "novalue.yaml:1: key 'batch_size' has no value" - "train novalue.yaml"
add 2 "call_config.py:1: 'len' is not a literal" - "config import call_config.py"
# token files and dataset metadata
add 1 "token file 'data/none/train.bin' does not exist" - "train tiny.yaml --data_dir=data/none --out_dir=o1"
add 1 "token file 'data/empty/train.bin' is empty; expected uint16 token ids" - "train tiny.yaml --data_dir=data/empty --out_dir=o2"
add 1 "token file 'data/odd/train.bin' has an odd size (3 bytes)" - "train tiny.yaml --data_dir=data/odd --out_dir=o3"
add 1 "token file 'data/short/train.bin' has 10 tokens; block_size 16 needs at least 17" - "train tiny.yaml --data_dir=data/short --out_dir=o4"
add 1 "token file 'data/bigid/train.bin' holds id 70 at token" - "train tiny.yaml --data_dir=data/bigid --out_dir=o5"
add 1 "data/badjson/meta.json: not valid JSON" - "train tiny.yaml --data_dir=data/badjson --out_dir=o6"
add 1 "data/evilpkl/meta.pkl: bad pickle at byte 0: opcode 0x63 would build an object or call a global" - "train tiny.yaml --data_dir=data/evilpkl --out_dir=o7"
add 1 "data/cutpkl/meta.pkl: bad pickle at byte 20: unexpected end of data (truncated file?)" - "train tiny.yaml --data_dir=data/cutpkl --out_dir=o8"
# checkpoints
add 1 "checkpoint 'o9/ckpt.pt' does not exist" - "train tiny.yaml --init_from=resume --out_dir=o9"
add 1 "checkpoint 'cut/ckpt.pt' cannot be read" - "sample --out_dir=cut"
add 1 "checkpoint 'notzip/ckpt.pt' cannot be read: 'notzip/ckpt.pt' is not a readable torch.save zip file" - "sample --out_dir=notzip"
add 1 "is corrupt: its CRC-32 is" torch "sample --out_dir=flipped"
add 1 "checkpoint 'headsplit/ckpt.pt': model_args n_embd (17) must be divisible by n_head (2)" torch "sample --out_dir=headsplit"
add 2 "block_size is 8 but the checkpoint in 'out' has 16: resuming keeps the model's shape, so set block_size: 16" - "train tiny.yaml --init_from=resume --block_size=8"
add 1 "global 'posix.system' is not on the allow-list; it is refused, never executed" torch "sample --out_dir=evil"
add 1 "global 'torch.nn.modules.linear.Linear' is not on the allow-list" torch "sample --out_dir=module"
add 1 "tensor 'transformer.wte.weight' has shape 27x16 but the model expects 27x32" torch "sample --out_dir=shape"
add 1 "tensor 'transformer.wte.weight' holds Long; weights must be floating point" torch "sample --out_dir=intweights"
add 1 "checkpoint 'nomodel/ckpt.pt': has no 'model' entry" torch "train tiny.yaml --init_from=resume --out_dir=nomodel"
add 1 "checkpoint 'floatargs/ckpt.pt': model_args 'n_layer' must be an integer in 1..2147483647, got 1e+30" torch "sample --out_dir=floatargs"
add 1 "checkpoint 'floatconfig/ckpt.pt' config: key 'batch_size' expects an integer, got 1e+30" torch "sample --out_dir=floatconfig"
add 2 "--format must be 'hf', got 'onnx'" - "export --format onnx --ckpt out/ckpt.pt hf"
add 2 "cannot be exported as GPT2LMHeadModel" - "export --ckpt out/ckpt.pt hf"
add 1 "no gpt2 weights found" - "train tiny.yaml --init_from=gpt2 --pretrained_dir=nowhere --out_dir=o10"
add 1 "'hugecfg/config.json': n_layer must be an integer in 1..2147483647, got 1e+30" - "train tiny.yaml --init_from=gpt2 --pretrained_dir=hugecfg --out_dir=o11"
# tokenizer files
add 1 "vocab dir 'nowhere' has no encoder.json; expected GPT-2's encoder.json and vocab.bpe there" - "tokenize encode --vocab-dir nowhere text.txt"
add 1 "vocab_bad/encoder.json: not valid JSON" - "tokenize encode --vocab-dir vocab_bad text.txt"
add 1 "ids.txt: 'abc' at byte offset 3 is not a token id; expected decimal ids separated by spaces" gpt2 "tokenize decode --vocab-dir $gpt2_vocab ids.txt"
# command line
add 2 "unknown subcommand 'frobnicate' (see nanogpt --help)" - "frobnicate"
add 2 "temperature must be > 0" - "sample --out_dir=out --temperature=0"
add 2 "temperature must be > 0, got nan" - "sample --out_dir=out --temperature=nan"
add 2 "--top_k must be >= 0 (0: all tokens), got -3" - "sample --out_dir=out --top_k=-3"
add 2 "--data_dir 'nowhere' has no meta.json or meta.pkl" - "sample --out_dir=out --data_dir=nowhere"
add 1 "'data/three' has a vocabulary of 3 characters but the model has" - "sample --out_dir=out --data_dir=data/three"
add 1 "cannot read 'nothere.txt': No such file or directory" - "sample --out_dir=out --start=FILE:nothere.txt"
add 2 "--repeat: expected a number in [1, inf), got '0'" - "tokenize bench --repeat 0 text.txt"
add 2 "--val-fraction: expected a number in (0, 1), got '-0.1'" - "prepare gpt2 --input text.txt --out-dir g --val-fraction -0.1"
add 1 "cannot create out_dir 'tiny.yaml': Not a directory" - "train tiny.yaml --out_dir=tiny.yaml"
add 1 "checkpoint 'folder/ckpt.pt' is not a file" - "sample --out_dir=folder"
add 2 "--input 'empty.txt' is empty: there is no text to tokenize" - "prepare gpt2 --input empty.txt --out-dir g"
add 1 "cannot write the profile 'nowhere/p.json'" - "bench tiny.yaml --profile nowhere/p.json"
add 1 "cannot create 'nowhere/f.yaml.tmp'" - "memory tiny.yaml --budget 1GiB --write nowhere/f.yaml"
add 2 "--num_samples and --max_new_tokens must be >= 0" - "sample --out_dir=out --num_samples=-1"
add 2 "--init_from must be resume, gpt2" - "sample --init_from=gpt3"
add 2 "does not exist or is not a file" - "prepare char --input nothere.txt --out-dir x"
add 2 "--write needs --budget" - "memory tiny.yaml --write fitted.yaml"
add 2 "'--budget' expects a positive size such as 12GiB, 512MiB or 1.5GB, got '12apples'" - "memory tiny.yaml --budget 12apples"
add 2 "bench needs --burn-in >= 0 and --steps >= 1" - "bench tiny.yaml --steps 0"
echo "12 abc" > ids.txt

failures=0 ran=0 skipped=0
[ -n "$markdown" ] && printf '| # | exit | command | message |\n| ---: | :---: | --- | --- |\n'
for row in "${rows[@]}"; do
  IFS='|' read -r code pattern needs command <<< "$row"
  if [ "$needs" = torch ] && [ $python_torch = 0 ]; then skipped=$((skipped + 1)); continue; fi
  if [ "$needs" = gpt2 ] && [ ! -f "$gpt2_vocab/encoder.json" ]; then skipped=$((skipped + 1)); continue; fi
  ran=$((ran + 1))
  before=$(find . -name '*.tmp' | wc -l)
  set +e
  # shellcheck disable=SC2086
  timeout 120 "$nanogpt" $command > stdout.txt 2> stderr.txt
  got=$?
  set -e
  message=$(grep -m1 -v '^\s*$' stderr.txt || true)
  problem=""
  [ "$got" = "$code" ] || problem="exit $got, expected $code"
  grep -qF -- "$pattern" stderr.txt || problem="$problem; stderr lacks '$pattern'"
  [ "$(find . -name '*.tmp' | wc -l)" = "$before" ] || problem="$problem; left a .tmp file"
  grep -q "Exception raised from\|frame #" stderr.txt && problem="$problem; a LibTorch backtrace"
  [ -e pwned.txt ] && problem="$problem; a pickle ran code"
  if [ -n "$problem" ]; then
    failures=$((failures + 1))
    echo "FAIL [$command]: $problem -- $(head -c 400 stderr.txt)" >&2
  fi
  [ -n "$markdown" ] && printf '| %d | %s | `nanogpt %s` | %s |\n' "$ran" "$got" "$command" "${message//|/\\|}"
done
for d in o1 o2 o3 o4 o5 o6 o7 o8 o9 o10 o11; do
  [ ! -e "$d/ckpt.pt" ] || { echo "FAIL: a failed run left $d/ckpt.pt" >&2; failures=$((failures + 1)); }
done
echo "bad inputs: $ran run, $skipped skipped (no torch in $python or no GPT-2 vocabulary), $failures failed" >&2
[ "$failures" = 0 ]
