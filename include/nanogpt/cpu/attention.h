#pragma once
// Causal self-attention with dropout on the CPU, one pass per head: a query row's scores live
// in a row-sized buffer and backward recomputes them from the saved log-normalisers, so no
// (T, T) probabilities or noise are kept (LibTorch's CPU flash attention has no dropout and
// falls back to the math path, which keeps both). It exists for that memory; its timings
// against LibTorch's op are in docs/performance.md.
#include <ATen/ATen.h>

namespace nanogpt {

// Up to this many keys attention with dropout takes the fused kernel; its backward's scratch,
// three (T, T) float matrices per thread (48 MiB at 2048 keys), is what bounds it. Past it
// attention takes LibTorch's path.
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
// Correct for any number of keys; ops::causal_attention (ops.h) calls it where
// fused_cpu_attention_applies. The heads are spread over LibTorch's threads (forward and
// backward).
at::Tensor fused_cpu_causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                      int64_t past_length, double dropout_p = 0.0);

}  // namespace nanogpt
