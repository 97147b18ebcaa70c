// nanogpt check-logits: a device/dtype path against the CPU in float32.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "nanogpt/interop/checkpoint.h"
#include "nanogpt/train/logits_check.h"
#include "test_util.h"

using namespace nanogpt;

namespace {

TrainConfig tiny(const std::string& dtype) {
  TrainConfig c = nanogpt::testing::tiny_config("no-data", "no-out");  // 2 x 2 x 32, block 16, CPU, 1 thread
  c.dtype = dtype;
  return c;
}

LogitsCheckOptions small_vocab() {
  LogitsCheckOptions options;
  options.vocab_size = 97;
  return options;
}

void quiet(const std::string&) {}

}  // namespace

TEST(LogitsCheck, Float32OnTheCpuEqualsTheReference) {
  const LogitsCheckResult r = check_logits(tiny("float32"), small_vocab(), quiet);
  EXPECT_EQ(r.checked, "cpu float32");
  EXPECT_EQ(r.positions, 2 * 16);
  EXPECT_EQ(r.relative_error, 0.0);
  EXPECT_EQ(r.max_abs_error, 0.0);
  EXPECT_EQ(r.argmax_agreement, 1.0);
  EXPECT_EQ(r.checked_loss, r.reference_loss);
  EXPECT_NEAR(r.reference_loss, std::log(97.0), 0.5);  // random tokens on a fresh model
  EXPECT_EQ(r.tolerance, 1e-3);
  EXPECT_TRUE(r.passed);
}

TEST(LogitsCheck, Bfloat16AutocastDiffersByRoundingOnly) {
  std::vector<std::string> lines;
  const LogitsCheckResult r =
      check_logits(tiny("bfloat16"), small_vocab(), [&](const std::string& line) { lines.push_back(line); });
  EXPECT_GT(r.relative_error, 1e-4);  // the autocast path really ran in bfloat16
  EXPECT_LT(r.relative_error, 2e-2);
  EXPECT_NEAR(r.checked_loss, r.reference_loss, 1e-2);
  EXPECT_EQ(r.tolerance, 5e-2);
  EXPECT_TRUE(r.passed);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[1].rfind("relative error ", 0), 0u) << lines[1];
  EXPECT_NE(lines[1].find("pass"), std::string::npos) << lines[1];

  LogitsCheckOptions strict = small_vocab();
  strict.tolerance = 1e-9;
  const LogitsCheckResult failed = check_logits(tiny("bfloat16"), strict, quiet);
  EXPECT_EQ(failed.relative_error, r.relative_error);  // seeded: the same model and tokens
  EXPECT_FALSE(failed.passed);
}

TEST(LogitsCheck, TakesShapeAndWeightsFromACheckpoint) {
  nanogpt::testing::TempDir dir;
  GPT saved(GPTConfig{8, 40, 1, 2, 16, 0.0, false});
  {
    torch::NoGradGuard no_grad;
    saved->wte->weight.mul_(100.0);  // logits far larger than a fresh model's
  }
  save_checkpoint(dir / "ckpt.pt", saved, nullptr, CheckpointInfo{saved->config, 1, 1.0, nlohmann::json::object(), {}});
  LogitsCheckOptions options;
  options.checkpoint_path = dir / "ckpt.pt";
  options.batch_size = 3;
  const LogitsCheckResult r = check_logits(tiny("float32"), options, quiet);
  EXPECT_EQ(r.positions, 3 * 8);
  EXPECT_GT(r.reference_max_abs, 10.0);
  EXPECT_EQ(r.relative_error, 0.0);

  options.batch_size = 0;
  EXPECT_THROW(check_logits(tiny("float32"), options, quiet), std::invalid_argument);
}
