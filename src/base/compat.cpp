#include "nanogpt/base/compat.h"

#include <ATen/autocast_mode.h>

#include <ATen/CPUGeneratorImpl.h>

#ifdef NANOGPT_WITH_CUDA
#include <ATen/cuda/CUDAGeneratorImpl.h>
#endif

namespace nanogpt {

AutocastState autocast_state(at::DeviceType device_type) {
  return {at::autocast::is_autocast_enabled(device_type), at::autocast::get_autocast_dtype(device_type)};
}

static void set_autocast_state(at::DeviceType device_type, const AutocastState& state) {
  at::autocast::set_autocast_enabled(device_type, state.enabled);
  at::autocast::set_autocast_dtype(device_type, state.dtype);
}

AutocastGuard::AutocastGuard(at::DeviceType device_type, AutocastState state)
    : device_type_(device_type), previous_(autocast_state(device_type)) {
  set_autocast_state(device_type_, state);
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_autocast_state(device_type_, previous_);
}

static at::Generator default_generator(const at::Device& device) {
#ifdef NANOGPT_WITH_CUDA
  if (device.is_cuda()) return at::cuda::detail::getDefaultCUDAGenerator(device.has_index() ? device.index() : -1);
#endif
  (void)device;
  return at::detail::getDefaultCPUGenerator();
}

at::Tensor rng_state(const at::Device& device) { return default_generator(device).get_state(); }

void set_rng_state(const at::Device& device, const at::Tensor& state) {
  at::Generator generator = default_generator(device);
  generator.set_state(state);
}

void zero_grad_set_to_none(const std::vector<at::Tensor>& parameters) {
  for (const auto& p : parameters) {
    if (p.grad().defined()) const_cast<at::Tensor&>(p).mutable_grad().reset();
  }
}

}  // namespace nanogpt
