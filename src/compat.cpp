#include "nanogpt/compat.h"

#include <torch/version.h>

#include <stdexcept>
#include <thread>

#ifdef NANOGPT_WITH_CUDA
#include <torch/cuda.h>
#endif

namespace nanogpt {

namespace {

// One lower-triangular mask per (device, size): building it on every call costs more
// than the attention itself at small sizes.
at::Tensor causal_mask(int64_t rows, int64_t cols, int64_t row_offset, const at::Device& device) {
  thread_local at::Tensor cached;
  const int64_t needed = std::max(rows + row_offset, cols);
  if (!cached.defined() || cached.size(0) < needed || cached.device() != device) {
    cached = at::ones({needed, needed}, at::TensorOptions().dtype(at::kBool).device(device)).tril();
  }
  return cached.slice(0, row_offset, row_offset + rows).slice(1, 0, cols);
}

}  // namespace

at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            double dropout_p, int64_t past_length) {
  const int64_t tq = q.size(-2);
  const int64_t tk = k.size(-2);
#if TORCH_VERSION_MAJOR >= 2
  if (past_length == 0 && tq == tk) {
    return at::scaled_dot_product_attention(q, k, v, {}, dropout_p, /*is_causal=*/true);
  }
  if (tq == 1) return at::scaled_dot_product_attention(q, k, v, {}, dropout_p, false);
  return at::scaled_dot_product_attention(q, k, v, causal_mask(tq, tk, past_length, q.device()),
                                          dropout_p, false);
#else
  if (tq == 1) return std::get<0>(at::_scaled_dot_product_attention(q, k, v, {}, dropout_p));
  return std::get<0>(at::_scaled_dot_product_attention(
      q, k, v, causal_mask(tq, tk, past_length, q.device()), dropout_p));
#endif
}

void zero_grad_set_to_none(const std::vector<at::Tensor>& parameters) {
  for (const auto& p : parameters) {
    if (p.grad().defined()) const_cast<at::Tensor&>(p).mutable_grad().reset();
  }
}

bool cuda_available() {
#ifdef NANOGPT_WITH_CUDA
  return torch::cuda::is_available();
#else
  return false;
#endif
}

at::Device parse_device(const std::string& name) {
  if (name == "cpu") return at::Device(at::kCPU);
  if (name.rfind("cuda", 0) == 0) {
    if (!cuda_available()) {
      throw std::invalid_argument("device '" + name +
                                  "' requested, but this build has no CUDA or no GPU is visible; "
                                  "use device: cpu");
    }
    try {
      return at::Device(name);
    } catch (const std::exception&) {
      throw std::invalid_argument("device '" + name + "' is not a valid CUDA device name (cuda, cuda:N)");
    }
  }
  throw std::invalid_argument("device '" + name + "' is not supported; expected cpu, cuda or cuda:N");
}

int hardware_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

std::string torch_build_summary() {
  std::string s = "LibTorch " TORCH_VERSION;
  s += cuda_available() ? " (CUDA)" : " (CPU)";
  return s;
}

}  // namespace nanogpt
