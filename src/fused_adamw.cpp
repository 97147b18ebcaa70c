#include "nanogpt/fused_adamw.h"

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/variable.h>

#include <cmath>
#include <optional>

#include "adamw_kernel.h"
#include "nanogpt/compat.h"

namespace nanogpt {

namespace {

using torch::optim::AdamWOptions;
using torch::optim::AdamWParamState;

bool cpu_kernel_takes(const torch::Tensor& p) {
  auto cpu_float = [](const torch::Tensor& t) {
    return t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous() && !t.is_sparse();
  };
  return cpu_float(p) && (!p.grad().defined() || cpu_float(p.grad()));
}

bool device_kernel_takes(const torch::Tensor& p, const at::Device& device) {
  const auto& g = p.grad();
  return p.device() == device && device_fused_adamw_takes(p) &&
         (!g.defined() || (g.device() == device && g.scalar_type() == p.scalar_type() && !g.is_sparse() &&
                           g.is_contiguous()));
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

std::string adamw_path_name(AdamwPath path) {
  switch (path) {
    case AdamwPath::cpu_kernel: return "the port's CPU kernel (FusedAdamW)";
    case AdamwPath::device_kernel: return "LibTorch's fused GPU kernel (at::_fused_adamw_)";
    case AdamwPath::libtorch: return "LibTorch's AdamW step";
  }
  return "";
}

AdamwPath FusedAdamW::path() const {
  bool cpu = true, device = true;
  std::optional<at::Device> first_device;
  for (const auto& group : param_groups_) {
    if (static_cast<const AdamWOptions&>(group.options()).amsgrad()) return AdamwPath::libtorch;
    for (const auto& p : group.params()) {
      if (!first_device) first_device = p.device();
      cpu = cpu && cpu_kernel_takes(p);
      device = device && device_kernel_takes(p, *first_device);
    }
  }
  if (cpu) return AdamwPath::cpu_kernel;
  return device ? AdamwPath::device_kernel : AdamwPath::libtorch;
}

torch::Tensor FusedAdamW::step(LossClosure closure) {
  const AdamwPath update = path();
  if (update == AdamwPath::libtorch) return AdamW::step(closure);
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  if (update == AdamwPath::cpu_kernel) {
    cpu_kernel_step();
  } else {
    device_kernel_step();
  }
  return loss;
}

AdamWParamState& FusedAdamW::state_of(const torch::Tensor& p) {
  auto& slot = state_[optimizer_state_key(p)];
  if (!slot) {  // AdamW's lazy initialisation
    auto fresh = std::make_unique<AdamWParamState>();
    fresh->step(0);
    fresh->exp_avg(torch::zeros_like(p, at::MemoryFormat::Preserve));
    fresh->exp_avg_sq(torch::zeros_like(p, at::MemoryFormat::Preserve));
    slot = std::move(fresh);
  }
  return static_cast<AdamWParamState&>(*slot);
}

void FusedAdamW::cpu_kernel_step() {
  for (auto& group : param_groups_) {
    const auto& options = static_cast<const AdamWOptions&>(group.options());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto& state = state_of(p);
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
}

void FusedAdamW::device_kernel_step() {
  for (auto& group : param_groups_) {
    const auto& options = static_cast<const AdamWOptions&>(group.options());
    DeviceAdamwLists lists;
    std::vector<float> steps;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto& state = state_of(p);
      state.step(state.step() + 1);
      lists.params.push_back(p);
      lists.grads.push_back(p.grad());
      lists.exp_avgs.push_back(state.exp_avg());
      lists.exp_avg_sqs.push_back(state.exp_avg_sq());
      steps.push_back(static_cast<float>(state.step()));
    }
    if (lists.params.empty()) continue;
    // The counts stay on the host (AdamWParamState, checkpoints); the kernel reads them on the
    // device: one copy per group, without waiting for the device.
    lists.steps = at::tensor(steps).to(lists.params.front().device(), at::kFloat, /*non_blocking=*/true).unbind(0);
    const auto [beta1, beta2] = options.betas();
    device_fused_adamw_step(lists, options.lr(), beta1, beta2, options.weight_decay(), options.eps());
  }
}

}  // namespace nanogpt
