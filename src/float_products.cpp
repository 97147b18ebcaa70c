#include "nanogpt/float_products.h"

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "nanogpt/compat.h"
#include "nanogpt/product_threads.h"
#include "nanogpt/split_linear.h"

#include "bf16_convert.h"
#include "blas_gemm.h"

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

// Whether `t` (2-D) is stored row by row (`transposed` false) or column by column, in a way
// sgemm takes as it is (its leading dimension at least the stored rows' length).
bool blas_layout(const at::Tensor& t, bool* transposed) {
  if (t.stride(1) == 1 && t.stride(0) >= std::max<int64_t>(1, t.size(1))) {
    *transposed = false;
    return true;
  }
  if (t.stride(0) == 1 && t.stride(1) >= std::max<int64_t>(1, t.size(0))) {
    *transposed = true;
    return true;
  }
  return false;
}

bool split_applies(const at::Tensor& a, const at::Tensor& b, ProductThreads* threads) {
  if (threads == nullptr || !a.is_cpu() || a.size(1) == 0 || a.size(1) > kFloatProductTile ||
      b.size(1) > kFloatProductTile || !blas_gemm::available()) {
    return false;
  }
  for (const at::Tensor* t : {&a, &b}) {
    if (t->scalar_type() != at::kFloat && t->scalar_type() != at::kBFloat16) return false;
  }
  return RowBlocks(std::min(a.size(0), kFloatProductTile), threads->threads()).count > 1;
}

// bf16 autocast's casts around a product, done in the product's blocks: `a_in_bf16` (given
// when `a` is float32) receives `a` rounded to bf16, and the product reads those rounded
// values; `round_float_out` rounds a float32 result to bf16 values, as casting a bf16 result
// back to float32 would.
struct AutocastRounding {
  at::Tensor* a_in_bf16 = nullptr;
  bool round_float_out = false;
};

// float_product with K and N within one tile, its rows cut into blocks on `threads`: each
// block widens its rows of `a`, multiplies them with the widened `b` in one sgemm call, adds
// the bias and rounds its rows of the result, all on its own thread. The rows go a tile at a
// time, so the float scratch is at most a tile of `a` and a tile of sums, as float_product's.
at::Tensor split_float_product(at::Tensor a, const at::Tensor& b, at::ScalarType out_dtype, const at::Tensor& bias,
                               ProductThreads& threads, const AutocastRounding& rounding = {}) {
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  at::Tensor out = at::empty({M, N}, a.options().dtype(out_dtype));
  bool a_transposed = false, b_transposed = false;
  at::Tensor b_float = widened(b);
  if (!blas_layout(b_float, &b_transposed)) b_float = b_float.contiguous(), b_transposed = false;
  if (!blas_layout(a, &a_transposed) || (rounding.a_in_bf16 && a_transposed)) a = a.contiguous(), a_transposed = false;
  TORCH_CHECK(!rounding.a_in_bf16 || a.scalar_type() == at::kFloat, "split_float_product: rounds float32 operands only");
  const int64_t ldb = b_transposed ? b_float.stride(1) : b_float.stride(0);
  const int64_t a_stride = a_transposed ? a.stride(1) : a.stride(0);  // between a's stored rows
  const at::Tensor bias_float = bias.defined() ? bias.to(at::kFloat).contiguous() : at::Tensor();
  const float* bias_values = bias_float.defined() ? bias_float.data_ptr<float>() : nullptr;
  const bool float_a = a.scalar_type() == at::kFloat, float_out = out_dtype == at::kFloat;
  const int64_t tile_rows = std::min(M, kFloatProductTile);
  const at::Tensor a_scratch =
      float_a && !rounding.a_in_bf16 ? at::Tensor() : at::empty({tile_rows * K}, a.options().dtype(at::kFloat));
  const at::Tensor sum_scratch = float_out ? at::Tensor() : at::empty({tile_rows * N}, a.options().dtype(at::kFloat));
  const float* b_values = b_float.data_ptr<float>();
  for (int64_t tile_row = 0; tile_row < M; tile_row += kFloatProductTile) {
    const RowBlocks blocks(std::min(kFloatProductTile, M - tile_row), threads.threads());
    threads.run(blocks.count, [&](int block) {
      const int64_t first = tile_row + blocks.begin(block), rows = blocks.end(block) - blocks.begin(block);
      const float* a_rows;
      int64_t lda = a_stride;
      if (rounding.a_in_bf16) {  // autocast's cast of `a`, then its widening, row by row
        c10::BFloat16* rounded = rounding.a_in_bf16->data_ptr<c10::BFloat16>() + first * K;
        float* scratch = a_scratch.data_ptr<float>() + blocks.begin(block) * K;
        for (int64_t r = 0; r < rows; ++r) {
          bf16_convert::narrow(a.data_ptr<float>() + (first + r) * a_stride, rounded + r * K, K);
          bf16_convert::widen(rounded + r * K, scratch + r * K, K);
        }
        a_rows = scratch;
        lda = K;
      } else if (float_a) {
        a_rows = a.data_ptr<float>() + (a_transposed ? first : first * a_stride);
      } else {
        const c10::BFloat16* stored = a.data_ptr<c10::BFloat16>();
        float* scratch = a_scratch.data_ptr<float>() + blocks.begin(block) * K;
        if (a_transposed) {  // the block's columns of the stored (K x M) matrix, K runs of `rows`
          for (int64_t k = 0; k < K; ++k) bf16_convert::widen(stored + k * a_stride + first, scratch + k * rows, rows);
          lda = rows;
        } else {
          for (int64_t r = 0; r < rows; ++r) bf16_convert::widen(stored + (first + r) * a_stride, scratch + r * K, K);
          lda = K;
        }
        a_rows = scratch;
      }
      float* sums = float_out ? out.data_ptr<float>() + first * N : sum_scratch.data_ptr<float>() + blocks.begin(block) * N;
      blas_gemm::gemm(a_transposed, b_transposed, rows, N, K, a_rows, lda, b_values, ldb, 0.0f, sums, N);
      if (bias_values) {  // after the product, as float_product adds it
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t n = 0; n < N; ++n) sums[r * N + n] += bias_values[n];
        }
      }
      if (!float_out) bf16_convert::narrow(sums, out.data_ptr<c10::BFloat16>() + first * N, rows * N);
      if (float_out && rounding.round_float_out) {
        std::vector<c10::BFloat16> row(N);
        for (int64_t r = 0; r < rows; ++r) {
          bf16_convert::narrow(sums + r * N, row.data(), N);
          bf16_convert::widen(row.data(), sums + r * N, N);
        }
      }
    });
  }
  return out;
}

// Applied without a bias when there is none: LibTorch 1.13 rejects undefined tensor inputs.
struct Bf16LinearInFloat : torch::autograd::Function<Bf16LinearInFloat> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const std::shared_ptr<ProductThreads>& threads) {
    return forward(ctx, x, weight, at::Tensor(), threads);
  }

  // A float32 `x` (only with threads, where the product splits) is cast to bf16 in the product's
  // blocks rather than by autocast beforehand: the same values, without a single-threaded pass.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias, const std::shared_ptr<ProductThreads>& threads) {
    std::vector<int64_t> shape = x.sizes().vec();
    shape.back() = weight.size(0);
    const at::Tensor x_rows = x.reshape({-1, x.size(-1)});
    const bool float_x = x.scalar_type() == at::kFloat;
    TORCH_CHECK(!float_x || threads, "Bf16LinearInFloat: a float32 input needs ProductThreads (bf16_linear_in_float)");
    at::Tensor x_bf16 = float_x ? at::empty(x_rows.sizes(), x.options().dtype(at::kBFloat16)) : x;
    const at::Tensor out = float_x ? split_float_product(x_rows, weight.t(), at::kBFloat16, bias, *threads,
                                                         AutocastRounding{&x_bf16, false})
                                   : float_product(x_rows, weight.t(), x.scalar_type(), bias, threads.get());
    ctx->save_for_backward({x_bf16.view(x.sizes()), weight});  // what autocast's linear keeps
    ctx->saved_data["bias"] = bias.defined();
    ctx->saved_data["float_x"] = float_x;
    keep_threads(ctx, threads);
    return out.view(shape);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &weight = saved[1];
    ProductThreads* threads = kept_threads(ctx);
    // the gradient feeds both products: widened once where it is a single tile (with threads,
    // each block widens its own part, on its own thread)
    const at::Tensor grad_rows = grad_outputs[0].reshape({-1, weight.size(0)});
    const bool one_tile = grad_rows.size(0) <= kFloatProductTile && grad_rows.size(1) <= kFloatProductTile;
    const at::Tensor grad = one_tile && threads == nullptr ? widened(grad_rows) : grad_rows;
    at::Tensor grad_x, grad_weight, grad_bias;
    if (ctx->needs_input_grad(0) && ctx->saved_data["float_x"].toBool()) {
      // x's gradient as autocast's cast passes it back: rounded to bf16, in float32
      grad_x = split_applies(grad, weight, threads)
                   ? split_float_product(grad, weight, at::kFloat, {}, *threads, AutocastRounding{nullptr, true})
                   : float_product(grad, weight, at::kBFloat16).to(at::kFloat);
      grad_x = grad_x.view(x.sizes());
    } else if (ctx->needs_input_grad(0)) {
      grad_x = float_product(grad, weight, x.scalar_type(), {}, threads).view(x.sizes());
    }
    if (ctx->needs_input_grad(1)) {
      grad_weight = float_product(grad.t(), x.reshape({-1, x.size(-1)}), weight.scalar_type(), {}, threads);
    }
    // one gradient per argument of apply: x, weight, [bias,] threads
    if (!ctx->saved_data["bias"].toBool()) return {grad_x, grad_weight, at::Tensor()};
    if (ctx->needs_input_grad(2)) grad_bias = grad_rows.sum(0);
    return {grad_x, grad_weight, grad_bias, at::Tensor()};
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

at::Tensor float_product(const at::Tensor& a, const at::Tensor& b, at::ScalarType out_dtype, const at::Tensor& bias,
                         ProductThreads* threads) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0), "float_product: (M, K) and (K, N) expected, got ",
              a.sizes(), " and ", b.sizes());
  // the float products below must stay float: autocast would cast them back to bf16
  const c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCPU);
  if (split_applies(a, b, threads)) return split_float_product(a, b, out_dtype, bias, *threads);
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

at::Tensor bf16_linear_in_float(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                const std::shared_ptr<ProductThreads>& threads) {
  // autocast's own casts: the parameters' bf16 copies come from (and stay in) its cache
  auto cast = [](const at::Tensor& t) { return at::autocast::cached_cast(at::kBFloat16, t, c10::DeviceType::CPU); };
  // a float32 activation is cast in the product's blocks where the product splits
  const bool cast_in_blocks = x.scalar_type() == at::kFloat && x.dim() >= 1 && x.numel() > 0 &&
                              split_applies(x.reshape({-1, x.size(-1)}), weight.t(), threads.get());
  const at::Tensor input = cast_in_blocks ? x : cast(x);
  if (!bias.defined()) return Bf16LinearInFloat::apply(input, cast(weight), threads);
  return Bf16LinearInFloat::apply(input, cast(weight), cast(bias), threads);
}

}  // namespace nanogpt
