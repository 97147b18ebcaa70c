#pragma once
// Activation checkpointing of a Block (config keys activation_checkpointing, checkpoint_every).
#include <ATen/ATen.h>

namespace nanogpt {

struct BlockImpl;

// `block(x)` without keeping the block's intermediate tensors: backward runs the block
// again under the forward's autocast state and random-generator state (so dropout masks
// match) and back-propagates through that copy.
at::Tensor checkpointed_block(BlockImpl& block, const at::Tensor& x);

}  // namespace nanogpt
