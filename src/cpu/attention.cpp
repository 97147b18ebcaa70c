#include "nanogpt/cpu/attention.h"

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <vector>


#include "cpu/attention_kernel.h"
#include "cpu/bf16_convert.h"

namespace nanogpt {

namespace {

namespace kernel = attention_kernel;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Rows of head (b, h) of a (B, nh, T, hs) tensor whose last dimension is contiguous.
kernel::Rows rows(const at::Tensor& t, int64_t b, int64_t h) {
  return {t.data_ptr<float>() + b * t.stride(0) + h * t.stride(1), t.stride(2)};
}
kernel::MutableRows mutable_rows(at::Tensor& t, int64_t b, int64_t h) {
  return {t.data_ptr<float>() + b * t.stride(0) + h * t.stride(1), t.stride(2)};
}

// bf16 tensors (autocast's) are computed in float: each head's rows are widened into a
// per-thread staging buffer, and the kernel's float results rounded back into the tensor.
template <typename Element>
Element* head_data(const at::Tensor& t, int64_t b, int64_t h) {
  return static_cast<Element*>(t.data_ptr()) + b * t.stride(0) + h * t.stride(1);
}

kernel::Rows float_rows(const at::Tensor& t, int64_t b, int64_t h, float* staging) {
  if (t.scalar_type() == at::kFloat) return rows(t, b, h);
  const c10::BFloat16* in = head_data<const c10::BFloat16>(t, b, h);
  const int64_t dim = t.size(3);
  for (int64_t i = 0; i < t.size(2); ++i) bf16_convert::widen(in + i * t.stride(2), staging + i * dim, dim);
  return {staging, dim};
}

kernel::MutableRows output_rows(at::Tensor& t, int64_t b, int64_t h, float* staging) {
  if (t.scalar_type() == at::kFloat) return mutable_rows(t, b, h);
  return {staging, t.size(3)};
}

// Rounds what the kernel wrote into output_rows' staging into a bf16 tensor.
void store_rows(at::Tensor& t, int64_t b, int64_t h, const float* staging) {
  if (t.scalar_type() == at::kFloat) return;
  c10::BFloat16* out = head_data<c10::BFloat16>(t, b, h);
  const int64_t dim = t.size(3);
  for (int64_t i = 0; i < t.size(2); ++i) bf16_convert::narrow(staging + i * dim, out + i * t.stride(2), dim);
}

// Staging floats per thread: `tensors` head-sized buffers of up to `positions` rows each.
int64_t staging_floats(const at::Tensor& q, int64_t tensors, int64_t positions) {
  return q.scalar_type() == at::kFloat ? 0 : tensors * positions * q.size(3);
}

at::Tensor with_contiguous_rows(const at::Tensor& t) { return t.stride(-1) == 1 ? t : t.contiguous(); }

// A new (B, T, nh, hs) tensor: the layout in which the heads are re-assembled side by side.
at::Tensor empty_rows_by_head(const at::Tensor& like, int64_t rows) {
  return at::empty({like.size(0), rows, like.size(1), like.size(3)}, like.options());
}
at::Tensor heads_view(const at::Tensor& rows_by_head) { return rows_by_head.transpose(1, 2); }

kernel::HeadShape head_shape(const at::Tensor& q, const at::Tensor& k, int64_t past_length) {
  return {q.size(2), k.size(2), past_length, q.size(3), static_cast<float>(1.0 / std::sqrt(double(q.size(3))))};
}

// Runs `body(b, h, scratch)` for every head, the heads spread over LibTorch's threads.
template <typename Body>
void for_each_head(const at::Tensor& q, int64_t scratch_floats, const Body& body) {
  const int64_t nh = q.size(1);
  at::parallel_for(0, q.size(0) * nh, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(scratch_floats);
    for (int64_t bh = begin; bh < end; ++bh) body(bh / nh, bh % nh, scratch.data());
  });
}

// Which probabilities attention dropout keeps: drawn as ATen's dropout draws its noise
// (bernoulli_(1 - p) over a (B, nh, Tq, Tk) tensor, so the random stream is the one of
// LibTorch's attention and of nanoGPT's model.py), but into bools, a quarter of the floats.
at::Tensor dropout_keep_mask(const at::Tensor& q, const at::Tensor& k, double dropout_p) {
  return at::empty({q.size(0), q.size(1), q.size(2), k.size(2)}, q.options().dtype(at::kBool))
      .bernoulli_(1.0 - dropout_p);
}

// The kept probabilities' multiplier, 1 / (1 - p), rounded as ATen's dropout rounds it.
float dropout_scale(double dropout_p) { return at::ones({1}).div_(1.0 - dropout_p).item<float>(); }

kernel::DropoutMask head_dropout(const at::Tensor& keep, float scale, int64_t b, int64_t h) {
  if (!keep.defined()) return {};
  return {reinterpret_cast<const uint8_t*>(keep.data_ptr<bool>()) + b * keep.stride(0) + h * keep.stride(1),
          keep.stride(2), scale};
}

struct FusedCausalAttention : torch::autograd::Function<FusedCausalAttention> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q_in, const at::Tensor& k_in,
                            const at::Tensor& v_in, int64_t past_length, double dropout_p) {
    const at::Tensor q = with_contiguous_rows(q_in), k = with_contiguous_rows(k_in), v = with_contiguous_rows(v_in);
    const kernel::HeadShape shape = head_shape(q, k, past_length);
    const at::Tensor keep = dropout_p > 0 ? dropout_keep_mask(q, k, dropout_p) : at::Tensor();
    const float scale = dropout_p > 0 ? dropout_scale(dropout_p) : 1.0f;
    at::Tensor out = empty_rows_by_head(q, shape.queries);
    at::Tensor out_heads = heads_view(out);
    at::Tensor lse = at::empty({q.size(0), q.size(1), shape.queries}, q.options().dtype(at::kFloat));
    const int64_t kernel_floats = kernel::forward_scratch_floats(shape);
    const int64_t positions = std::max(shape.queries, shape.keys);
    for_each_head(q, kernel_floats + staging_floats(q, 4, positions), [&](int64_t b, int64_t h, float* scratch) {
      float* staging = scratch + kernel_floats;
      const int64_t dim = shape.dim;
      const kernel::MutableRows out_rows = output_rows(out_heads, b, h, staging + 3 * positions * dim);
      kernel::forward_head(shape, float_rows(q, b, h, staging), float_rows(k, b, h, staging + positions * dim),
                           float_rows(v, b, h, staging + 2 * positions * dim), head_dropout(keep, scale, b, h), out_rows,
                           lse.data_ptr<float>() + (b * q.size(1) + h) * shape.queries, scratch);
      store_rows(out_heads, b, h, out_rows.data);
    });
    ctx->save_for_backward({q, k, v, out, lse, keep});
    ctx->saved_data["past_length"] = past_length;
    ctx->saved_data["dropout_scale"] = static_cast<double>(scale);
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &q = saved[0], &k = saved[1], &v = saved[2], &lse = saved[4], &keep = saved[5];
    const float scale = static_cast<float>(ctx->saved_data["dropout_scale"].toDouble());
    const at::Tensor out = heads_view(saved[3]);
    const at::Tensor dout = heads_view(with_contiguous_rows(grad_outputs[0]));
    const kernel::HeadShape shape = head_shape(q, k, ctx->saved_data["past_length"].toInt());
    at::Tensor dq = heads_view(empty_rows_by_head(q, shape.queries));
    at::Tensor dk = heads_view(empty_rows_by_head(k, shape.keys));
    at::Tensor dv = heads_view(empty_rows_by_head(v, shape.keys));
    const int64_t kernel_floats = kernel::backward_scratch_floats(shape, keep.defined());
    const int64_t positions = std::max(shape.queries, shape.keys);
    for_each_head(q, kernel_floats + staging_floats(q, 8, positions), [&](int64_t b, int64_t h, float* scratch) {
      const int64_t head = positions * shape.dim;
      float* staging = scratch + kernel_floats;
      const kernel::MutableRows dq_rows = output_rows(dq, b, h, staging + 5 * head);
      const kernel::MutableRows dk_rows = output_rows(dk, b, h, staging + 6 * head);
      const kernel::MutableRows dv_rows = output_rows(dv, b, h, staging + 7 * head);
      kernel::backward_head(shape, float_rows(q, b, h, staging), float_rows(k, b, h, staging + head),
                            float_rows(v, b, h, staging + 2 * head), head_dropout(keep, scale, b, h),
                            float_rows(out, b, h, staging + 3 * head), float_rows(dout, b, h, staging + 4 * head),
                            lse.data_ptr<float>() + (b * q.size(1) + h) * shape.queries, dq_rows, dk_rows, dv_rows,
                            scratch);
      store_rows(dq, b, h, dq_rows.data);
      store_rows(dk, b, h, dk_rows.data);
      store_rows(dv, b, h, dv_rows.data);
    });
    return {dq, dk, dv, at::Tensor(), at::Tensor()};
  }
};

// float32 or bfloat16 CPU (B, nh, T, hs) tensors of one dtype and matching shapes, at least one query.
bool computable(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const at::ScalarType dtype = q.scalar_type();
  auto on_cpu_as_q = [&](const at::Tensor& t) { return t.device().is_cpu() && t.scalar_type() == dtype; };
  return (dtype == at::kFloat || dtype == at::kBFloat16) && on_cpu_as_q(q) && on_cpu_as_q(k) && on_cpu_as_q(v) &&
         q.dim() == 4 && k.dim() == 4 && k.sizes() == v.sizes() &&
         q.size(0) == k.size(0) && q.size(1) == k.size(1) && q.size(3) == k.size(3) && q.size(2) > 0;
}

}  // namespace

bool fused_cpu_attention_chosen(int64_t keys) { return keys <= kFusedAttentionMaxKeys; }

bool fused_cpu_attention_applies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  return computable(q, k, v) && fused_cpu_attention_chosen(k.size(2));
}

at::Tensor fused_cpu_causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                      int64_t past_length, double dropout_p) {
  TORCH_CHECK(computable(q, k, v), "fused_cpu_causal_attention: float32 or bfloat16 CPU (B, nh, T, hs) tensors of one dtype expected");
  TORCH_CHECK(past_length >= 0 && past_length + q.size(2) <= k.size(2), "fused_cpu_causal_attention: ", q.size(2),
              " queries after ", past_length, " cached positions need more than ", k.size(2), " keys");
  TORCH_CHECK(dropout_p >= 0 && dropout_p < 1, "fused_cpu_causal_attention: dropout ", dropout_p,
              " is outside [0, 1)");
  return heads_view(FusedCausalAttention::apply(q, k, v, past_length, dropout_p));
}

}  // namespace nanogpt
