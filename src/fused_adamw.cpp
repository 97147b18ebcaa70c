#include "nanogpt/fused_adamw.h"

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/variable.h>

#include <cmath>

#include "adamw_kernel.h"

namespace nanogpt {

namespace {

using torch::optim::AdamWOptions;
using torch::optim::AdamWParamState;

bool fusable(const torch::Tensor& p, const AdamWOptions& options) {
  auto cpu_float = [](const torch::Tensor& t) {
    return t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous() && !t.is_sparse();
  };
  return !options.amsgrad() && cpu_float(p) && (!p.grad().defined() || cpu_float(p.grad()));
}

adamw_kernel::StepScalars step_scalars(const AdamWOptions& options, int64_t step) {
  const auto [beta1, beta2] = options.betas();
  const double bias_correction1 = 1 - std::pow(beta1, step);
  const double bias_correction2 = 1 - std::pow(beta2, step);
  return {options.weight_decay() != 0,
          static_cast<float>(1 - options.lr() * options.weight_decay()),
          static_cast<float>(beta1),
          static_cast<float>(1 - beta1),
          static_cast<float>(beta2),
          static_cast<float>(1 - beta2),
          static_cast<float>(std::sqrt(bias_correction2)),
          static_cast<float>(options.eps()),
          static_cast<float>(-(options.lr() / bias_correction1))};
}

}  // namespace

torch::Tensor FusedAdamW::step(LossClosure closure) {
  for (auto& group : param_groups_) {
    for (const auto& p : group.params()) {
      if (!fusable(p, static_cast<const AdamWOptions&>(group.options()))) return AdamW::step(closure);
    }
  }
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (auto& group : param_groups_) {
    const auto& options = static_cast<const AdamWOptions&>(group.options());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto& slot = state_[optimizer_state_key(state_, p)];
      if (!slot) {  // AdamW's lazy initialisation
        auto fresh = std::make_unique<AdamWParamState>();
        fresh->step(0);
        fresh->exp_avg(torch::zeros_like(p, at::MemoryFormat::Preserve));
        fresh->exp_avg_sq(torch::zeros_like(p, at::MemoryFormat::Preserve));
        slot = std::move(fresh);
      }
      auto& state = static_cast<AdamWParamState&>(*slot);
      state.step(state.step() + 1);
      const adamw_kernel::StepScalars scalars = step_scalars(options, state.step());
      float* param = p.data_ptr<float>();
      const float* grad = p.grad().data_ptr<float>();
      float* exp_avg = state.exp_avg().data_ptr<float>();
      float* exp_avg_sq = state.exp_avg_sq().data_ptr<float>();
      at::parallel_for(0, p.numel(), at::internal::GRAIN_SIZE, [&](int64_t begin, int64_t end) {
        adamw_kernel::update(scalars, param, grad, exp_avg, exp_avg_sq, begin, end);
      });
      // in-place updates through data_ptr: tell autograd, as p.addcdiv_ would
      torch::autograd::impl::bump_version(p);
      torch::autograd::impl::bump_version(state.exp_avg());
      torch::autograd::impl::bump_version(state.exp_avg_sq());
    }
  }
  return loss;
}

}  // namespace nanogpt
