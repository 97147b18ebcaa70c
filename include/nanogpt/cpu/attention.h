#pragma once
// Causal self-attention for float32 (and bfloat16) tensors on the CPU in one pass per head:
// the scores of a query row live only in a row-sized buffer, keys past the query are never touched,
// and backward recomputes the scores from the saved log-normalisers. LibTorch's CPU flash
// attention has no dropout: with dropout it takes the math path, which keeps the full (T, T)
// probabilities and dropout noise.
#include <ATen/ATen.h>


namespace nanogpt {


// Up to this many keys the fused kernel is faster than LibTorch's matrix products over the
// full (T, T) scores (fwd+bwd time, fused / LibTorch, on this machine's EPYC: 0.42-0.57 up to
// 1024 keys, 0.63 at 2048; `nanogpt_kernel_bench`, docs/performance.md)
// and keeps O(T) memory per query instead of O(T^2); its backward's scratch, three (T, T)
// float matrices per thread (48 MiB at 2048 keys), is what bounds it. Past it attention takes
// LibTorch's path.
constexpr int64_t kFusedAttentionMaxKeys = 2048;

// The choice for CPU attention: the fused kernel up to kFusedAttentionMaxKeys keys,
// with or without attention dropout. The memory planner asks it of a config.
bool fused_cpu_attention_chosen(int64_t keys);

// Whether fused_cpu_causal_attention computes this attention: float32 or bfloat16 (B, nh, T, hs)
// q, k, v of one dtype on the CPU, and fused_cpu_attention_chosen.
bool fused_cpu_attention_applies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// dropout(softmax(q k^T / sqrt(hs), causal)) v over (B, nh, T, hs) tensors, differentiable.
// bfloat16 inputs (bf16 autocast's) are widened to float32 head by head, and the result and
// gradients rounded back to bfloat16: the float kernel's speed whatever the CPU's bf16 support.
// Query row i sits at position past_length + i of the keys. Dropout (p in [0, 1)) draws its
// keep mask from the default CPU generator exactly as ATen's dropout draws its noise, so
// training consumes the random stream as LibTorch's attention (and nanoGPT) does; the mask
// is kept for backward as one byte per (query, key). The result is a (B, nh, Tq, hs) view
// of a (B, Tq, nh, hs) tensor, so that re-assembling the heads side by side copies nothing.
// Correct for any number of keys; causal_attention (compat.h) calls it where
// fused_cpu_attention_applies. The heads are spread over LibTorch's threads (forward and
// backward).
at::Tensor fused_cpu_causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                      int64_t past_length, double dropout_p = 0.0);

}  // namespace nanogpt
