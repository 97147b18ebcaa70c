#include "nanogpt/model/adamw_check.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/optim/adamw.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "nanogpt/model/fused_adamw.h"

namespace nanogpt {

namespace {

constexpr double kTolerance = 1e-5;

// 7x3 and 5 have no whole vector register; the first three are matrices and decay.
const std::vector<std::vector<int64_t>> kShapes = {{65, 128}, {384, 128}, {7, 3}, {128}, {5}};

std::vector<at::Tensor> make_parameters(const at::Device& device) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(11);
  std::vector<at::Tensor> params;
  for (const auto& shape : kShapes) {
    params.push_back(at::randn(shape, generator).to(device).requires_grad_(true));
  }
  return params;
}

template <typename Optimizer>
std::unique_ptr<torch::optim::AdamW> make_optimizer(const std::vector<at::Tensor>& params) {
  auto options = [](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(6e-4).betas({0.9, 0.95}).weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<at::Tensor>(params.begin(), params.begin() + 3), options(0.1));
  groups.emplace_back(std::vector<at::Tensor>(params.begin() + 3, params.end()), options(0.0));
  return std::make_unique<Optimizer>(std::move(groups), torch::optim::AdamWOptions(6e-4));
}

// Fresh gradients each step (seed 12 + step), small and large in turn, and a rising learning
// rate, as train.py's warmup sets it.
void run_steps(std::vector<at::Tensor>& params, torch::optim::AdamW& optimizer, int steps) {
  for (int step = 0; step < steps; ++step) {
    auto generator = at::make_generator<at::CPUGeneratorImpl>(12 + step);
    for (auto& p : params) {
      p.mutable_grad() = (at::randn(p.sizes(), generator) * (step % 2 == 0 ? 1e-3 : 10.0)).to(p.device());
    }
    for (auto& group : optimizer.param_groups()) {
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(6e-4 * (step + 1) / steps);
    }
    optimizer.step();
  }
}

const torch::optim::AdamWParamState& state_of(const torch::optim::AdamW& optimizer, const at::Tensor& p) {
  return static_cast<const torch::optim::AdamWParamState&>(
      *optimizer.state().at(optimizer_state_key(p)));
}

double max_abs(const at::Tensor& t) { return t.abs().max().item<double>(); }

}  // namespace

AdamwCheckResult check_adamw(const at::Device& device, int steps) {
  AdamwCheckResult r;
  r.device = device.str();
  r.steps = steps;
  r.tolerance = kTolerance;
  auto initial = make_parameters(device);
  auto reference_params = make_parameters(device);
  auto fused_params = make_parameters(device);
  auto reference = make_optimizer<torch::optim::AdamW>(reference_params);
  auto fused = make_optimizer<FusedAdamW>(fused_params);
  r.path = adamw_path_name(static_cast<FusedAdamW&>(*fused).path());
  run_steps(reference_params, *reference, steps);
  run_steps(fused_params, *fused, steps);

  at::NoGradGuard no_grad;
  double update_difference = 0, update = 0, weight = 0, moment_difference = 0, moment = 0;
  r.same_step_counts = true;
  for (size_t i = 0; i < fused_params.size(); ++i) {
    r.elements += fused_params[i].numel();
    update_difference = std::max(update_difference, max_abs(fused_params[i] - reference_params[i]));
    weight = std::max(weight, max_abs(reference_params[i]));
    update = std::max(update, max_abs(reference_params[i] - initial[i]));
    const auto& expected = state_of(*reference, reference_params[i]);
    const auto& actual = state_of(*fused, fused_params[i]);
    r.same_step_counts = r.same_step_counts && expected.step() == actual.step();
    for (const auto& [e, a] : {std::pair{expected.exp_avg(), actual.exp_avg()},
                               std::pair{expected.exp_avg_sq(), actual.exp_avg_sq()}}) {
      moment_difference = std::max(moment_difference, max_abs(a - e));
      moment = std::max(moment, max_abs(e));
    }
  }
  r.update_error = update > 0 ? update_difference / update : update_difference;
  r.moment_error = moment > 0 ? moment_difference / moment : moment_difference;
  r.weight_error = weight > 0 ? update_difference / weight : update_difference;
  r.passed = r.same_step_counts && r.weight_error <= kTolerance && r.moment_error <= kTolerance;
  return r;
}

}  // namespace nanogpt
