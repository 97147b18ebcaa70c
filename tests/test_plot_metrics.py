#!/usr/bin/env python3
"""tools/plot_metrics.py: a PNG from generated metrics.jsonl files, and clear errors for bad ones.

Run by CTest with the build's Python (NANOGPT_PYTHON, .venv/bin/python); exits 77 (CTest: skipped) when matplotlib is missing.
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest

TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools")
sys.path.insert(0, TOOLS)
import plot_metrics  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_run(folder, losses, evals, extra_lines=()):
    """A metrics.jsonl as the trainer writes it: eval records, then iter records."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "metrics.jsonl"), "w") as f:
        for it, loss in enumerate(losses):
            if it in evals:
                f.write(json.dumps({"kind": "eval", "iter": it, "train_loss": evals[it][0],
                                    "val_loss": evals[it][1], "lr": 1e-3}) + "\n")
            f.write(json.dumps({"kind": "iter", "iter": it, "loss": loss, "lr": 1e-3, "ms": 70.0 + it,
                                "tokens_per_s": 10000.0, "mfu": None, "peak_rss_bytes": 200 << 20}) + "\n")
        for line in extra_lines:
            f.write(line + "\n")


def run_tool(*args):
    return subprocess.run([sys.executable, os.path.join(TOOLS, "plot_metrics.py"), *args],
                          capture_output=True, text=True)


class PlotMetricsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.tmp = self.dir.name

    def tearDown(self):
        self.dir.cleanup()

    def test_two_runs_make_a_png(self):
        write_run(os.path.join(self.tmp, "a"), [4.2 - 0.05 * i for i in range(30)], {0: (4.2, 4.25), 20: (3.3, 3.4)})
        write_run(os.path.join(self.tmp, "b"), [4.1 - 0.04 * i for i in range(30)], {0: (4.1, 4.15)})
        output = os.path.join(self.tmp, "losses.png")
        result = run_tool(os.path.join(self.tmp, "a"), os.path.join(self.tmp, "b", "metrics.jsonl"),
                          "--output", output, "--title", "two runs")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertGreater(os.path.getsize(output), 1000)
        with open(output, "rb") as f:
            self.assertEqual(f.read(8), PNG_SIGNATURE)

    def test_run_without_evals_still_plots(self):
        write_run(os.path.join(self.tmp, "a"), [4.0, 3.9, 3.8], {})
        output = os.path.join(self.tmp, "noeval.png")
        result = run_tool(os.path.join(self.tmp, "a"), "-o", output)
        self.assertEqual(result.returncode, 0, result.stderr)
        with open(output, "rb") as f:
            self.assertEqual(f.read(8), PNG_SIGNATURE)

    def test_read_metrics_keeps_last_record_and_nan_for_null(self):
        folder = os.path.join(self.tmp, "resumed")
        write_run(folder, [4.0, 3.9, 3.8], {0: (4.0, 4.1)},
                  extra_lines=['{"kind":"iter","iter":2,"loss":3.5,"ms":1.0}',  # resumed: iteration 2 again
                               '{"kind":"iter","iter":3,"loss":null,"ms":1.0}',  # a NaN loss is written as null
                               '{"kind":"note","text":"ignored"}', ""])
        metrics = plot_metrics.read_metrics(plot_metrics.metrics_path(folder))
        self.assertEqual(sorted(metrics["iters"]), [0, 1, 2, 3])
        self.assertEqual(metrics["iters"][2]["loss"], 3.5)
        self.assertNotEqual(metrics["iters"][3]["loss"], metrics["iters"][3]["loss"])  # NaN
        self.assertEqual(metrics["evals"][0]["val_loss"], 4.1)
        self.assertEqual(metrics["iters"][1]["ms"], 71.0)

    def test_malformed_line_names_file_and_line(self):
        folder = os.path.join(self.tmp, "broken")
        write_run(folder, [4.0], {0: (4.0, 4.1)}, extra_lines=['{"kind":"iter","iter":1,"loss":'])
        path = os.path.join(folder, "metrics.jsonl")
        result = run_tool(folder, "-o", os.path.join(self.tmp, "x.png"))
        self.assertEqual(result.returncode, 1)
        self.assertIn(f"{path}:3: not valid JSON", result.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "x.png")))

    def test_wrong_field_types_name_file_and_line(self):
        cases = {'{"kind":"iter","iter":0,"loss":"4.0"}': "needs a number for 'loss'",
                 '{"kind":"eval","iter":0,"train_loss":4.0}': "needs a number for 'val_loss'",
                 '{"kind":"iter","iter":"0","loss":4.0}': "needs an integer 'iter'",
                 '[1, 2]': "expected a JSON object with a 'kind'"}
        for line, message in cases.items():
            path = os.path.join(self.tmp, "bad.jsonl")
            with open(path, "w") as f:
                f.write('{"kind":"iter","iter":0,"loss":4.0}\n' + line + "\n")
            with self.assertRaises(plot_metrics.MetricsError) as raised:
                plot_metrics.read_metrics(path)
            self.assertIn(f"{path}:2:", str(raised.exception))
            self.assertIn(message, str(raised.exception))

    def test_missing_and_empty_files(self):
        missing = os.path.join(self.tmp, "no-such-run")
        result = run_tool(missing, "-o", os.path.join(self.tmp, "x.png"))
        self.assertEqual(result.returncode, 1)
        self.assertIn(f"{missing}: not found", result.stderr)
        empty = os.path.join(self.tmp, "empty.jsonl")
        open(empty, "w").close()
        result = run_tool(empty, "-o", os.path.join(self.tmp, "x.png"))
        self.assertEqual(result.returncode, 1)
        self.assertIn(f"{empty}: no 'iter' or 'eval' records", result.stderr)


if __name__ == "__main__":
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print(f"SKIP: {sys.executable} has no matplotlib (tools/setup.sh --tests installs it)")
        sys.exit(77)
    unittest.main()
