#pragma once
// FusedAdamW against LibTorch's own AdamW on one device: the same parameters (shaped like a
// small GPT's, in configure_optimizers' two groups), the same seeded gradients and changing
// learning rate, a few steps. On the CPU the two agree to the bit; on a GPU, LibTorch's fused
// kernel rounds in another order, so the check bounds the difference instead.
#include <ATen/ATen.h>

#include <string>

namespace nanogpt {

struct AdamwCheckResult {
  std::string device;  // "cuda:0"
  std::string path;    // adamw_path_name of the update FusedAdamW took
  int steps = 0;
  int64_t elements = 0;           // parameter elements updated per step
  double update_error = 0;        // max |fused - reference| of the weights / max |reference's change|
  double moment_error = 0;        // max |fused - reference| / max |reference| over exp_avg, exp_avg_sq
  bool same_step_counts = false;  // every parameter's state.step() equal
  double tolerance = 0;
  bool passed = false;
};

// 1e-5 on both errors (an exact CPU kernel has 0): a wrong bias correction or weight decay
// moves the update by 1e-2 or more.
AdamwCheckResult check_adamw(const at::Device& device, int steps);

}  // namespace nanogpt
