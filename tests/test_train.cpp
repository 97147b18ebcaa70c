#include <gtest/gtest.h>
#include <torch/torch.h>

#include <atomic>
#include <fstream>
#include <algorithm>
#include <limits>
#include <map>

#include <nlohmann/json.hpp>

#include "nanogpt/cpu/features.h"
#include "nanogpt/train/precision.h"
#include "nanogpt/interop/checkpoint.h"
#include "nanogpt/data/data.h"
#include "nanogpt/base/fileio.h"
#include "nanogpt/train/finite_watch.h"
#include "nanogpt/memory/memory_stats.h"
#include "nanogpt/train/metrics.h"
#include "nanogpt/train/train.h"
#include "test_util.h"
#include "nanogpt/base/compat.h"

using namespace nanogpt;
using nanogpt::testing::TempDir;

namespace {

// iteration -> loss, from out_dir/metrics.jsonl
std::map<int64_t, double> logged_losses(const std::string& out_dir) {
  std::map<int64_t, double> losses;
  std::ifstream in(out_dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    auto record = nlohmann::json::parse(line);
    if (record["kind"] == "iter") losses[record["iter"].get<int64_t>()] = record["loss"].get<double>();
  }
  return losses;
}

TrainHooks quiet() {
  TrainHooks hooks;
  hooks.print = [](const std::string&) {};
  return hooks;
}

}  // namespace

TEST(Train, LearningRateScheduleIsWarmupThenCosine) {
  TrainConfig c = default_config();
  c.learning_rate = 1e-3;
  c.min_lr = 1e-4;
  c.warmup_iters = 10;
  c.lr_decay_iters = 110;
  EXPECT_DOUBLE_EQ(get_lr(c, 0), 1e-3 * 1 / 11);
  EXPECT_DOUBLE_EQ(get_lr(c, 9), 1e-3 * 10 / 11);
  EXPECT_DOUBLE_EQ(get_lr(c, 10), 1e-3);
  EXPECT_NEAR(get_lr(c, 60), 1e-4 + 0.5 * (1e-3 - 1e-4), 1e-15);
  EXPECT_NEAR(get_lr(c, 110), 1e-4, 1e-15);
  EXPECT_DOUBLE_EQ(get_lr(c, 111), 1e-4);
}

TEST(Train, TwoLayerModelOverfitsATinyCorpus) {
  TempDir dir;
  nanogpt::testing::make_char_dataset(dir / "data");
  TrainConfig c = nanogpt::testing::tiny_config(dir / "data", dir / "out");
  c.max_iters = 150;
  c.lr_decay_iters = 150;
  c.eval_interval = 150;
  c.eval_iters = 5;
  const TrainResult result = train(c, quiet());
  // One sentence repeated: ln(19 characters) = 2.94 at init, far below 0.5 once memorised.
  EXPECT_EQ(result.iter_num, 151);
  EXPECT_LT(result.last_val_loss, 0.5);
  const auto losses = logged_losses(c.out_dir);
  EXPECT_GT(losses.at(0), 2.5);
  EXPECT_LT(losses.at(150), 0.5);
}

TEST(Train, CheckpointRoundTripRestoresWeightsAndMetadata) {
  TempDir dir;
  torch::manual_seed(3);
  GPT model(GPTConfig{16, 20, 2, 2, 16, 0.0, true});
  auto optimizer = model->configure_optimizers(0.1, 1e-3, {0.9, 0.95});
  auto [logits, loss] = model->forward(torch::randint(20, {2, 16}, torch::kLong), torch::randint(20, {2, 16}, torch::kLong));
  loss.backward();
  optimizer->step();
  CheckpointInfo info{model->config, 42, 1.25, nlohmann::json{{"dataset", "x"}}, torch::ones({3}, torch::kByte)};
  save_checkpoint(dir / "ckpt.pt", model, optimizer.get(), info);
  EXPECT_FALSE(std::filesystem::exists(dir / "ckpt.pt.tmp"));

  CheckpointInfo loaded_info;
  GPT loaded = load_model(dir / "ckpt.pt", &loaded_info);
  EXPECT_EQ(loaded_info.iter_num, 42);
  EXPECT_DOUBLE_EQ(loaded_info.best_val_loss, 1.25);
  EXPECT_EQ(loaded_info.config["dataset"], "x");
  EXPECT_EQ(loaded_info.model_args.n_embd, 16);
  EXPECT_TRUE(loaded_info.model_args.bias);
  EXPECT_TRUE(torch::equal(loaded_info.rng_state, torch::ones({3}, torch::kByte)));
  auto a = model->named_parameters(), b = loaded->named_parameters();
  for (const auto& item : a) EXPECT_TRUE(torch::equal(item.value(), b[item.key()])) << item.key();

  auto optimizer2 = loaded->configure_optimizers(0.1, 1e-3, {0.9, 0.95});
  load_checkpoint_state(dir / "ckpt.pt", loaded, optimizer2.get());
  const auto& state = optimizer2->state();
  EXPECT_EQ(state.size(), model->parameters().size());
}

TEST(Train, CheckpointOfAnotherShapeIsRejectedWithTheTensorName) {
  TempDir dir;
  GPT model(GPTConfig{16, 20, 1, 2, 16, 0.0, false});
  save_checkpoint(dir / "ckpt.pt", model, nullptr, CheckpointInfo{model->config, 1, 1.0, nlohmann::json::object(), {}});
  GPT other(GPTConfig{16, 20, 1, 2, 32, 0.0, false});
  try {
    load_checkpoint_state(dir / "ckpt.pt", other, nullptr);
    FAIL();
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'transformer.wte.weight' has shape 20x16 but the model expects 20x32"),
              std::string::npos);
  }
  nanogpt::testing::write_text(dir / "bad.pt", "not a zip");
  EXPECT_THROW(read_checkpoint_info(dir / "bad.pt"), CheckpointError);
  EXPECT_THROW(read_checkpoint_info(dir / "none.pt"), CheckpointError);
}

TEST(Train, ResumeContinuesExactly) {
  for (double dropout : {0.0, 0.2}) {
    TempDir dir;
    nanogpt::testing::make_char_dataset(dir / "data");
    TrainConfig straight = nanogpt::testing::tiny_config(dir / "data", dir / "straight");
    straight.dropout = dropout;
    straight.always_save_checkpoint = true;
    train(straight, quiet());  // iterations 0..20

    TrainConfig first = straight;
    first.out_dir = dir / "split";
    first.max_iters = 10;  // checkpoint at the eval of iteration 10, then step 10
    train(first, quiet());
    TrainConfig second = first;
    second.max_iters = 20;
    second.init_from = "resume";
    const TrainResult resumed = train(second, quiet());
    EXPECT_EQ(resumed.iter_num, 21);

    const auto expected = logged_losses(straight.out_dir);
    const auto got = logged_losses(second.out_dir);  // 0..10 of the first run, then 10..20 again
    ASSERT_EQ(expected.size(), 21u);
    for (int64_t it = 0; it <= 20; ++it) {
      EXPECT_NEAR(got.at(it), expected.at(it), 1e-6) << "iteration " << it << " dropout " << dropout;
    }
  }
}

TEST(Train, StopRequestSavesACheckpointThatResumes) {
  TempDir dir;
  nanogpt::testing::make_char_dataset(dir / "data");
  TrainConfig c = nanogpt::testing::tiny_config(dir / "data", dir / "out");
  std::atomic<bool> stop{true};  // stop right after the first iteration
  TrainHooks hooks = quiet();
  hooks.stop_requested = &stop;
  const TrainResult result = train(c, hooks);
  EXPECT_TRUE(result.interrupted);
  EXPECT_EQ(result.iter_num, 1);
  EXPECT_EQ(read_checkpoint_info(c.out_dir + "/ckpt.pt").iter_num, 1);

  TrainConfig straight = c;
  straight.out_dir = dir / "straight";
  straight.max_iters = 3;
  train(straight, quiet());
  TrainConfig resume = c;
  resume.init_from = "resume";
  resume.max_iters = 3;
  train(resume, quiet());
  const auto expected = logged_losses(straight.out_dir);
  const auto got = logged_losses(resume.out_dir);
  for (int64_t it = 0; it <= 3; ++it) EXPECT_NEAR(got.at(it), expected.at(it), 1e-6) << it;
}

TEST(Train, MissingDataAndTooShortDataAreClearErrors) {
  TempDir dir;
  TrainConfig c = nanogpt::testing::tiny_config(dir / "nodata", dir / "out");
  try {
    train(c, quiet());
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("nodata/train.bin' does not exist"), std::string::npos);
  }
  nanogpt::testing::make_char_dataset(dir / "data", 1);  // 43 characters: val has 5
  c.data_dir = dir / "data";
  try {
    train(c, quiet());
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("val.bin' has 5 tokens; block_size 16 needs at least 17"), std::string::npos);
  }
}

TEST(Train, EvalOnlyEvaluatesAndStops) {
  TempDir dir;
  nanogpt::testing::make_char_dataset(dir / "data");
  TrainConfig c = nanogpt::testing::tiny_config(dir / "data", dir / "out");
  c.eval_only = true;
  const TrainResult result = train(c, quiet());
  EXPECT_EQ(result.iter_num, 0);
  EXPECT_FALSE(std::isnan(result.last_val_loss));
  EXPECT_TRUE(logged_losses(c.out_dir).empty());
  EXPECT_FALSE(std::filesystem::exists(c.out_dir + "/ckpt.pt"));
}

namespace {

int64_t peak_tensor_bytes_of_run(const std::string& out_dir) {
  int64_t peak = 0;
  std::ifstream in(out_dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    auto record = nlohmann::json::parse(line);
    if (record["kind"] == "iter") peak = std::max(peak, record["peak_tensor_bytes"].get<int64_t>());
  }
  return peak;
}

// Trains micro-batch 8 x 128 tokens for 3 iterations with the tensor bytes counted.
TrainConfig measured_micro_batch_8_run(const TempDir& dir, const std::string& out_name) {
  nanogpt::testing::make_char_dataset(dir / "data", 400);
  TrainConfig c = nanogpt::testing::tiny_config(dir / "data", dir / out_name);
  c.block_size = 128;
  c.batch_size = 8;
  c.gradient_accumulation_steps = 1;
  c.max_iters = 2;
  c.eval_iters = 1;
  install_counting_cpu_allocator();
  train(c, quiet());
  return c;
}

}  // namespace

TEST(Train, AutoFitHalvesTheMicroBatchOnOutOfMemory) {
  TempDir dir;
  const TrainConfig c = measured_micro_batch_8_run(dir, "measure8");
  const int64_t peak8 = peak_tensor_bytes_of_run(c.out_dir);
  TrainConfig half = c;
  half.out_dir = dir / "measure4";
  half.batch_size = 4;
  half.gradient_accumulation_steps = 2;
  train(half, quiet());
  const int64_t peak4 = peak_tensor_bytes_of_run(half.out_dir);
  ASSERT_LT(peak4, peak8);

  // A cap between the two peaks: micro-batch 8 runs out of memory, 4 fits.
  TrainConfig fitted = c;
  fitted.out_dir = dir / "fitted";
  fitted.memory_limit = std::to_string((peak4 + peak8) / 2);
  try {
    train(fitted, quiet());
    FAIL() << "expected out of memory";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("out of memory at micro-batch 8 x 128 tokens"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("The estimate for batch_size 8 x gradient_accumulation_steps 1"),
              std::string::npos) << e.what();
  }
  fitted.auto_fit = true;
  std::vector<std::string> lines;
  TrainHooks hooks;
  hooks.print = [&](const std::string& line) { lines.push_back(line); };
  const TrainResult result = train(fitted, hooks);
  EXPECT_EQ(result.iter_num, 3);
  EXPECT_EQ(std::count_if(lines.begin(), lines.end(), [](const std::string& l) {
              return l.find("auto_fit halves the micro-batch to 4 and doubles gradient_accumulation_steps to 2") !=
                     std::string::npos;
            }),
            1);
  EXPECT_LE(peak_tensor_bytes_of_run(fitted.out_dir), (peak4 + peak8) / 2);
  EXPECT_EQ(memory_peaks(at::kCPU).cpu_tensor_bytes >= 0, true);
  // the budget is lifted when training ends
  auto big = torch::empty({static_cast<int64_t>(peak8)}, torch::kByte);
  EXPECT_EQ(big.numel(), peak8);
}

TEST(Train, MemoryBudgetAppliesThePlannersSettingUpFront) {
  TempDir dir;
  const TrainConfig c = measured_micro_batch_8_run(dir, "plain");
  const int64_t plain_peak = peak_tensor_bytes_of_run(c.out_dir);

  TrainConfig budgeted = c;
  budgeted.out_dir = dir / "budgeted";
  budgeted.memory_budget = std::to_string(plain_peak * 3 / 4);
  budgeted.eval_interval = 2;  // a checkpoint at iteration 2
  std::vector<std::string> lines;
  TrainHooks hooks;
  hooks.print = [&](const std::string& line) { lines.push_back(line); };
  const TrainResult result = train(budgeted, hooks);  // no out-of-memory: the plan fits
  EXPECT_EQ(result.iter_num, 3);
  EXPECT_EQ(std::count_if(lines.begin(), lines.end(),
                          [](const std::string& l) { return l.rfind("memory plan for ", 0) == 0; }),
            1);
  EXPECT_LE(peak_tensor_bytes_of_run(budgeted.out_dir), plain_peak * 3 / 4);
  // the setting the run used is the one its checkpoint records: same tokens per iteration
  const auto saved = read_checkpoint_info(budgeted.out_dir + "/ckpt.pt").config;
  EXPECT_EQ(saved["batch_size"].get<int64_t>() * saved["gradient_accumulation_steps"].get<int64_t>(), 8);
}

TEST(Train, DivergedRunStopsNamingTheIterationAndKeepsTheLastCheckpoint) {
  TempDir dir;
  nanogpt::testing::make_char_dataset(dir / "data");
  TrainConfig c = nanogpt::testing::tiny_config(dir / "data", dir / "out");
  c.eval_interval = 5;
  c.always_save_checkpoint = true;
  c.max_iters = 5;  // a checkpoint at iteration 5
  train(c, quiet());
  const std::string ckpt = c.out_dir + "/ckpt.pt";
  const std::string saved = read_file(ckpt);

  TrainConfig diverging = c;  // iteration 5 steps with a learning rate that overflows the weights
  diverging.init_from = "resume";
  diverging.learning_rate = 1e30;
  diverging.decay_lr = false;
  diverging.max_iters = 20;
  diverging.always_save_checkpoint = false;
  for (double grad_clip : {1.0, 0.0}) {
    diverging.grad_clip = grad_clip;
    const std::string error = nanogpt::testing::error_of([&] { train(diverging, quiet()); });
    EXPECT_EQ(error, "iteration 6: the loss is NaN; the run stopped without saving after it (" + ckpt +
                         " holds iteration 5). Lower learning_rate or set grad_clip.")
        << "grad_clip " << grad_clip;
    EXPECT_TRUE(read_file(ckpt) == saved) << "the checkpoint changed";
  }
  // an evaluation at iteration 6 would save the diverged weights: it stops first
  diverging.eval_interval = 1;
  diverging.always_save_checkpoint = true;
  EXPECT_EQ(nanogpt::testing::error_of([&] { train(diverging, quiet()); }),
            "iteration 6: the train loss is NaN; the run stopped without saving after it (" + ckpt +
                " holds iteration 5). Lower learning_rate or set grad_clip.");
  EXPECT_EQ(read_checkpoint_info(ckpt).iter_num, 5);
}

TEST(FiniteWatch, NamesTheFirstNonFiniteValue) {
  FiniteWatch watch;
  EXPECT_EQ(watch.first_non_finite(), "");
  watch.observe(torch::tensor(2.5), 6, "loss");
  watch.observe(torch::tensor(0.7), 6, "gradient norm");
  EXPECT_EQ(watch.first_non_finite(), "");
  watch.observe(torch::tensor(std::numeric_limits<float>::infinity()), 7, "gradient norm");
  watch.observe(torch::tensor(std::nanf("")), 8, "loss");
  EXPECT_EQ(watch.first_non_finite(), "iteration 7: the gradient norm is inf");
}

TEST(MetricsLog, AppendingDropsALineAKilledRunLeftUnfinished) {
  TempDir dir;
  const std::string path = dir / "metrics.jsonl";
  nanogpt::testing::write_text(path, "{\"iter\":0}\n{\"iter\":1}\n{\"it");
  MetricsLog(path, true).write({{"iter", 1}});
  EXPECT_EQ(read_file(path), "{\"iter\":0}\n{\"iter\":1}\n{\"iter\":1}\n");
  MetricsLog(path, false).write({{"iter", 0}});
  EXPECT_EQ(read_file(path), "{\"iter\":0}\n");
}

// The config's dtype, parsed once: autocast, the gradient scaler, bf16 products on this CPU.
TEST(Precision, ParsesTheConfigsDtype) {
  const nanogpt::Precision fp32("float32", at::kCPU);
  EXPECT_FALSE(fp32.autocast.has_value());
  EXPECT_EQ(fp32.compute_type, at::kFloat);
  EXPECT_FALSE(fp32.scales_gradients);
  const nanogpt::Precision fp16("float16", at::kCUDA);
  ASSERT_TRUE(fp16.autocast.has_value());
  EXPECT_EQ(fp16.autocast->dtype, at::kHalf);
  EXPECT_TRUE(fp16.scales_gradients);
  EXPECT_FALSE(fp16.bf16_products_in_float);
  const nanogpt::Precision bf16_cuda("bfloat16", at::kCUDA);
  EXPECT_EQ(bf16_cuda.autocast->dtype, at::kBFloat16);
  EXPECT_FALSE(bf16_cuda.bf16_products_in_float);
  EXPECT_EQ(nanogpt::Precision("bfloat16", at::kCPU).bf16_products_in_float, !nanogpt::cpu_has_native_bf16());
  EXPECT_THROW(nanogpt::Precision("fp8", at::kCPU), std::invalid_argument);
}
