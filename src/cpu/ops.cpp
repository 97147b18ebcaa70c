#include "nanogpt/cpu/ops.h"

#include <limits>

#include "nanogpt/cpu/attention.h"
#include "nanogpt/cpu/bf16_linear_in_float.h"

namespace nanogpt::ops {

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

at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  if (autocast_linear_in_float(x)) return bf16_linear_in_float(x, weight, bias);
  return at::linear(x, weight, bias);
}

at::Tensor mm(const at::Tensor& a, const at::Tensor& b) { return mm_bf16_in_float(a, b); }

at::Tensor logits_for_softmax(const at::Tensor& rows, const at::Tensor& weight) {
  if (rows.scalar_type() == at::kBFloat16 && cpu_bf16_products_in_float(rows)) {
    at::Tensor logits = float_product(rows, weight.t(), at::kFloat);
    return logits.copy_(logits.to(at::kBFloat16));
  }
  return at::mm(rows, weight.t()).to(softmax_dtype(rows.scalar_type()));  // no copy when already there
}

at::ScalarType softmax_dtype(at::ScalarType matmul_dtype) {
  return matmul_dtype == at::kBFloat16 || matmul_dtype == at::kHalf ? at::kFloat : matmul_dtype;
}

at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            double dropout_p, int64_t past_length) {
  const int64_t tq = q.size(-2);
  const int64_t tk = k.size(-2);
  // LibTorch's CPU flash kernel has no dropout: with dropout, scaled_dot_product_attention takes the
  // math path, which keeps the (T, T) probabilities and noise.
  if (dropout_p > 0 && fused_cpu_attention_applies(q, k, v)) {
    return fused_cpu_causal_attention(q, k, v, past_length, dropout_p);
  }
  if (past_length == 0 && tq == tk) {
    return at::scaled_dot_product_attention(q, k, v, {}, dropout_p, /*is_causal=*/true);
  }
  if (tq == 1) return at::scaled_dot_product_attention(q, k, v, {}, dropout_p, false);
  return masked_attention(q, k, v, causal_mask(tq, tk, past_length, q.device()), dropout_p);
}

at::Tensor masked_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask,
                            double dropout_p) {
  return at::scaled_dot_product_attention(q, k, v, mask, dropout_p, /*is_causal=*/false);
}

at::Tensor math_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask,
                          double dropout_p) {
  // the math kernel adds its mask to the scores, so a bool mask becomes 0 / -inf first, as
  // scaled_dot_product_attention does before calling it.
  const at::Tensor additive =
      mask.scalar_type() == at::kBool
          ? at::zeros(mask.sizes(), q.options()).masked_fill(mask.logical_not(), -std::numeric_limits<double>::infinity())
          : mask;
  return std::get<0>(at::_scaled_dot_product_attention_math(q, k, v, additive, dropout_p));
}

}  // namespace nanogpt::ops
