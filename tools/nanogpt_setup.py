"""Setting up a run of Python nanoGPT next to this port, shared by tools/compare_nanogpt.py
(losses digit by digit) and tools/nanogpt_compare.py (speed and memory):

- config translation: the port's resolved config (`nanogpt config show`) written as the
  --key=value arguments of nanoGPT's configurator, in the types its train.py expects;
- data: the dataset folder both sides read (given, or prepared from a text file), and a scratch
  copy of the nanoGPT checkout with that dataset and a meta.pkl built from the port's meta.json;
- the thread environment both sides run in.

Standard library only.
"""

import ast
import json
import os
import pickle
import shutil
import subprocess
import sys

# this port's own keys: nanoGPT has no counterpart (the memory savers leave the result unchanged)
PORT_ONLY_KEYS = {"data_dir", "seed", "num_threads", "mfu_peak_flops", "activation_checkpointing",
                  "checkpoint_every", "loss_chunk_size", "memory_budget", "memory_limit", "auto_fit",
                  "cpu_memory", "bucket_cap_mb", "ddp_timeout_s", "pretrained_dir"}


def resolved_config(binary, config_path, overrides):
    """Every config key after YAML and overrides, as the port itself resolves them."""
    command = [binary, "config", "show", config_path] + [f"--{k}={v}" for k, v in overrides] + ["--format", "json"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"error: {' '.join(command)} failed:\n{result.stderr.strip()}")
    return json.loads(result.stdout)


def nanogpt_default_types(train_py):
    """Type of each config global in nanoGPT's train.py; its configurator asserts the type matches."""
    with open(train_py) as f:
        tree = ast.parse(f.read())
    types = {}
    for node in tree.body:
        if isinstance(node, ast.Expr) and "configurator.py" in ast.dump(node):
            break  # the config globals end where the configurator is executed
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            continue
        value = node.value
        if isinstance(value, ast.IfExp):  # dtype = 'bfloat16' if ... else 'float16'
            value = value.body
        if all(isinstance(n, (ast.Expression, ast.Constant, ast.BinOp, ast.UnaryOp, ast.operator, ast.unaryop))
               for n in ast.walk(ast.Expression(value))):  # literals and arithmetic, e.g. 5 * 8
            types[node.targets[0].id] = type(eval(compile(ast.Expression(value), train_py, "eval"), {"__builtins__": {}}))
    return types


def configurator_value(value, expected_type):
    """A value written so that nanoGPT's literal_eval gives back the expected type."""
    if expected_type is float:
        return repr(float(value))
    if expected_type is int and isinstance(value, float) and value.is_integer():
        return str(int(value))
    if expected_type is bool or isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def nanogpt_args(config, iters, nanogpt_dir, out_dir, start_iter=0, resume=False, compile_model=False):
    """Every key nanoGPT knows, as --key=value in its configurator's syntax; compile_model is
    nanoGPT's `compile` (torch.compile), whatever the port's config says."""
    types = nanogpt_default_types(os.path.join(nanogpt_dir, "train.py"))
    forced = {"max_iters": start_iter + iters - 1, "log_interval": 1, "out_dir": out_dir,
              "compile": compile_model, "wandb_log": False}
    if resume:
        forced["init_from"] = "resume"
    values = dict(config)
    values.update(forced)
    result = []
    unknown = sorted(set(values) - PORT_ONLY_KEYS - set(types))
    if unknown:
        sys.exit(f"error: nanoGPT's train.py has no config global for {unknown}; "
                 "the two sides would not run the same config")
    missing = sorted(set(types) - set(values))
    if missing:
        print(f"warning: nanoGPT keys this port does not resolve, left at nanoGPT's defaults: {missing}")
    for key in sorted(values):
        if key in PORT_ONLY_KEYS:
            continue
        text = configurator_value(values[key], types[key])
        if "=" in text:
            sys.exit(f"error: nanoGPT's configurator cannot take '=' in a value: {key}={text}")
        result.append(f"--{key}={text}")
    return result


def prepare_data(binary, input_path, data_dir):
    """A char dataset in data_dir from a text file, by the port's `prepare char`."""
    command = [binary, "prepare", "char", "--input", input_path, "--out-dir", data_dir]
    print(f"preparing data: {' '.join(command)}")
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def dataset_folder(binary, data_dir, input_path, config, workdir):
    """The folder with train.bin and val.bin both sides read: given, prepared from a text file
    into workdir, or the config's data_dir (default data/<dataset>)."""
    if not data_dir and input_path:
        data_dir = os.path.join(workdir, "data", config["dataset"])
        prepare_data(binary, input_path, data_dir)
    elif not data_dir:
        data_dir = config["data_dir"] or os.path.join("data", config["dataset"])
    for name in ("train.bin", "val.bin"):
        if not os.path.exists(os.path.join(data_dir, name)):
            sys.exit(f"error: {os.path.join(data_dir, name)} not found; pass --data-dir or --input")
    return data_dir


def write_nanogpt_meta(data_dir, dest_dir):
    """nanoGPT reads vocab_size from meta.pkl; build it from the port's meta.json."""
    meta_pkl = os.path.join(data_dir, "meta.pkl")
    meta_json = os.path.join(data_dir, "meta.json")
    dest = os.path.join(dest_dir, "meta.pkl")
    if os.path.exists(meta_json):
        with open(meta_json) as f:
            meta = json.load(f)
        if "itos" in meta:
            itos = dict(enumerate(meta["itos"]))
            stoi = {ch: i for i, ch in itos.items()}
            with open(dest, "wb") as f:
                pickle.dump({"vocab_size": meta["vocab_size"], "itos": itos, "stoi": stoi}, f)
            return meta["vocab_size"]
    if os.path.exists(meta_pkl):
        shutil.copyfile(meta_pkl, dest)
        with open(meta_pkl, "rb") as f:
            return pickle.load(f)["vocab_size"]
    return None  # no meta: both sides fall back to GPT-2's padded vocabulary


def link_or_copy(src, dest):
    """A symlink to src at dest, or a copy where the filesystem takes no symlink."""
    try:
        os.symlink(os.path.abspath(src), dest)
    except OSError:
        shutil.copyfile(src, dest)


def copy_nanogpt_checkout(nanogpt_dir, data_dir, dataset, workdir):
    """A scratch copy of the checkout with the dataset under data/<dataset>/; the user's
    checkout is only read. Returns (copy folder, vocab_size written to meta.pkl or None)."""
    copy_dir = os.path.join(workdir, "nanoGPT")
    shutil.rmtree(copy_dir, ignore_errors=True)
    # Prepared data, checkpoints and git history of the checkout are not needed.
    shutil.copytree(nanogpt_dir, copy_dir,
                    ignore=shutil.ignore_patterns(".git", "__pycache__", "*.bin", "*.pt", "out*"))
    dataset_dir = os.path.join(copy_dir, "data", dataset)
    os.makedirs(dataset_dir, exist_ok=True)
    for name in ("train.bin", "val.bin"):
        link_or_copy(os.path.join(data_dir, name), os.path.join(dataset_dir, name))
    return copy_dir, write_nanogpt_meta(data_dir, dataset_dir)


def thread_env(threads, blas_threads):
    """Thread counts for the libraries under torch, the same for both sides. PyPI's torch
    multiplies in MKL on torch's own OpenMP threads; a torch built on OpenBLAS (Debian's) calls
    it with a thread pool of its own that ignores torch.set_num_threads and is sized from these
    variables when the process starts. OMP_WAIT_POLICY: the port's binary makes idle OpenMP
    workers sleep unless told otherwise (so they leave OpenBLAS its cores); nanoGPT gets the
    same policy."""
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env["OMP_NUM_THREADS"] = str(threads)
    env["MKL_NUM_THREADS"] = str(threads)
    env["OPENBLAS_NUM_THREADS"] = str(blas_threads)
    return env
