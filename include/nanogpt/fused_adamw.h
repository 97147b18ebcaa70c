#pragma once
// torch::optim::AdamW whose step updates each float32 CPU parameter in one pass over its
// weights, gradient and moments, instead of LibTorch's eight kernels and two temporaries
// per parameter. Same state (checkpoints and load_state are unchanged) and the same
// results to the bit; other parameters (CUDA, half, amsgrad) take AdamW's own step.
#include <torch/optim/adamw.h>

namespace nanogpt {

class FusedAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

}  // namespace nanogpt
