#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "nanogpt/base/config.h"
#include "nanogpt/train/memory_plan.h"
#include "nanogpt/model/model.h"

using namespace nanogpt;

namespace {

TrainConfig shape(int64_t n_layer, int64_t n_head, int64_t n_embd, int64_t block_size, int64_t batch_size,
                  int64_t accumulation = 2) {
  TrainConfig c = default_config();
  c.device = "cpu";
  c.n_layer = n_layer;
  c.n_head = n_head;
  c.n_embd = n_embd;
  c.block_size = block_size;
  c.batch_size = batch_size;
  c.gradient_accumulation_steps = accumulation;
  c.num_threads = 2;
  return c;
}

TrainConfig gpt2_124m() {
  TrainConfig c = shape(12, 12, 768, 1024, 16, 32);
  c.dtype = "bfloat16";
  return c;
}

}  // namespace

TEST(MemoryPlan, ParameterTermEqualsModelParameterBytes) {
  for (bool bias : {false, true}) {
    for (const auto& [layers, heads, embd, block, vocab] :
         std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>>{{2, 2, 32, 16, 65}, {3, 4, 64, 128, 1000}, {12, 12, 768, 1024, 50304}}) {
      TrainConfig c = shape(layers, heads, embd, block, 1);
      c.bias = bias;
      GPT model(GPTConfig{block, vocab, layers, heads, embd, 0.0, bias});
      const MemoryEstimate e = estimate_memory(c, vocab, MemoryDevice::cpu);
      ASSERT_EQ(e.terms[0].name, "parameters (fp32)");
      EXPECT_EQ(e.terms[0].bytes, model->get_num_params(false) * 4) << layers << " " << embd << " bias " << bias;
      EXPECT_EQ(e.parameter_count, model->get_num_params(false));
    }
  }
}

TEST(MemoryPlan, TotalIsTheSumOfTheTerms) {
  const MemoryEstimate e = estimate_memory(gpt2_124m(), 50304, MemoryDevice::cuda);
  int64_t sum = 0;
  for (const auto& t : e.terms) {
    EXPECT_FALSE(t.formula.empty()) << t.name;
    EXPECT_GE(t.bytes, 0) << t.name;
    sum += t.bytes;
  }
  EXPECT_EQ(sum, e.total_bytes);
}

TEST(MemoryPlan, PlannerKeepsEffectiveBatchFitsBudgetAndIsMonotone) {
  for (MemoryDevice device : {MemoryDevice::cpu, MemoryDevice::cuda}) {
    const TrainConfig c = gpt2_124m();
    const int64_t effective = c.batch_size * c.gradient_accumulation_steps;
    int64_t previous_micro = 0;
    for (double budget_gib = 3.0; budget_gib <= 80.0; budget_gib += 0.5) {
      const auto budget = static_cast<int64_t>(budget_gib * 1024 * 1024 * 1024);
      MemoryPlan plan;
      try {
        plan = plan_memory(c, 50304, device, budget);
      } catch (const MemoryPlanError&) {
        EXPECT_EQ(previous_micro, 0) << "a larger budget stopped fitting at " << budget_gib;
        continue;
      }
      SCOPED_TRACE(budget_gib);
      EXPECT_EQ(plan.config.batch_size * plan.config.gradient_accumulation_steps, effective);
      EXPECT_EQ(effective % plan.config.batch_size, 0);
      EXPECT_LE(plan.estimate.total_bytes, budget);
      EXPECT_EQ(plan.estimate.total_bytes, estimate_memory(plan.config, 50304, device).total_bytes);
      EXPECT_GE(plan.config.batch_size, previous_micro);
      previous_micro = plan.config.batch_size;
    }
    EXPECT_EQ(previous_micro, c.batch_size);  // a large budget keeps the configured micro-batch
  }
}

TEST(MemoryPlan, PlannerPrefersTheConfigAsItIsWhenItFits) {
  TrainConfig c = shape(2, 2, 32, 16, 4);
  const MemoryPlan plan = plan_memory(c, 65, MemoryDevice::cpu, int64_t(1) << 30);
  EXPECT_FALSE(plan.changed_micro_batch);
  EXPECT_FALSE(plan.needed_chunked_loss);
  EXPECT_FALSE(plan.needed_checkpointing);
  EXPECT_EQ(plan.config.batch_size, 4);
  EXPECT_EQ(plan.config.gradient_accumulation_steps, 2);
}

TEST(MemoryPlan, ImpossibleBudgetSaysWhatEvenTheSmallestSettingNeeds) {
  const TrainConfig c = gpt2_124m();
  try {
    plan_memory(c, 50304, MemoryDevice::cuda, int64_t(1) << 30);
    FAIL() << "1 GiB cannot hold GPT-2 124M training";
  } catch (const MemoryPlanError& e) {
    const std::string message = e.what();
    EXPECT_TRUE(message.rfind("even micro-batch 1 with activation checkpointing and chunked loss needs ", 0) == 0) << message;
    EXPECT_NE(message.find(" GiB, more than the budget 1.00 GiB"), std::string::npos) << message;
  }
}

TEST(MemoryPlan, EstimateWithin15PercentOfAMeasuredStep) {
  struct Case {
    TrainConfig config;
    int64_t vocab;
  };
  std::vector<Case> cases;
  cases.push_back({shape(2, 4, 128, 128, 4), 2048});                       // fp32, as is
  TrainConfig saving = shape(3, 4, 128, 128, 4);
  saving.activation_checkpointing = "blocks";
  saving.loss_chunk_size = 128;
  cases.push_back({saving, 2048});                                         // fp32, both savers
  TrainConfig half = shape(2, 2, 64, 64, 2);
  half.dtype = "bfloat16";
  cases.push_back({half, 512});                                            // bf16 autocast
  for (const auto& [config, vocab] : cases) {
    const int64_t estimated = estimate_memory(config, vocab, MemoryDevice::cpu).total_bytes;
    const MeasuredMemory measured = measure_training_step(config, vocab);
    ASSERT_GT(measured.peak_tensor_bytes, 0);
    const double error = std::abs(double(estimated - measured.peak_tensor_bytes)) / double(measured.peak_tensor_bytes);
    EXPECT_LE(error, 0.15) << "n_layer " << config.n_layer << " n_embd " << config.n_embd << " dtype " << config.dtype
                           << ": estimated " << estimated << ", measured " << measured.peak_tensor_bytes;
  }
}
