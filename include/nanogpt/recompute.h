#pragma once
// Memory saved by recomputation: activation checkpointing of a Block, and the LM head plus
// cross-entropy computed over a few positions at a time.
#include <ATen/ATen.h>

namespace nanogpt {

struct BlockImpl;

// `block(x)` without keeping the block's intermediate tensors: backward runs the block
// again under the forward's autocast state and random-generator state (so dropout masks
// match) and back-propagates through that copy.
at::Tensor checkpointed_block(BlockImpl& block, const at::Tensor& x);

// Mean cross-entropy of `hidden @ weight.T` (B, T, C) x (V, C) against `targets` (B, T),
// skipping targets == -1, computed `chunk_positions` rows at a time; backward recomputes
// each chunk's logits, so only one chunk of (positions x vocab) logits exists at a time.
at::Tensor chunked_lm_loss(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                           int64_t chunk_positions);

}  // namespace nanogpt
