#pragma once
// The LM head and cross-entropy over a few positions at a time (config key loss_chunk_size),
// and the tied embedding that completes the shared weight's gradient in place.
#include <ATen/ATen.h>
#include <ATen/core/ivalue.h>

namespace nanogpt {

// The token embedding and the LM head share one (V, C) weight. Its two gradients would meet
// in the autograd engine, two (V, C) tensors at once, the last peak of the backward. A
// TiedGradient, made per forward, lets the chunked loss leave its part in `sum`, and the
// embedding add its own into it in place and return the whole as the weight's gradient:
// one (V, C) tensor.
struct TiedGradient : torch::CustomClassHolder {
  at::Tensor sum;
};

// Mean cross-entropy of `hidden @ weight.T` (B, T, C) x (V, C) against `targets` (B, T),
// skipping targets == -1, computed `chunk_positions` rows at a time; backward recomputes
// each chunk's logits and turns them in place into their gradient, so only one chunk of
// (positions x vocab) logits exists at a time (one fp32 tensor, plus its half copy under
// autocast). With `tied`, the weight's gradient is not returned but left in `tied->sum`
// for tied_embedding's backward to complete.
at::Tensor chunked_lm_loss(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                           int64_t chunk_positions, const c10::intrusive_ptr<TiedGradient>& tied = {});

// Under autocast the half weight gradient of a chunk is added to the fp32 accumulator this
// many vocabulary rows at a time, so its temporaries stay small (the planner counts them).
constexpr int64_t kHalfWeightGradRows = 4096;

// `weight[idx]` (as torch::nn::Embedding) whose backward adds its gradient into `tied->sum`
// (zeros if the loss left none) and returns that.
at::Tensor tied_embedding(const at::Tensor& weight, const at::Tensor& idx, const c10::intrusive_ptr<TiedGradient>& tied);

}  // namespace nanogpt
