#pragma once
// torch::optim::AdamW whose step updates each float32 CPU parameter in one pass over its
// weights, gradient and moments, instead of LibTorch's eight kernels and two temporaries
// per parameter. Same state (checkpoints and load_state are unchanged) and the same
// results to the bit; other parameters (CUDA, half, amsgrad) take AdamW's own step.
#include <torch/optim/adamw.h>

#include <sstream>
#include <string>
#include <type_traits>

namespace nanogpt {

// The key under which LibTorch's optimizers keep a parameter's state: a string of the
// TensorImpl address in 1.13, the address itself in later versions.
template <typename StateMap>
typename StateMap::key_type optimizer_state_key(const StateMap&, const at::Tensor& p) {
  using Key = typename StateMap::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream address;
    address << static_cast<const void*>(p.unsafeGetTensorImpl());
    return address.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}

class FusedAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

}  // namespace nanogpt
