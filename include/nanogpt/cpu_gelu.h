#pragma once
// nanoGPT's GELU (the exact, erf form) for float32 and bfloat16 (bf16 autocast's, computed in
// float32 and rounded) tensors on the CPU in one pass that also
// writes its slope where autograd will need it: backward is then one multiplication, where
// ATen's gelu_backward computes erf and exp again. The slope takes the place of the input
// that ATen's GELU keeps for backward, so a step holds as many bytes as with at::gelu.
#include <ATen/ATen.h>

namespace nanogpt {

class ProductThreads;

// Whether fused_cpu_gelu computes gelu(x): a float32 or bfloat16 CPU tensor.
bool fused_cpu_gelu_applies(const at::Tensor& x);

// 0.5 x (1 + erf(x / sqrt 2)), differentiable; the normal cdf within about 1e-7 of the exact
// value (erf by the approximation oneDNN's GELU uses, without its cancellation for negative x).
// Its chunks run on `threads` when given (product_threads.h), else on LibTorch's threads.
at::Tensor fused_cpu_gelu(const at::Tensor& x, ProductThreads* threads = nullptr);

// The MLP's GELU: fused_cpu_gelu where it applies and at::gelu elsewhere (CUDA, float16).
at::Tensor mlp_gelu(const at::Tensor& x, ProductThreads* threads = nullptr);

}  // namespace nanogpt
