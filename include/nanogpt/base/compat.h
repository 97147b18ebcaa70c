#pragma once
// LibTorch calls whose form changed between versions (2.6 to 2.15) or differs between CPU and
// CUDA builds, behind small functions: autocast, the default random generators, set-to-none
// gradients.
#include <ATen/ATen.h>

namespace nanogpt {

// The autocast state of one device type: enabled or not, and to which dtype.
struct AutocastState {
  bool enabled = false;
  at::ScalarType dtype = at::kBFloat16;
};
AutocastState autocast_state(at::DeviceType device_type);

// RAII: sets the autocast state of `device_type` for its lifetime (torch.autocast in
// Python) and restores the previous state, clearing the cast cache when the outermost
// guard ends.
class AutocastGuard {
 public:
  AutocastGuard(at::DeviceType device_type, AutocastState state);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  at::DeviceType device_type_;
  AutocastState previous_;
};

// The state of the default random generator of `device` (CPU or one CUDA device).
at::Tensor rng_state(const at::Device& device);
void set_rng_state(const at::Device& device, const at::Tensor& state);

// Set every parameter's gradient to undefined (PyTorch's zero_grad(set_to_none=True)).
void zero_grad_set_to_none(const std::vector<at::Tensor>& parameters);

}  // namespace nanogpt
