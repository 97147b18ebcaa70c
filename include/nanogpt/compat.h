#pragma once
// The few places where LibTorch 1.13 and 2.x (CPU or CUDA) differ, behind small functions.
#include <ATen/ATen.h>

namespace nanogpt {

// Causal scaled dot-product attention over (B, nh, T, hs) tensors. `past_length`
// is the number of cached key/value positions that precede the queries.
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            double dropout_p, int64_t past_length);

// Set every parameter's gradient to undefined (PyTorch's zero_grad(set_to_none=True)).
void zero_grad_set_to_none(const std::vector<at::Tensor>& parameters);

// True when this binary was built against a LibTorch with CUDA and a GPU is present.
bool cuda_available();

// A device string of the config ("cpu", "cuda", "cuda:1") as a device; throws a
// std::invalid_argument that names the value when it is not usable in this build.
at::Device parse_device(const std::string& name);

// Number of hardware threads of this machine.
int hardware_threads();

// "LibTorch 1.13.1 (CPU)" and the like, for logs.
std::string torch_build_summary();

}  // namespace nanogpt
