#pragma once
// torch::optim::AdamW whose step updates each float32 CPU parameter in one pass over its
// weights, gradient and moments, instead of LibTorch's eight kernels and two temporaries
// per parameter: the same results to the bit. CUDA parameters go through LibTorch's fused
// multi-tensor kernel (torch.optim.AdamW(fused=True), as nanoGPT runs on CUDA). Same state
// either way (checkpoints and load_state are unchanged); other parameters (CPU half or
// double, amsgrad) take AdamW's own step.
#include <torch/optim/adamw.h>

#include <string>

namespace nanogpt {

// The key under which LibTorch's optimizers keep a parameter's state.
inline void* optimizer_state_key(const at::Tensor& p) { return p.unsafeGetTensorImpl(); }

enum class AdamwPath { cpu_kernel, device_kernel, libtorch };
// "the port's CPU kernel (FusedAdamW)", "LibTorch's fused GPU kernel (at::_fused_adamw_)", ...
std::string adamw_path_name(AdamwPath path);

class FusedAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  torch::Tensor step(LossClosure closure = nullptr) override;
  // The update the next step takes, from the parameters and options.
  AdamwPath path() const;

 private:
  torch::optim::AdamWParamState& state_of(const torch::Tensor& p);
  void cpu_kernel_step();
  void device_kernel_step();
};

}  // namespace nanogpt
