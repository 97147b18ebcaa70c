"""Python tiktoken's get_encoding("gpt2") and `nanogpt tokenize encode` give the same ids for
every book of $NANOGPT_SHARED_DATA/pd_books, Tiny Shakespeare and a random text of every kind
of character. tiktoken reads GPT-2's files from $NANOGPT_SHARED_DATA/gpt2 (no download).

Usage: test_tiktoken_client.py NANOGPT_BINARY       (exit 77, skipped, without the shared data
                                                     or without tiktoken: a Python without PyPI's
                                                     packages, as in tools/test_libtorch2.sh's chroot)
"""
import glob
import os
import subprocess
import sys
import tempfile

try:
    import tiktoken
except ImportError:
    print(f"skipped: {sys.executable} has no tiktoken (tools/setup.sh --tests installs requirements.txt)")
    sys.exit(77)
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from tiktoken_gpt2 import gpt2_encoding, random_text  # noqa: E402


def port_ids(nanogpt, vocab_dir, path):
    result = subprocess.run([nanogpt, "tokenize", "encode", "--format", "uint16", "--vocab-dir", vocab_dir, path],
                            capture_output=True, check=False)
    if result.returncode != 0:
        sys.exit(f"nanogpt tokenize encode {path}: exit {result.returncode}: {result.stderr.decode()}")
    return np.frombuffer(result.stdout, dtype=np.uint16)


def first_difference(a, b):
    n = min(len(a), len(b))
    unequal = np.nonzero(a[:n] != b[:n])[0]
    return int(unequal[0]) if len(unequal) else n


def main():
    nanogpt = sys.argv[1]
    shared = os.environ.get("NANOGPT_SHARED_DATA", "")
    vocab_dir = os.path.join(shared, "gpt2")
    books = sorted(f for f in glob.glob(os.path.join(shared, "pd_books", "*.txt"))
                   if os.path.basename(f) != "README.txt")
    shakespeare = os.path.join(shared, "tinyshakespeare", "input.txt")
    if not (shared and os.path.isfile(os.path.join(vocab_dir, "encoder.json")) and books and os.path.isfile(shakespeare)):
        print(f"skipped: NANOGPT_SHARED_DATA ('{shared}') lacks gpt2/, pd_books/ or tinyshakespeare/input.txt")
        sys.exit(77)
    enc = gpt2_encoding(vocab_dir)
    with tempfile.TemporaryDirectory() as tmp:
        random_file = os.path.join(tmp, "random.txt")
        with open(random_file, "w", encoding="utf-8", newline="") as f:
            f.write(random_text())
        total = 0
        for path in books + [shakespeare, random_file]:
            expected = np.asarray(enc.encode_ordinary(open(path, encoding="utf-8", newline="").read()), dtype=np.uint16)
            got = port_ids(nanogpt, vocab_dir, path)
            if len(got) != len(expected) or not np.array_equal(got, expected):
                at = first_difference(got, expected)
                sys.exit(f"{path}: the port gives {len(got)} ids, tiktoken {len(expected)}; first difference at "
                         f"id {at}: port {got[at:at + 8].tolist()}, tiktoken {expected[at:at + 8].tolist()}")
            print(f"{os.path.basename(path)}: {len(got)} ids, equal")
            total += len(got)
    print(f"all {len(books) + 2} texts: {total} ids equal to tiktoken {tiktoken.__version__}'s gpt2")


if __name__ == "__main__":
    main()
