"""Python tiktoken's "gpt2" encoding, read from a local folder with GPT-2's encoder.json and
vocab.bpe instead of downloaded: the reference for the port's BPE (tests/test_tiktoken_client.py,
tools/bench_tokenizer.sh).

  tiktoken_gpt2.py encode VOCAB_DIR OUT_DIR REPEAT FILE...
      writes OUT_DIR/<file name>.bin (uint16 ids of encode_ordinary) for each file and prints
      "bytes tokens best_seconds" of REPEAT timed runs over all files, one call per file
  tiktoken_gpt2.py random VOCAB_DIR TEXT_OUT IDS_OUT
      writes a seeded random text of every kind of character and its uint16 ids
"""
import hashlib
import os
import random
import shutil
import sys
import tempfile
import time

import numpy as np
import tiktoken

# The addresses tiktoken_ext/openai_public.py reads gpt2's files from. tiktoken caches a file
# under the sha1 of its address and checks the cached bytes against the sha256 it expects, so
# a cache filled from VOCAB_DIR gives get_encoding("gpt2") with no download, and only when the
# local files are GPT-2's own.
SOURCES = {
    "vocab.bpe": "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
    "encoder.json": "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json",
}


def gpt2_encoding(vocab_dir):
    cache = tempfile.mkdtemp(prefix="tiktoken-cache-")
    try:
        for name, url in SOURCES.items():
            path = os.path.join(vocab_dir, name)
            if not os.path.isfile(path):
                sys.exit(f"tiktoken_gpt2: no {path}: expected GPT-2's {name} in {vocab_dir}")
            shutil.copyfile(path, os.path.join(cache, hashlib.sha1(url.encode()).hexdigest()))
        os.environ["TIKTOKEN_CACHE_DIR"] = cache
        return tiktoken.get_encoding("gpt2")
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def random_text(length=300_000, seed=2357):
    """Whitespace of all sorts, contractions, letters and digits of many scripts (some new in
    Unicode 15.1 and 16.0), emoji, controls, the special token's text, random code points."""
    pool = [" ", "  ", "\n", "\n\n", "\t", "\r\n", "\u00a0", "\u3000", "\u2028", "\u0085", "\ufeff",
            "\u000b", "\u001c", "'", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "\u2019", "a",
            "Hello", " the", "\u00e9", "\u00df", "\u0416\u0438\u0437\u043d\u044c", "\u65e5\u672c",
            "\ud55c\uad6d", "\u0345", "\u0903", "\u1c89", "\U000105c0", "\U0002ebf0", "\U0001f600",
            "\U0001f44d\U0001f3fd", "\u200d", "0", "42", "\u00bd", "\u00b2", "\u0663", "\u216b",
            "\U00010d40", "!", "...", "-", "\u2014", "(", "\"", "<|endoftext|>", "\u0000", "\u007f",
            "\ue000", "\u0301"]
    rng = random.Random(seed)
    parts, size = [], 0
    while size < length:
        if rng.random() < 0.8:
            part = rng.choice(pool)
        else:
            code = rng.randrange(0x110000)
            part = chr(0x41 if 0xD800 <= code <= 0xDFFF else code)  # no lone surrogates: not text
        parts.append(part)
        size += len(part)
    return "".join(parts)


def write_ids(path, ids):
    np.asarray(ids, dtype=np.uint16).tofile(path)


def main(argv):
    if len(argv) >= 5 and argv[0] == "encode":
        enc = gpt2_encoding(argv[1])
        out_dir, repeat, files = argv[2], int(argv[3]), argv[4:]
        texts = [open(f, encoding="utf-8").read() for f in files]
        best, tokens = float("inf"), 0
        for _ in range(repeat):
            start = time.perf_counter()
            tokens = sum(len(enc.encode_ordinary(text)) for text in texts)
            best = min(best, time.perf_counter() - start)
        for f, text in zip(files, texts):
            write_ids(os.path.join(out_dir, os.path.basename(f) + ".bin"), enc.encode_ordinary(text))
        print(sum(os.path.getsize(f) for f in files), tokens, best)
    elif len(argv) == 4 and argv[0] == "random":
        enc = gpt2_encoding(argv[1])
        text = random_text()
        with open(argv[2], "w", encoding="utf-8", newline="") as f:
            f.write(text)
        write_ids(argv[3], enc.encode_ordinary(text))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
