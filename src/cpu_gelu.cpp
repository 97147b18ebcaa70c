#include "nanogpt/cpu_gelu.h"

#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>

#include "bf16_convert.h"
#include "gelu_kernel.h"
#include "parallel_ranges.h"

namespace nanogpt {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// gelu_kernel::forward over bf16 values: widened to float a block at a time, the results
// (and slopes) rounded back to bf16.
void forward_bf16(const c10::BFloat16* x, c10::BFloat16* y, c10::BFloat16* slope, int64_t n) {
  constexpr int64_t kBlock = 1024;
  float in[kBlock], out[kBlock], slopes[kBlock];
  for (int64_t start = 0; start < n; start += kBlock) {
    const int64_t len = std::min(kBlock, n - start);
    bf16_convert::widen(x + start, in, len);
    gelu_kernel::forward(in, out, slope != nullptr ? slopes : nullptr, len);
    bf16_convert::narrow(out, y + start, len);
    if (slope != nullptr) bf16_convert::narrow(slopes, slope + start, len);
  }
}

constexpr int64_t kGrain = 16384;

// gelu(x) of a contiguous float32 or bfloat16 tensor and, given `slope`, gelu'(x) into it.
at::Tensor gelu_of(const at::Tensor& x, at::Tensor* slope, ProductThreads* threads) {
  at::Tensor y = at::empty_like(x);
  if (x.scalar_type() == at::kBFloat16) {
    const c10::BFloat16* in = x.data_ptr<c10::BFloat16>();
    c10::BFloat16* out = y.data_ptr<c10::BFloat16>();
    c10::BFloat16* slopes = slope != nullptr ? slope->data_ptr<c10::BFloat16>() : nullptr;
    parallel_ranges(threads, x.numel(), kGrain, [&](int64_t begin, int64_t end) {
      forward_bf16(in + begin, out + begin, slopes != nullptr ? slopes + begin : nullptr, end - begin);
    });
    return y;
  }
  const float* in = x.data_ptr<float>();
  float* out = y.data_ptr<float>();
  float* slopes = slope != nullptr ? slope->data_ptr<float>() : nullptr;
  parallel_ranges(threads, x.numel(), kGrain, [&](int64_t begin, int64_t end) {
    gelu_kernel::forward(in + begin, out + begin, slopes != nullptr ? slopes + begin : nullptr, end - begin);
  });
  return y;
}

// Keeps the slope for backward instead of the input: as many bytes as ATen's GeluBackward
// keeps, and backward is one multiplication.
struct FusedGelu : torch::autograd::Function<FusedGelu> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, ProductThreads* threads) {
    const at::Tensor input = x.contiguous();
    at::Tensor slope = at::empty_like(input);
    at::Tensor y = gelu_of(input, &slope, threads);
    ctx->save_for_backward({slope});
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    return {grad_outputs[0] * ctx->get_saved_variables()[0], at::Tensor()};
  }
};

}  // namespace

bool fused_cpu_gelu_applies(const at::Tensor& x) {
  return x.device().is_cpu() && (x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16);
}

at::Tensor fused_cpu_gelu(const at::Tensor& x, ProductThreads* threads) {
  TORCH_CHECK(fused_cpu_gelu_applies(x), "fused_cpu_gelu: a float32 or bfloat16 CPU tensor expected, got ", x.scalar_type(),
              " on ", x.device());
  if (at::GradMode::is_enabled() && x.requires_grad()) return FusedGelu::apply(x, threads);
  return gelu_of(x.contiguous(), nullptr, threads);
}

at::Tensor mlp_gelu(const at::Tensor& x, ProductThreads* threads) {
  return fused_cpu_gelu_applies(x) ? fused_cpu_gelu(x, threads) : at::gelu(x);
}

}  // namespace nanogpt
