#!/usr/bin/env python3
"""tools/nanogpt_compare.py without a nanoGPT checkout: its parsing and table functions, the
config translation it shares with tools/compare_nanogpt.py (tools/nanogpt_setup.py), and one
whole run against a stand-in nanoGPT (a train.py written here that prints nanoGPT's log lines
and holds 64 MiB).

  .venv/bin/python tests/test_nanogpt_compare.py [PATH/TO/nanogpt]

Run by CTest with the binary's path. The whole run needs torch and matplotlib in this Python
(the runner imports torch) and skips with a message without them; the rest needs neither.
"""

import json
import math
import os
import subprocess
import sys
import tempfile
import unittest

TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools")
sys.path.insert(0, TOOLS)
import compare_nanogpt  # noqa: E402
import nanogpt_compare  # noqa: E402
import nanogpt_setup  # noqa: E402

BINARY = None  # set from the command line


def importable(name):
    try:
        __import__(name)
        return True
    except ImportError:
        return False


NANOGPT_LOG = """\
tokens per iteration will be: 768
found vocab_size = 65 (inside data/shakespeare_char/meta.pkl)
Initializing a new model from scratch
number of parameters: 0.80M
step 0: train loss 4.1676, val loss 4.1649
iter 0: loss 4.1828, time 2413.23ms, mfu -100.00%
iter 1: loss 4.1373, time 71.20ms, mfu -100.00%
iter 2: loss 4.1347, time 70.00ms, mfu -100.00%
iter 3: loss 4.0995, time 1e+03ms, mfu -100.00%
nanogpt_runner: cuda:0 max_memory_allocated_bytes=123456789 max_memory_reserved_bytes=234567890
nanogpt_runner: peak_rss_bytes=328286208
"""


class ParsingTest(unittest.TestCase):
    def test_nanogpt_log_lines(self):
        iters, evals = compare_nanogpt.parse_nanogpt_log(NANOGPT_LOG.splitlines(keepends=True))
        self.assertEqual(sorted(iters), [0, 1, 2])  # "1e+03ms" is not nanoGPT's format: not an iter line
        self.assertEqual(iters[0], {"loss": 4.1828, "ms": 2413.23})
        self.assertEqual(iters[1], {"loss": 4.1373, "ms": 71.2})
        self.assertEqual(evals, {0: {"train_loss": 4.1676, "val_loss": 4.1649}})

    def test_runner_cuda_peaks(self):
        peaks = nanogpt_compare.parse_runner_cuda_peaks(NANOGPT_LOG.splitlines())
        self.assertEqual(peaks, {"cuda:0": {"allocated_bytes": 123456789, "reserved_bytes": 234567890}})
        self.assertEqual(nanogpt_compare.parse_runner_cuda_peaks(["iter 0: loss 4.0, time 1.00ms"]), {})

    def test_overrides(self):
        self.assertEqual(nanogpt_compare.parse_overrides(["--device=cpu", "--start=a=b", "--dropout=0.0"]),
                         [("device", "cpu"), ("start", "a=b"), ("dropout", "0.0")])
        for bad in (["--device", "cpu"], ["dropout=0.0"], ["--=1"]):
            with self.assertRaises(ValueError):
                nanogpt_compare.parse_overrides(bad)

    def test_parse_args_splits_tool_options_from_overrides(self):
        args = nanogpt_compare.parse_args(["c.yaml", "--nanogpt", "../nanoGPT", "--iters", "30", "--device=cpu",
                                           "--eval_iters=1", "--out", "o"])
        self.assertEqual((args.config, args.nanogpt, args.iters, args.out), ("c.yaml", "../nanoGPT", 30, "o"))
        self.assertEqual(args.overrides, [("device", "cpu"), ("eval_iters", "1")])
        self.assertEqual(args.warmup, 5)
        self.assertEqual([side for side, _, _ in args.peers], ["nanogpt_eager", "nanogpt_compiled"])
        self.assertEqual([c for _, _, c in args.peers], [False, True])

    def test_nanogpt_modes(self):
        args = nanogpt_compare.parse_args(["c.yaml", "--nanogpt", "n", "--nanogpt-modes", "compiled"])
        self.assertEqual(args.peers, [("nanogpt_compiled", "nanoGPT compiled", True)])
        for bad in ("jit", "", "eager,eager"):
            with self.assertRaises(SystemExit):
                nanogpt_compare.parse_args(["c.yaml", "--nanogpt", "n", "--nanogpt-modes", bad])

    def test_default_warmup(self):
        self.assertEqual(nanogpt_compare.default_warmup(10), 5)
        self.assertEqual(nanogpt_compare.default_warmup(50), 5)
        self.assertEqual(nanogpt_compare.default_warmup(200), 20)
        self.assertEqual(nanogpt_compare.default_warmup(201), 21)


class TranslationTest(unittest.TestCase):
    """The port's resolved config as nanoGPT's --key=value, typed as its configurator checks them."""

    def test_nanogpt_args(self):
        with tempfile.TemporaryDirectory() as checkout:
            with open(os.path.join(checkout, "train.py"), "w") as f:
                f.write("import os\nout_dir = 'out'\nlearning_rate = 6e-4\nmax_iters = 600000\n"
                        "gradient_accumulation_steps = 5 * 8\ncompile = True\nwandb_log = False\n"
                        "log_interval = 1\ndtype = 'bfloat16' if os.environ.get('X') else 'float16'\n"
                        "exec(open('configurator.py').read())\nafter_config = 1\n")
            config = {"out_dir": "o", "learning_rate": 1, "max_iters": 5000, "gradient_accumulation_steps": 1,
                      "compile": False, "wandb_log": True, "log_interval": 10, "dtype": "float32",
                      "seed": 7, "num_threads": 1, "data_dir": None}  # the last three are the port's own
            args = nanogpt_setup.nanogpt_args(config, 30, checkout, "/tmp/nano-out")
            self.assertEqual(args, ["--compile=False", "--dtype=float32", "--gradient_accumulation_steps=1",
                                    "--learning_rate=1.0", "--log_interval=1", "--max_iters=29",
                                    "--out_dir=/tmp/nano-out", "--wandb_log=False"])
            compiled = nanogpt_setup.nanogpt_args(config, 30, checkout, "/tmp/nano-out", compile_model=True)
            self.assertEqual(compiled[0], "--compile=True")
            self.assertEqual(compiled[1:], args[1:])
            with self.assertRaises(SystemExit):  # a key nanoGPT does not have: the sides would differ
                nanogpt_setup.nanogpt_args(dict(config, after_config=2), 30, checkout, "o")


class SummaryAndTableTest(unittest.TestCase):
    @staticmethod
    def run_records(ms_by_iter, first_loss=4.0):
        return {i: {"loss": first_loss - 0.1 * i, "ms": ms} for i, ms in ms_by_iter.items()}

    def test_summary_skips_warmup_and_eval_iterations(self):
        ms = {i: 100.0 + i for i in range(12)}
        ms[0] = ms[10] = 5000.0  # evaluations at 0 and 10 (eval_interval 10)
        summary = nanogpt_compare.summarize_run(self.run_records(ms), {0: {"val_loss": 4.2}}, n_iters=12,
                                                warmup=5, eval_interval=10, tokens_per_iter=768)
        self.assertEqual(summary["timed_iters"], 6)  # 5..9 and 11
        self.assertEqual(summary["median_ms"], 107.5)  # median of 105..109, 111
        self.assertAlmostEqual(summary["tokens_per_s"], 768 / 0.1075)
        self.assertEqual(summary["first_loss"], 4.0)
        self.assertAlmostEqual(summary["last_loss"], 4.0 - 1.1)
        self.assertEqual(summary["missing_iters"], [])
        self.assertEqual(summary["val_losses"], {0: 4.2})

    def test_summary_of_a_short_or_incomplete_run(self):
        summary = nanogpt_compare.summarize_run(self.run_records({0: 10.0, 1: 10.0, 3: 10.0}), {}, n_iters=4,
                                                warmup=5, eval_interval=250, tokens_per_iter=768)
        self.assertEqual((summary["timed_iters"], summary["median_ms"], summary["tokens_per_s"]), (0, None, None))
        self.assertEqual(summary["missing_iters"], [2])

    def sample_runs(self, repeat):
        def run(ms, rss, loss0, cuda=None):
            return {"median_ms": ms, "tokens_per_s": 768 / (ms / 1000), "peak_rss_bytes": rss,
                    "cuda_peak_allocated_bytes": cuda, "first_loss": loss0, "last_loss": loss0 - 1,
                    "wall_s": ms / 10}
        port = [run(70.0 + k, 230 << 20, 4.1828, 100 << 20) for k in range(repeat)]
        eager = [run(80.0 + k, 310 << 20, 4.1828, 200 << 20) for k in range(repeat)]
        compiled = [run(50.0 + k, 620 << 20, 4.1828, 150 << 20) for k in range(repeat)]
        return port, {"nanogpt_eager": eager, "nanogpt_compiled": compiled}

    NAMES = {"nanogpt_eager": "nanoGPT eager", "nanogpt_compiled": "nanoGPT compiled"}

    def test_table_rows_and_ratios(self):
        port, peers = self.sample_runs(2)
        rows = nanogpt_compare.build_table(port, peers, n_iters=30, warmup=5, cuda=False)
        by_key = {r["key"]: r for r in rows}
        self.assertNotIn("cuda_peak_allocated_bytes", by_key)
        self.assertEqual([r["key"] for r in rows],
                         ["median_ms", "tokens_per_s", "peak_rss_bytes", "first_loss", "last_loss", "wall_s"])
        self.assertEqual(by_key["median_ms"]["port"], [70.0, 71.0])
        self.assertEqual(by_key["median_ms"]["ratios"]["nanogpt_eager"], [70.0 / 80.0, 71.0 / 81.0])
        self.assertEqual(by_key["median_ms"]["ratios"]["nanogpt_compiled"], [70.0 / 50.0, 71.0 / 51.0])
        self.assertEqual(by_key["peak_rss_bytes"]["peers"]["nanogpt_eager"], [310.0, 310.0])  # MiB
        self.assertIsNone(by_key["first_loss"]["ratios"])
        self.assertIn("iters 5..29", by_key["median_ms"]["metric"])
        self.assertIn("iter 29", by_key["last_loss"]["metric"])

        table = nanogpt_compare.markdown_table(rows, self.NAMES).splitlines()
        self.assertEqual(table[0], "| metric | port | nanoGPT eager | nanoGPT compiled | port / nanoGPT eager | "
                                   "port / nanoGPT compiled |")
        self.assertEqual(table[1], "| --- | ---: | ---: | ---: | ---: | ---: |")
        self.assertEqual(table[2], "| ms/iter (median of iters 5..29, no eval) | 70.0 / 71.0 | 80.0 / 81.0 | "
                                   "50.0 / 51.0 | 0.88 / 0.88 | 1.40 / 1.39 |")
        self.assertEqual(table[3], "| tokens/s | 10,971 / 10,817 | 9,600 / 9,481 | 15,360 / 15,059 | 1.14 / 1.14 | "
                                   "0.71 / 0.72 |")
        self.assertEqual(table[4], "| peak RSS (MiB, from the OS) | 230.0 / 230.0 | 310.0 / 310.0 | 620.0 / 620.0 | "
                                   "0.74 / 0.74 | 0.37 / 0.37 |")
        self.assertEqual(table[5], "| first loss (iter 0) | 4.1828 / 4.1828 | 4.1828 / 4.1828 | 4.1828 / 4.1828 |  |  |")

    def test_table_on_cuda_and_with_missing_values(self):
        port, peers = self.sample_runs(1)
        del peers["nanogpt_compiled"]  # --nanogpt-modes eager
        peers["nanogpt_eager"][0]["cuda_peak_allocated_bytes"] = None  # the runner printed no CUDA line
        port[0]["median_ms"] = None
        rows = nanogpt_compare.build_table(port, peers, n_iters=4, warmup=5, cuda=True)
        by_key = {r["key"]: r for r in rows}
        self.assertEqual(by_key["cuda_peak_allocated_bytes"]["port"], [100.0])
        self.assertEqual(by_key["cuda_peak_allocated_bytes"]["ratios"], {"nanogpt_eager": [None]})
        self.assertIn("no timed iters", by_key["median_ms"]["metric"])
        table = nanogpt_compare.markdown_table(rows, {"nanogpt_eager": "nanoGPT eager"})
        self.assertIn("| metric | port | nanoGPT eager | port / nanoGPT eager |", table)
        self.assertIn("| CUDA max allocated (MiB) | 100.0 | - | - |", table)
        self.assertIn("| ms/iter (no timed iters) | - | 80.0 | - |", table)

    def test_port_peak_is_the_largest_logged_window(self):
        metrics = {"iters": {0: {"cuda_peak_allocated_bytes": None, "peak_rss_bytes": 9},
                             1: {"cuda_peak_allocated_bytes": 700, "peak_rss_bytes": 8},
                             2: {"cuda_peak_allocated_bytes": 500}}, "evals": {}}
        self.assertEqual(nanogpt_compare.largest_logged(metrics, "cuda_peak_allocated_bytes"), 700)
        self.assertEqual(nanogpt_compare.largest_logged(metrics, "peak_rss_bytes"), 9)
        self.assertIsNone(nanogpt_compare.largest_logged(metrics, "peak_tensor_bytes"))

    def test_json_holds_setup_runs_and_table(self):
        port, peers = self.sample_runs(1)
        rows = nanogpt_compare.build_table(port, peers, n_iters=30, warmup=5, cuda=False)
        result = nanogpt_compare.comparison_json({"iters": 30, "threads": 1}, port, peers, rows)
        result = json.loads(json.dumps(result))  # JSON-serialisable as written
        self.assertEqual(result["iters"], 30)
        self.assertEqual(result["runs"]["port"][0]["median_ms"], 70.0)
        self.assertEqual(result["runs"]["nanogpt_compiled"][0]["median_ms"], 50.0)
        self.assertEqual(result["table"][0]["key"], "median_ms")
        self.assertEqual(result["table"][0]["ratios"]["nanogpt_eager"], [70.0 / 80.0])
        self.assertNotIn("format", result["table"][0])


# A stand-in for nanoGPT's train.py: the config globals (from the port's own keys and defaults),
# its configurator, then nanoGPT's log lines. 64 MiB written byte by byte must show in its peak RSS.
FAKE_TRAIN_TAIL = """
exec(open('configurator.py').read())
blob = bytearray(b"\\x01") * (64 << 20)
print(f"tokens per iteration will be: {gradient_accumulation_steps * batch_size * block_size:,}")
for it in range(max_iters + 1):
    if it % eval_interval == 0:
        print(f"step {it}: train loss 3.9000, val loss 3.9500")
    print(f"iter {it}: loss {4.0 - 0.01 * it:.4f}, time {20.0 + it:.2f}ms, mfu -100.00%")
"""
FAKE_CONFIGURATOR = """
import sys
from ast import literal_eval
for arg in sys.argv[1:]:
    key, value = arg[2:].split('=', 1)
    assert key in globals(), key
    try:
        value = literal_eval(value)
    except (SyntaxError, ValueError):
        pass
    assert type(value) == type(globals()[key]), (key, value)
    globals()[key] = value
"""
TINY_CONFIG = """\
dataset: tiny
device: cpu
n_layer: 2
n_head: 2
n_embd: 32
block_size: 32
batch_size: 8
gradient_accumulation_steps: 1
lr_decay_iters: 100
warmup_iters: 5
eval_interval: 100
eval_iters: 2
num_threads: 1
"""


class WholeRunTest(unittest.TestCase):
    def test_against_a_stand_in_nanogpt(self):
        if BINARY is None:
            self.skipTest("no nanogpt binary given on the command line")
        if not (importable("torch") and importable("matplotlib")):
            self.skipTest(f"{sys.executable} lacks torch or matplotlib (tools/setup.sh --tests installs them)")
        with tempfile.TemporaryDirectory() as tmp:
            config_path = os.path.join(tmp, "tiny.yaml")
            with open(config_path, "w") as f:
                f.write(TINY_CONFIG)
            with open(os.path.join(tmp, "input.txt"), "w") as f:
                f.write("First Citizen: we are accounted poor citizens, the patricians good.\n" * 300)
            checkout = os.path.join(tmp, "fake-nanoGPT")
            os.makedirs(checkout)
            config = nanogpt_setup.resolved_config(BINARY, config_path, [])
            with open(os.path.join(checkout, "train.py"), "w") as f:
                for key, value in sorted(config.items()):
                    if key not in nanogpt_setup.PORT_ONLY_KEYS:
                        f.write(f"{key} = {value!r}\n")
                f.write(FAKE_TRAIN_TAIL)
            with open(os.path.join(checkout, "configurator.py"), "w") as f:
                f.write(FAKE_CONFIGURATOR)

            out = os.path.join(tmp, "out")
            result = subprocess.run(
                [sys.executable, os.path.join(TOOLS, "nanogpt_compare.py"), config_path, "--nanogpt", checkout,
                 "--binary", BINARY, "--input", os.path.join(tmp, "input.txt"), "--iters", "8", "--out", out,
                 "--dropout=0.0"], capture_output=True, text=True, cwd=tmp)
            self.assertEqual(result.returncode, 0, result.stdout[-3000:] + result.stderr[-3000:])
            self.assertIn("| ms/iter (median of iters 5..7, no eval) |", result.stdout)

            with open(os.path.join(out, "compare.json")) as f:
                compared = json.load(f)
            nano, port = compared["runs"]["nanogpt_eager"][0], compared["runs"]["port"][0]
            self.assertEqual(compared["runs"]["nanogpt_compiled"][0]["median_ms"], 26.0)
            self.assertIn("--compile=True", compared["runs"]["nanogpt_compiled"][0]["command"])
            self.assertIn("--compile=False", nano["command"])
            self.assertEqual(nano["median_ms"], 26.0)  # the stand-in's times 25, 26, 27 ms
            self.assertAlmostEqual(nano["tokens_per_s"], 256 / 0.026)
            self.assertEqual((nano["first_loss"], nano["last_loss"]), (4.0, 3.93))
            self.assertGreater(nano["peak_rss_bytes"], 64 << 20)
            self.assertGreater(port["peak_rss_bytes"], 10 << 20)
            self.assertEqual(port["peak_rss_bytes"], max(port["exit_peak_rss_bytes"], port["logged_peak_rss_bytes"]))
            self.assertEqual(port["timed_iters"], 3)
            self.assertTrue(math.isfinite(port["median_ms"]) and port["median_ms"] > 0)
            self.assertTrue(3.0 < port["first_loss"] < 3.3, port["first_loss"])  # about ln(vocab 23)
            self.assertEqual(compared["overrides"], {"dropout": "0.0"})
            self.assertEqual(compared["config"]["dropout"], 0.0)
            with open(os.path.join(out, "compare.md")) as f:
                self.assertIn("| peak RSS (MiB, from the OS) |", f.read())
            with open(os.path.join(out, "compare.png"), "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")


if __name__ == "__main__":
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
        BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main()
