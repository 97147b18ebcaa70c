#pragma once
// torch::optim::AdamW whose step runs LibTorch's fused multi-tensor kernel (`at::_fused_adamw_`,
// what torch.optim.AdamW(fused=True) runs; nanoGPT asks for it on CUDA) on the CPU and on a GPU
// alike: one pass over each parameter's weights, gradient and moments instead of AdamW's eight
// kernels and two temporaries per parameter. Same state as AdamW (checkpoints and load_state
// are unchanged); parameters the kernel does not take (sparse, non-contiguous, on several
// devices, amsgrad) go through AdamW's own step.
#include <torch/optim/adamw.h>

#include <string>

namespace nanogpt {

// The key under which LibTorch's optimizers keep a parameter's state.
inline void* optimizer_state_key(const at::Tensor& p) { return p.unsafeGetTensorImpl(); }

enum class AdamwPath { fused_kernel, libtorch };
// "LibTorch's fused kernel (at::_fused_adamw_)" or "LibTorch's AdamW step"
std::string adamw_path_name(AdamwPath path);

class FusedAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  torch::Tensor step(LossClosure closure = nullptr) override;
  // The update the next step takes, from the parameters and options.
  AdamwPath path() const;

 private:
  torch::optim::AdamWParamState& state_of(const torch::Tensor& p);
  void fused_kernel_step();
};

}  // namespace nanogpt
