#include "nanogpt/cpu/bf16_linear_in_float.h"

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "nanogpt/base/compat.h"

#include "cpu/bf16_convert.h"
#include "nanogpt/cpu/features.h"

namespace nanogpt {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Rows of at least this many elements per thread in the conversions.
constexpr int64_t kConversionGrain = 32768;

int64_t row_grain(int64_t cols) { return std::max<int64_t>(1, kConversionGrain / std::max<int64_t>(cols, 1)); }

// `t` (2-D) as float32: itself when it is float32; a bf16 tile widened row by row along its
// contiguous dimension, that layout kept (a transposed operand stays one for sgemm).
at::Tensor widened(const at::Tensor& t) {
  if (t.scalar_type() == at::kFloat) return t;
  if (t.scalar_type() != at::kBFloat16 || (t.stride(1) != 1 && t.stride(0) != 1)) return t.to(at::kFloat);
  if (t.stride(1) != 1) return widened(t.t()).t();
  at::Tensor out = at::empty(t.sizes(), t.options().dtype(at::kFloat));
  const c10::BFloat16* in = t.data_ptr<c10::BFloat16>();
  float* rows = out.data_ptr<float>();
  const int64_t cols = t.size(1);
  at::parallel_for(0, t.size(0), row_grain(cols), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) bf16_convert::widen(in + r * t.stride(0), rows + r * cols, cols);
  });
  return out;
}

// target = sum rounded to bf16, both 2-D of one shape.
void narrow_into(at::Tensor& target, const at::Tensor& sum) {
  if (target.scalar_type() != at::kBFloat16 || target.stride(1) != 1 || sum.stride(1) != 1) {
    target.copy_(sum);
    return;
  }
  const float* in = sum.data_ptr<float>();
  c10::BFloat16* out = target.data_ptr<c10::BFloat16>();
  const int64_t cols = target.size(1);
  at::parallel_for(0, target.size(0), row_grain(cols), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) bf16_convert::narrow(in + r * sum.stride(0), out + r * target.stride(0), cols);
  });
}

// Rows [row, row + rows) and columns [col, col + cols) of 2-D `t`: `t` itself when that is
// all of it (one tile: the usual case, which then costs no slicing).
at::Tensor block(const at::Tensor& t, int64_t row, int64_t rows, int64_t col, int64_t cols) {
  if (row == 0 && col == 0 && rows == t.size(0) && cols == t.size(1)) return t;
  return t.slice(0, row, row + rows).slice(1, col, col + cols);
}

// Applied without a bias when there is none: LibTorch 1.13 rejects undefined tensor inputs.
struct Bf16LinearInFloat : torch::autograd::Function<Bf16LinearInFloat> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight) {
    return forward(ctx, x, weight, at::Tensor());
  }

  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias) {
    std::vector<int64_t> shape = x.sizes().vec();
    shape.back() = weight.size(0);
    const at::Tensor out = float_product(x.reshape({-1, x.size(-1)}), weight.t(), x.scalar_type(), bias);
    ctx->save_for_backward({x, weight});  // what autocast's linear keeps
    ctx->saved_data["bias"] = bias.defined();
    return out.view(shape);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &weight = saved[1];
    // the gradient feeds both products: widened once where it is a single tile
    const at::Tensor grad_rows = grad_outputs[0].reshape({-1, weight.size(0)});
    const bool one_tile = grad_rows.size(0) <= kFloatProductTile && grad_rows.size(1) <= kFloatProductTile;
    const at::Tensor grad = one_tile ? widened(grad_rows) : grad_rows;
    at::Tensor grad_x, grad_weight, grad_bias;
    if (ctx->needs_input_grad(0)) {
      grad_x = float_product(grad, weight, x.scalar_type()).view(x.sizes());
    }
    if (ctx->needs_input_grad(1)) {
      grad_weight = float_product(grad.t(), x.reshape({-1, x.size(-1)}), weight.scalar_type());
    }
    // one gradient per argument of apply: x, weight[, bias]
    if (!ctx->saved_data["bias"].toBool()) return {grad_x, grad_weight};
    if (ctx->needs_input_grad(2)) grad_bias = grad_rows.sum(0);
    return {grad_x, grad_weight, grad_bias};
  }
};

}  // namespace

bool cpu_bf16_products_in_float(const at::Tensor& x) { return !cpu_has_native_bf16() && x.is_cpu(); }

bool autocast_linear_in_float(const at::Tensor& x) {
  if (!cpu_bf16_products_in_float(x)) return false;
  const AutocastState autocast = autocast_state(at::kCPU);
  return autocast.enabled && autocast.dtype == at::kBFloat16;
}

at::Tensor mm_bf16_in_float(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() == at::kBFloat16 && b.scalar_type() == at::kBFloat16 && cpu_bf16_products_in_float(a)) {
    return float_product(a, b, at::kBFloat16);
  }
  return at::mm(a, b);
}

at::Tensor float_product(const at::Tensor& a, const at::Tensor& b, at::ScalarType out_dtype, const at::Tensor& bias) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0), "float_product: (M, K) and (K, N) expected, got ",
              a.sizes(), " and ", b.sizes());
  // the float products below must stay float: autocast would cast them back to bf16
  const c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCPU);
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1), tile = kFloatProductTile;
  at::Tensor out = at::empty({M, N}, a.options().dtype(out_dtype));
  const bool float_out = out_dtype == at::kFloat;
  const at::Tensor staging =
      float_out ? at::Tensor() : at::empty({std::min(M, tile), std::min(N, tile)}, a.options().dtype(at::kFloat));
  // a (1, N) row, so that its tiles come from `block` as the operands' do
  const at::Tensor bias_row = bias.defined() ? bias.to(at::kFloat).view({1, N}) : at::Tensor();
  for (int64_t row = 0; row < M; row += tile) {
    const int64_t rows = std::min(tile, M - row);
    for (int64_t col = 0; col < N; col += tile) {
      const int64_t cols = std::min(tile, N - col);
      at::Tensor target = block(out, row, rows, col, cols);
      at::Tensor sum = float_out ? target : block(staging, 0, rows, 0, cols);
      if (K == 0) sum.zero_();
      for (int64_t inner = 0; inner < K; inner += tile) {
        const int64_t inners = std::min(tile, K - inner);
        const at::Tensor a_tile = widened(block(a, row, rows, inner, inners));
        const at::Tensor b_tile = widened(block(b, inner, inners, col, cols));
        if (inner == 0) {
          at::mm_out(sum, a_tile, b_tile);
        } else {
          sum.addmm_(a_tile, b_tile);
        }
      }
      if (bias_row.defined()) sum.add_(block(bias_row, 0, 1, col, cols));
      if (!float_out) narrow_into(target, sum);
    }
  }
  return out;
}

at::Tensor bf16_linear_in_float(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  // autocast's own casts: the parameters' bf16 copies come from (and stay in) its cache
  auto cast = [](const at::Tensor& t) { return at::autocast::cached_cast(at::kBFloat16, t, c10::DeviceType::CPU); };
  if (!bias.defined()) return Bf16LinearInFloat::apply(cast(x), cast(weight));
  return Bf16LinearInFloat::apply(cast(x), cast(weight), cast(bias));
}

}  // namespace nanogpt
