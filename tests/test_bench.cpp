// nanogpt bench: the peak table, the MFU arithmetic and the profile it writes.
#include <gtest/gtest.h>

#include <cmath>

#include "nanogpt/train/bench.h"
#include "nanogpt/base/fileio.h"
#include "nanogpt/memory/memory_stats.h"
#include "test_util.h"

using namespace nanogpt;

TEST(Bench, PeakFlopsTable) {
  EXPECT_EQ(gpu_peak_flops("NVIDIA A100-SXM4-40GB", at::kBFloat16), 312e12);
  EXPECT_EQ(gpu_peak_flops("NVIDIA H100 80GB HBM3", at::kBFloat16), 989e12);
  EXPECT_EQ(gpu_peak_flops("NVIDIA H100 PCIe", at::kHalf), 756e12);
  EXPECT_EQ(gpu_peak_flops("NVIDIA H200", at::kFloat), 494e12);
  EXPECT_FALSE(gpu_peak_flops("NVIDIA GeForce RTX 3060", at::kBFloat16).has_value());
  EXPECT_GT(cpu_peak_flops(at::kFloat), 1e8);
}

TEST(Bench, TimesStepsAndComputesMfuLikeNanoGPT) {
  install_counting_cpu_allocator();  // as the binary does
  nanogpt::testing::TempDir dir;
  TrainConfig c = nanogpt::testing::tiny_config(dir / "none", dir / "out");
  c.gradient_accumulation_steps = 3;
  BenchOptions options;
  options.burn_in_steps = 1;
  options.timed_steps = 2;
  options.synthetic_data = true;
  options.peak_flops = 1e12;
  options.profile_path = dir / "trace.json";
  std::vector<std::string> lines;
  const BenchResult r = bench(c, options, [&](const std::string& line) { lines.push_back(line); });
  EXPECT_TRUE(r.synthetic_data);
  EXPECT_EQ(r.tokens_per_iter, 3 * 4 * 16);
  EXPECT_GT(r.ms_per_iter, 0);
  EXPECT_NEAR(r.tokens_per_s, r.tokens_per_iter / (r.ms_per_iter / 1000), 1e-6 * r.tokens_per_s);
  // model.py's estimate_mfu: 6N + 12 L H Q T flops per token, vocab 50304 without meta
  const double N = 32.0 * 50304 + 2 * (2 * 32 + 12 * 32.0 * 32) + 32;  // wte (tied), blocks, ln_f; not wpe
  const double flops_per_iter = (6 * N + 12 * 2 * 2 * 16 * 16.0) * 16 * 3 * 4;
  EXPECT_NEAR(r.mfu, flops_per_iter / (r.ms_per_iter / 1000) / 1e12, 1e-9);
  EXPECT_EQ(r.peak_flops_source, "--peak-flops");
  EXPECT_NEAR(r.last_loss, std::log(50304.0), 1.0);  // random tokens: about ln(vocab)
  EXPECT_GT(r.peak_tensor_bytes, 0);
  const std::string trace = read_file(dir / "trace.json");
  EXPECT_EQ(trace.front(), '[');
  EXPECT_NE(trace.find("\"name\": \"aten::"), std::string::npos);
  // the header, the MFU peak, then the losses
  EXPECT_EQ(lines.at(1).rfind("peak FLOP/s for MFU: ", 0), 0u) << lines.at(1);
  EXPECT_EQ(lines.at(2), "0/1 loss: " + lines.at(2).substr(10));
}

TEST(Bench, SaysWhenTheDatasetIsMissing) {
  nanogpt::testing::TempDir dir;
  TrainConfig c = nanogpt::testing::tiny_config(dir / "none", dir / "out");
  BenchOptions options;
  options.burn_in_steps = 0;
  options.timed_steps = 1;
  options.peak_flops = 1e12;
  std::vector<std::string> lines;
  const BenchResult r = bench(c, options, [&](const std::string& line) { lines.push_back(line); });
  EXPECT_TRUE(r.synthetic_data);
  const std::string expected = "note: no " + (std::filesystem::path(c.resolved_data_dir()) / "train.bin").string() +
                               ", so the steps run on random tokens (vocab_size 50304)";
  EXPECT_EQ(lines.at(1).substr(0, expected.size()), expected);
}
