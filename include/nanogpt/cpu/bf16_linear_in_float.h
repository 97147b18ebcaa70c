#pragma once
// bfloat16 autocast's matrix products on CPUs without bf16 instructions (no avx512_bf16 or
// amx_bf16): there LibTorch's bf16 matmul is many times slower than its float32 one
// (docs/performance.md).
// The products here take the same bf16 operands, widen them tile by tile to float32 (exact)
// and multiply them with sgemm. A bf16 GEMM accumulates in float32 too, so the results are
// what a bf16 GEMM gives, up to the order of the float additions; docs/performance.md.
#include <ATen/ATen.h>

namespace nanogpt {

// Whether bf16 products on `x`'s device take this path: `x` is on the CPU and the CPU lacks
// native bf16 (cpu_has_native_bf16 false).
bool cpu_bf16_products_in_float(const at::Tensor& x);
// That, and bf16 autocast is on for the CPU: the model's linear layers then call
// bf16_linear_in_float instead of F::linear.
bool autocast_linear_in_float(const at::Tensor& x);

// a (M, K) @ b (K, N) as at::mm, except that bf16 operands take float_product where
// cpu_bf16_products_in_float.
at::Tensor mm_bf16_in_float(const at::Tensor& a, const at::Tensor& b);

// a (M, K) @ b (K, N) (+ bias (N), added before rounding) in float32 from operands of any
// floating dtype, rounded to `out_dtype`. Works in tiles of kFloatProductTile rows, columns
// and inner positions, so its float temporaries are at most three tiles, whatever M, N, K.
at::Tensor float_product(const at::Tensor& a, const at::Tensor& b, at::ScalarType out_dtype,
                         const at::Tensor& bias = {});
constexpr int64_t kFloatProductTile = 1024;

// F::linear(x, weight, bias) as bf16 autocast computes it (x and the cached bf16 copies of
// weight and bias in, a bf16 result out, bf16 inputs saved for backward), with every product,
// forward and backward, by float_product. Differentiable.
at::Tensor bf16_linear_in_float(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias = {});

}  // namespace nanogpt
