#!/usr/bin/env python3
"""tools/gpu/check_table.py on the outputs of a GPU run as check.sh leaves them (written here by
hand, with the log lines of nanogpt bench, bench.py, train.py and the runner): figures, ratios,
MFU on the port's peak, an out-of-memory seed run, and failed, timed-out and skipped steps.

Run by CTest with the build's Python (NANOGPT_PYTHON); needs only the standard library.
"""

import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "gpu"))
import check_table  # noqa: E402

STEPS = ["build", "logits", "port_bench_mb16", "port_bench_mb32", "nanogpt_eager_mb16", "nanogpt_eager_mb32",
         "port_seed", "nanogpt_seed", "nanogpt_compiled_mb16", "nanogpt_compiled_mb32"]


class GpuRun:
    def __init__(self, folder):
        self.folder = folder
        for sub in ("steps", "logs", "results"):
            os.makedirs(os.path.join(folder, sub))
        self.json("meta.json", {"mode": "gpu", "title": "GPU check", "micro_batches": [16, 32], "block_size": 1024,
                                "cap": "12 GiB", "seed_compile": False, "steps": STEPS})

    def json(self, name, value):
        with open(os.path.join(self.folder, name), "w") as f:
            json.dump(value, f)

    def text(self, name, lines):
        with open(os.path.join(self.folder, name), "w") as f:
            f.write("\n".join(lines) + "\n")

    def step(self, name, status="ok", rc=0, log=(), reason=""):
        self.json(f"steps/{name}.json", {"step": name, "status": status, "rc": rc, "seconds": 12, "timeout_s": 120,
                                         "reason": reason})
        self.text(f"logs/{name}.log", list(log))

    def rows(self):
        text, figures = check_table.build_table(check_table.Run(self.folder))
        rows = {}
        for line in text.splitlines():
            if line.startswith("| ") and not line.startswith(("| ---", "| check ")):
                cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
                rows[cells[0].split(";")[0]] = cells[1:]
        return rows, figures, text


def bench_py_log(ms, mfu):
    return ["Compiling model...", "0/20 loss: 10.9", f"time per iteration: {ms:.4f}ms, MFU: {mfu:.2f}%"]


class CheckTableTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.run_ = GpuRun(self.tmp.name)

    def tearDown(self):
        self.tmp.cleanup()

    def full_run(self):
        run = self.run_
        run.step("build")
        run.step("logits")
        run.json("results/logits.json", {"checked": "cuda bfloat16", "relative_error": 0.0071, "passed": True,
                                         "tolerance": 0.05, "argmax_agreement": 0.93})
        for mb, tokens_per_s in ((16, 400000.0), (32, 440000.0)):
            run.step(f"port_bench_mb{mb}")
            run.json(f"results/port_bench_mb{mb}.json",
                     {"tokens_per_s": tokens_per_s, "mfu": 0.30 * tokens_per_s / 400000.0, "peak_flops": 989e12,
                      "peak_flops_source": "NVIDIA H100 80GB HBM3 bfloat16 table"})
        # bench.py: 16 x 1024 tokens in 40.96 ms = 400,000 tokens/s; compiled twice as fast
        run.step("nanogpt_eager_mb16", log=bench_py_log(40.96, 95.0))
        run.step("nanogpt_eager_mb32", log=bench_py_log(81.92, 95.0))
        run.step("nanogpt_compiled_mb16", log=bench_py_log(20.48, 190.0))
        run.step("nanogpt_compiled_mb32", log=bench_py_log(40.96, 190.0))
        run.step("port_seed", log=["device memory capped at 12GiB: tensors beyond it fail as out of memory",
                                   "iter 0: loss 10.9", "iter 3: loss 10.8"])
        run.text("results/port_seed_metrics.jsonl", [
            json.dumps({"kind": "eval", "iter": 0, "train_loss": 10.9}),
            json.dumps({"kind": "iter", "iter": 0, "ms": 9000.0, "cuda_peak_allocated_bytes": 6 << 30,
                        "cuda_peak_reserved_bytes": 7 << 30}),
            json.dumps({"kind": "iter", "iter": 1, "ms": 1500.0, "cuda_peak_allocated_bytes": 7 << 30,
                        "cuda_peak_reserved_bytes": 8 << 30}),
            json.dumps({"kind": "iter", "iter": 2, "ms": 1400.0, "cuda_peak_allocated_bytes": 7 << 30,
                        "cuda_peak_reserved_bytes": 8 << 30}),
            json.dumps({"kind": "iter", "iter": 3, "ms": 1600.0, "cuda_peak_allocated_bytes": 7 << 30,
                        "cuda_peak_reserved_bytes": 8 << 30})])
        run.step("nanogpt_seed", status="failed", rc=1, log=[
            "nanogpt_runner: cuda memory limit 12884901888 bytes = 0.1509 of 85383266304",
            "step 0: train loss 10.9, val loss 10.9",
            "nanogpt_runner: out_of_memory: CUDA out of memory. Tried to allocate 3.07 GiB.",
            "nanogpt_runner: cuda:0 max_memory_allocated_bytes=12000000000 max_memory_reserved_bytes=12800000000",
            "nanogpt_runner: peak_rss_bytes=3000000000",
            "Traceback (most recent call last):", "torch.OutOfMemoryError: CUDA out of memory."])

    def test_figures_ratios_and_mfu_on_the_ports_peak(self):
        self.full_run()
        rows, figures, _ = self.run_.rows()
        self.assertEqual(rows["tokens/s, micro-batch 16"], ["400,000", "400,000", "800,000", "1.00", "0.50"])
        self.assertEqual(rows["tokens/s, micro-batch 32"][:3], ["440,000", "400,000", "800,000"])
        self.assertEqual(rows["tokens/s, micro-batch 32"][3:], ["1.10", "0.55"])
        # nanoGPT's MFU on the port's peak: the same FLOPs per token, so it scales with tokens/s
        self.assertEqual(rows["MFU, micro-batch 16"][:3], ["30.00%", "30.00%", "60.00%"])
        self.assertEqual(rows["MFU, micro-batch 32"][:3], ["33.00%", "30.00%", "60.00%"])
        self.assertTrue(rows["logits cuda bfloat16 vs cpu float32: relative error"][0].startswith("7.10e-03 (pass"))
        self.assertEqual(figures["mb16"]["nanogpt_eager"]["mfu_bench_py"], 0.95)

    def test_seed_run_fit_out_of_memory_peaks_and_time(self):
        self.full_run()
        rows, figures, _ = self.run_.rows()
        self.assertEqual(rows["12 GiB seed run: fits?"][:2], ["yes", "no (out of memory)"])
        self.assertEqual(rows["12 GiB seed run: peak memory"][0], "7.00 GiB (CUDA max allocated; reserved 8.00 GiB)")
        self.assertTrue(rows["12 GiB seed run: peak memory"][1].startswith("11.18 GiB (CUDA max allocated"))
        self.assertEqual(rows["12 GiB seed run: ms/iter (median from iter 1)"][0], "1500.0")  # iteration 0 left out
        self.assertEqual(rows["12 GiB seed run: ms/iter (median from iter 1)"][1], "n/a")
        self.assertTrue(figures["seed"]["nanogpt"]["oom"])

    def test_failed_timed_out_skipped_and_missing_steps_show_in_their_cells(self):
        run = self.run_
        run.step("build", status="failed", rc=1, log=["CMake Error"])
        for name in ("logits", "port_bench_mb16", "port_bench_mb32", "port_seed"):
            run.step(name, status="skipped", reason="no nanogpt binary")
        run.step("nanogpt_eager_mb16", status="timeout", rc=124, log=["0/10 loss: 10.9"])
        run.step("nanogpt_eager_mb32", log=["no time line"])
        rows, _, text = run.rows()
        self.assertEqual(rows["tokens/s, micro-batch 16"][0], "skipped: no nanogpt binary")
        self.assertEqual(rows["tokens/s, micro-batch 16"][1], "TIMEOUT after 120 s (logs/nanogpt_eager_mb16.log)")
        self.assertEqual(rows["tokens/s, micro-batch 16"][2], "not run")
        self.assertEqual(rows["tokens/s, micro-batch 16"][3:], ["n/a", "n/a"])
        self.assertIn("FAILED: no 'time per iteration' line", rows["tokens/s, micro-batch 32"][1])
        self.assertEqual(rows["12 GiB seed run: fits?"][1], "not run")
        self.assertIn("- build: failed, 12 s (logs/build.log)", text)
        self.assertIn("- nanogpt_compiled_mb32: not run yet", text)

    def test_a_port_seed_run_out_of_memory(self):
        self.run_.step("port_seed", status="failed", rc=1, log=[
            "device memory capped at 12GiB: tensors beyond it fail as out of memory",
            "error: out of memory at micro-batch 16 x 1024 tokens (CUDA out of memory. Tried to allocate 2.00 GiB)."])
        self.run_.text("results/port_seed_metrics.jsonl", [])
        rows, _, _ = self.run_.rows()
        self.assertEqual(rows["12 GiB seed run: fits?"][0], "no (out of memory)")
        self.assertEqual(rows["12 GiB seed run: peak memory"][0], "n/a")

    def test_a_failed_logits_check_still_shows_its_error(self):
        self.run_.step("logits", status="failed", rc=1, log=["error: relative error 3.000e-01 exceeds"])
        self.run_.json("results/logits.json", {"checked": "cuda bfloat16", "relative_error": 0.3, "passed": False,
                                               "tolerance": 0.05, "argmax_agreement": 0.2})
        rows, _, _ = self.run_.rows()
        self.assertTrue(rows["logits cuda bfloat16 vs cpu float32: relative error"][0].startswith("3.00e-01 (FAIL"))

    def test_main_writes_markdown_and_json(self):
        self.full_run()
        sys.argv = ["check_table.py", self.tmp.name]
        with open(os.devnull, "w") as devnull:
            stdout, sys.stdout = sys.stdout, devnull
            try:
                check_table.main()
            finally:
                sys.stdout = stdout
        with open(os.path.join(self.tmp.name, "check.md")) as f:
            self.assertIn("| tokens/s, micro-batch 16 | 400,000 |", f.read())
        with open(os.path.join(self.tmp.name, "check.json")) as f:
            self.assertEqual(json.load(f)["mb32"]["port"]["tokens_per_s"], 440000.0)


if __name__ == "__main__":
    unittest.main()
