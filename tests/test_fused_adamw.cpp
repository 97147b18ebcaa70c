#include <gtest/gtest.h>
#include <torch/torch.h>

#include "nanogpt/fused_adamw.h"

using namespace nanogpt;

namespace {

// Parameters shaped like a small GPT's, in two groups as configure_optimizers makes them:
// matrices with weight decay, vectors without. 7x3 and 5 have no whole vector register.
std::vector<torch::Tensor> make_parameters() {
  torch::manual_seed(11);
  std::vector<torch::Tensor> params;
  for (auto shape : std::vector<std::vector<int64_t>>{{65, 128}, {384, 128}, {7, 3}, {128}, {5}}) {
    params.push_back(torch::randn(shape).requires_grad_(true));
  }
  return params;
}

template <typename Optimizer>
std::unique_ptr<torch::optim::AdamW> make_optimizer(const std::vector<torch::Tensor>& params) {
  auto options = [](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(6e-4).betas({0.9, 0.95}).weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<torch::Tensor>(params.begin(), params.begin() + 3), options(0.1));
  groups.emplace_back(std::vector<torch::Tensor>(params.begin() + 3, params.end()), options(0.0));
  return std::make_unique<Optimizer>(std::move(groups), torch::optim::AdamWOptions(6e-4));
}

// Steps with fresh gradients (seed 12 + step) and a changing learning rate, as train.py's schedule does.
void run_steps(std::vector<torch::Tensor>& params, torch::optim::AdamW& optimizer, int steps) {
  for (int step = 0; step < steps; ++step) {
    torch::manual_seed(12 + step);
    for (auto& p : params) p.mutable_grad() = torch::randn(p.sizes()) * (step % 2 == 0 ? 1e-3 : 10.0);
    for (auto& group : optimizer.param_groups()) {
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(6e-4 * (step + 1) / steps);
    }
    optimizer.step();
  }
}

}  // namespace

TEST(FusedAdamW, EqualsLibTorchAdamWToTheBit) {
  auto reference_params = make_parameters();
  auto fused_params = make_parameters();
  auto reference = make_optimizer<torch::optim::AdamW>(reference_params);
  auto fused = make_optimizer<FusedAdamW>(fused_params);
  run_steps(reference_params, *reference, 6);
  run_steps(fused_params, *fused, 6);
  for (size_t i = 0; i < reference_params.size(); ++i) {
    EXPECT_TRUE(torch::equal(reference_params[i], fused_params[i]))
        << "parameter " << i << " differs by " << (reference_params[i] - fused_params[i]).abs().max().item<double>();
    const auto& expected = static_cast<torch::optim::AdamWParamState&>(
        *reference->state().at(optimizer_state_key(reference->state(), reference_params[i])));
    const auto& actual = static_cast<torch::optim::AdamWParamState&>(
        *fused->state().at(optimizer_state_key(fused->state(), fused_params[i])));
    EXPECT_EQ(actual.step(), 6);
    EXPECT_TRUE(torch::equal(expected.exp_avg(), actual.exp_avg())) << "exp_avg " << i;
    EXPECT_TRUE(torch::equal(expected.exp_avg_sq(), actual.exp_avg_sq())) << "exp_avg_sq " << i;
  }
}

TEST(FusedAdamW, SkipsParametersWithoutGradientAndBumpsVersions) {
  auto params = make_parameters();
  auto optimizer = make_optimizer<FusedAdamW>(params);
  const auto untouched = params[1].clone();
  const auto version = params[0]._version();
  params[0].mutable_grad() = torch::ones({65, 128});
  optimizer->step();
  EXPECT_TRUE(torch::equal(params[1], untouched));
  EXPECT_EQ(optimizer->state().count(optimizer_state_key(optimizer->state(), params[1])), 0u);
  EXPECT_GT(params[0]._version(), version);
}

TEST(FusedAdamW, DoubleParametersTakeAdamWsOwnStep) {
  auto make = [] {
    torch::manual_seed(13);
    return std::vector<torch::Tensor>{torch::randn({4, 4}, torch::kDouble).requires_grad_(true)};
  };
  auto fused_params = make(), reference_params = make();
  FusedAdamW fused(fused_params, torch::optim::AdamWOptions(1e-2));
  torch::optim::AdamW reference(reference_params, torch::optim::AdamWOptions(1e-2));
  fused_params[0].mutable_grad() = torch::ones({4, 4}, torch::kDouble);
  reference_params[0].mutable_grad() = torch::ones({4, 4}, torch::kDouble);
  fused.step();
  reference.step();
  EXPECT_TRUE(torch::equal(fused_params[0], reference_params[0]));
}
