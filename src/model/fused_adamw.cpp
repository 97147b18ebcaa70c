#include "nanogpt/model/fused_adamw.h"

#include <torch/csrc/autograd/variable.h>

#include <optional>
#include <vector>

namespace nanogpt {

namespace {

using torch::optim::AdamWOptions;
using torch::optim::AdamWParamState;

// at::_fused_adamw_ walks each tensor's storage as one flat array, all on one device.
bool fused_kernel_takes(const torch::Tensor& p, const at::Device& device) {
  auto dense = [&](const torch::Tensor& t) {
    return t.device() == device && at::isFloatingType(t.scalar_type()) && t.layout() == at::kStrided &&
           t.is_contiguous();
  };
  const auto& g = p.grad();
  return dense(p) && (!g.defined() || (dense(g) && g.scalar_type() == p.scalar_type()));
}

}  // namespace

std::string adamw_path_name(AdamwPath path) {
  return path == AdamwPath::fused_kernel ? "LibTorch's fused kernel (at::_fused_adamw_)" : "LibTorch's AdamW step";
}

AdamwPath FusedAdamW::path() const {
  std::optional<at::Device> first_device;
  for (const auto& group : param_groups_) {
    if (static_cast<const AdamWOptions&>(group.options()).amsgrad()) return AdamwPath::libtorch;
    for (const auto& p : group.params()) {
      if (!first_device) first_device = p.device();
      if (!fused_kernel_takes(p, *first_device)) return AdamwPath::libtorch;
    }
  }
  return AdamwPath::fused_kernel;
}

torch::Tensor FusedAdamW::step(LossClosure closure) {
  if (path() == AdamwPath::libtorch) return AdamW::step(closure);
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  fused_kernel_step();
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

void FusedAdamW::fused_kernel_step() {
  for (auto& group : param_groups_) {
    const auto& options = static_cast<const AdamWOptions&>(group.options());
    std::vector<at::Tensor> params, grads, exp_avgs, exp_avg_sqs;
    std::vector<float> steps;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto& state = state_of(p);
      state.step(state.step() + 1);
      params.push_back(p);
      grads.push_back(p.grad());
      exp_avgs.push_back(state.exp_avg());
      exp_avg_sqs.push_back(state.exp_avg_sq());
      steps.push_back(static_cast<float>(state.step()));
    }
    if (params.empty()) continue;
    // The counts stay on the host (AdamWParamState, checkpoints); the kernel reads each as a
    // 0-dim float tensor on the parameters' device: one copy per group, without waiting for it.
    const std::vector<at::Tensor> step_tensors =
        at::tensor(steps).to(params.front().device(), at::kFloat, /*non_blocking=*/true).unbind(0);
    const auto [beta1, beta2] = options.betas();
    at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, /*max_exp_avg_sqs=*/{}, step_tensors, options.lr(), beta1,
                      beta2, options.weight_decay(), options.eps(), /*amsgrad=*/false, /*maximize=*/false);
    // the kernel's list arguments leave the version counters as they were; autograd must see
    // the in-place updates, as it would after p.addcdiv_
    for (const auto* list : {&params, &exp_avgs, &exp_avg_sqs}) {
      for (const auto& t : *list) torch::autograd::impl::bump_version(t);
    }
  }
}

}  // namespace nanogpt
