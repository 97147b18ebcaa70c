#include "nanogpt/train/precision.h"

#include <stdexcept>

#include "nanogpt/cpu/features.h"

namespace nanogpt {

Precision::Precision(const std::string& dtype, at::DeviceType device_type) : name(dtype) {
  if (dtype == "float32") return;
  if (dtype == "bfloat16") {
    compute_type = at::kBFloat16;
  } else if (dtype == "float16") {
    compute_type = at::kHalf;
    scales_gradients = true;
  } else {
    throw std::invalid_argument("dtype '" + dtype + "': expected float32, bfloat16 or float16");
  }
  autocast = AutocastState{true, compute_type};
  bf16_products_in_float = compute_type == at::kBFloat16 && device_type == at::kCPU && !cpu_has_native_bf16();
}

std::string Precision::cpu_note() const {
  if (!bf16_products_in_float) return "";
  return "note: dtype bfloat16 on a CPU without avx512_bf16 or amx_bf16: matrix products are computed by float32 "
         "sgemm from the bf16 operands (LibTorch's own bf16 matmul is about 25x slower here); docs/performance.md";
}

}  // namespace nanogpt
