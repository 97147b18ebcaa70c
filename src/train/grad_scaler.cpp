#include "nanogpt/train/grad_scaler.h"

#include <torch/torch.h>

namespace nanogpt {

GradScaler::GradScaler(bool enabled, double init_scale, double growth_factor, double backoff_factor,
                       int64_t growth_interval)
    : enabled_(enabled), scale_(init_scale), growth_factor_(growth_factor), backoff_factor_(backoff_factor),
      growth_interval_(growth_interval) {}

at::Tensor GradScaler::scale(const at::Tensor& loss) const { return enabled_ ? loss * scale_ : loss; }

void GradScaler::unscale(const std::vector<at::Tensor>& parameters) {
  if (!enabled_ || unscaled_) return;
  std::vector<at::Tensor> finite_flags;
  for (const auto& p : parameters) {
    if (!p.grad().defined()) continue;
    p.grad().mul_(1.0 / scale_);
    finite_flags.push_back(torch::isfinite(p.grad()).all());
  }
  // one host sync per step, as PyTorch's scaler has
  found_inf_ = !finite_flags.empty() && !torch::stack(finite_flags).all().item<bool>();
  unscaled_ = true;
}

bool GradScaler::step(torch::optim::Optimizer& optimizer, const std::vector<at::Tensor>& parameters) {
  if (!enabled_) {
    optimizer.step();
    return true;
  }
  unscale(parameters);
  if (found_inf_) return false;
  optimizer.step();
  return true;
}

void GradScaler::update() {
  if (!enabled_) return;
  if (found_inf_) {
    scale_ *= backoff_factor_;
    good_steps_ = 0;
  } else if (++good_steps_ == growth_interval_) {
    scale_ *= growth_factor_;
    good_steps_ = 0;
  }
  unscaled_ = false;
  found_inf_ = false;
}

}  // namespace nanogpt
