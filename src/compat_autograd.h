#pragma once
// Making an autograd node by hand (a backward that is not a torch::autograd::Function), beside
// compat.h but kept out of it so that only the sources that build nodes include these headers:
// LibTorch 2.13 and later hold nodes in c10::intrusive_ptr, earlier versions in std::shared_ptr with
// torch::autograd::deleteNode as the deleter.
#include <torch/csrc/autograd/function.h>
#include <torch/version.h>

#include <memory>

namespace nanogpt::autograd_compat {

template <typename NodeType>
auto make_node() {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 13)
  return c10::make_intrusive<NodeType>();
#else
  return std::shared_ptr<NodeType>(new NodeType(), torch::autograd::deleteNode);
#endif
}

}  // namespace nanogpt::autograd_compat
