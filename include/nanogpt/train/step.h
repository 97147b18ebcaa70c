#pragma once
// One optimizer step the way train.py takes it, for the tools that time or measure one
// (bench, memory --measure): micro-steps of forward under autocast and backward of
// loss / micro_steps with the next batch fetched in between, clipping, AdamW, zero_grad.
#include <functional>
#include <optional>
#include <utility>
#include <vector>

#include "nanogpt/base/compat.h"
#include "nanogpt/model/model.h"

namespace nanogpt {

using Batch = std::pair<at::Tensor, at::Tensor>;

struct StepSettings {
  int64_t micro_steps = 1;
  double grad_clip = 1.0;  // 0: no clipping
  std::optional<AutocastState> autocast;
  at::DeviceType device_type = at::kCPU;
};

// `batch` holds the current batch on entry and the prefetched next one on return. Returns
// the last micro-step's loss (already divided by micro_steps, as train.py's is).
at::Tensor optimizer_step(GPT& model, torch::optim::AdamW& optimizer, Batch& batch,
                          const std::function<Batch()>& next_batch, const StepSettings& settings);

// torch.nn.utils.clip_grad_norm_ with the same arithmetic (2-norm of the per-gradient 2-norms,
// coefficient max_norm / (norm + 1e-6) clamped at 1), but it returns the total norm as a
// tensor on the gradients' device instead of syncing the host for it, as LibTorch's does.
at::Tensor clip_grad_norm(const std::vector<at::Tensor>& parameters, double max_norm);


}  // namespace nanogpt
