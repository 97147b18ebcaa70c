#pragma once
// FusedAdamW (LibTorch's fused kernel) against LibTorch's own AdamW step on one device: the
// same parameters (shaped like a small GPT's, in configure_optimizers' two groups), the same
// seeded gradients and changing learning rate, a few steps. They agree to rounding: the fused
// kernel orders its arithmetic differently.
#include <ATen/ATen.h>

#include <string>

namespace nanogpt {

struct AdamwCheckResult {
  std::string device;  // "cuda:0"
  std::string path;    // adamw_path_name of the update FusedAdamW took
  int steps = 0;
  int64_t elements = 0;           // parameter elements updated per step
  double update_error = 0;        // max |fused - reference| of the weights / max |reference's change|
  double weight_error = 0;        // max |fused - reference| of the weights / max |reference|
  double moment_error = 0;        // max |fused - reference| / max |reference| over exp_avg, exp_avg_sq
  bool same_step_counts = false;  // every parameter's state.step() equal
  double tolerance = 0;           // of weight_error and moment_error
  bool passed = false;
};

// Passes with equal step counts and weights and moments within 1e-5 of the largest: rounding
// leaves them within a few 1e-7, while a wrong bias correction or a missing weight decay moves
// the weights by 6e-5 of the largest or more.
AdamwCheckResult check_adamw(const at::Device& device, int steps);

}  // namespace nanogpt
