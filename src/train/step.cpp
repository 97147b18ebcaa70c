#include "nanogpt/train/step.h"
#include "nanogpt/base/compat.h"

#include <torch/torch.h>

namespace nanogpt {

at::Tensor optimizer_step(GPT& model, torch::optim::AdamW& optimizer, Batch& batch,
                          const std::function<Batch()>& next_batch, const StepSettings& settings) {
  at::Tensor loss;
  for (int64_t micro_step = 0; micro_step < settings.micro_steps; ++micro_step) {
    {
      std::optional<AutocastGuard> guard;
      if (settings.autocast) guard.emplace(settings.device_type, *settings.autocast);
      loss = std::get<1>(model->forward(batch.first, batch.second)) / static_cast<double>(settings.micro_steps);
    }
    batch = next_batch();  // fetched while the device would still be busy, as train.py does
    loss.backward();
  }
  if (settings.grad_clip != 0.0) clip_grad_norm(model->parameters(), settings.grad_clip);
  optimizer.step();
  zero_grad_set_to_none(model->parameters());
  return loss;
}

at::Tensor clip_grad_norm(const std::vector<at::Tensor>& parameters, double max_norm) {
  std::vector<at::Tensor> norms;
  for (const auto& p : parameters) {
    if (p.grad().defined()) norms.push_back(p.grad().detach().norm(2));
  }
  if (norms.empty()) return at::zeros({});
  const at::Tensor total_norm = norms.size() == 1 ? norms[0] : at::stack(norms).norm(2);
  const at::Tensor clip_coef_clamped = (max_norm / (total_norm + 1e-6)).clamp_max(1.0);
  for (const auto& p : parameters) {
    if (p.grad().defined()) p.grad().detach().mul_(clip_coef_clamped);
  }
  return total_norm;
}
}  // namespace nanogpt
