#pragma once
// The model's one door to the library's own kernels: the two operations of model.py that
// take another path here than LibTorch's default one. Each falls back to LibTorch's op
// wherever its own path does not apply (CUDA, autograd shapes it does not cover).
#include <ATen/ATen.h>

namespace nanogpt::ops {

// x @ weight.T + bias (F.linear). Under bf16 autocast on a CPU without bf16 instructions the
// product is computed in float32 from the bf16 operands (bf16_linear_in_float.h).
at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

// a (M, K) @ b (K, N) (at::mm); bf16 operands on such a CPU are multiplied in float32.
at::Tensor mm(const at::Tensor& a, const at::Tensor& b);

// The dtype a softmax over products of `matmul_dtype` runs in: float32 for half types (as
// autocast runs cross-entropy), the products' own otherwise.
at::ScalarType softmax_dtype(at::ScalarType matmul_dtype);

// rows (N, C) @ weight.T (V, C) in the float32 a softmax needs: for bf16 rows, the products
// rounded to bf16 as autocast's matmul rounds them; half rows likewise; float rows as they are.
at::Tensor logits_for_softmax(const at::Tensor& rows, const at::Tensor& weight);

// Causal scaled dot-product attention over (B, nh, T, hs) tensors; `past_length` cached
// key/value positions precede the queries. With dropout on the CPU the fused kernel
// (attention.h) draws LibTorch's dropout masks and keeps no (T, T) probabilities.
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            double dropout_p, int64_t past_length);

// LibTorch's own scaled dot-product attention over (B, nh, Tq, hs) queries and (B, nh, Tk, hs)
// keys and values, attending where the bool (Tq, Tk) `mask` is true.
at::Tensor masked_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask,
                            double dropout_p);

// LibTorch's reference (math) attention, the same arguments (a bool mask keeps the true
// positions, a float mask is added to the scores): softmax of the masked scores, at::dropout
// on those (B, nh, Tq, Tk) probabilities, then the product with v. The tests' reference.
at::Tensor math_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask,
                          double dropout_p);

}  // namespace nanogpt::ops
