#pragma once
// torch.cuda.amp.GradScaler for float16 training: the loss is multiplied by a scale so that
// small gradients survive fp16; steps whose gradients hold inf or NaN are skipped and the
// scale backs off, and after `growth_interval` good steps it grows again.
#include <torch/optim/optimizer.h>

#include <vector>

namespace nanogpt {

class GradScaler {
 public:
  explicit GradScaler(bool enabled, double init_scale = 65536.0, double growth_factor = 2.0,
                      double backoff_factor = 0.5, int64_t growth_interval = 2000);

  bool enabled() const { return enabled_; }
  double scale() const { return scale_; }
  at::Tensor scale(const at::Tensor& loss) const;
  // Divides the gradients by the scale (once per step) and notes whether any is not finite.
  void unscale(const std::vector<at::Tensor>& parameters);
  // Steps the optimizer unless a gradient was inf/NaN; returns whether it stepped.
  bool step(torch::optim::Optimizer& optimizer, const std::vector<at::Tensor>& parameters);
  // Adjusts the scale after a step and starts the next one.
  void update();

 private:
  bool enabled_;
  double scale_;
  double growth_factor_, backoff_factor_;
  int64_t growth_interval_;
  int64_t good_steps_ = 0;
  bool unscaled_ = false;
  bool found_inf_ = false;
};

}  // namespace nanogpt
