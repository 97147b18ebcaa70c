#include "nanogpt/model/chunked_loss.h"

#include <torch/torch.h>

#include "nanogpt/base/compat.h"
#include "nanogpt/cpu/ops.h"
#include "model/saved_autocast.h"

namespace nanogpt {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The LM head runs its matmuls in autocast's half type when autocast is on (as `linear`
// would) and the softmax statistics in fp32 (as autocast runs cross-entropy).
at::ScalarType head_matmul_dtype(const AutocastState& autocast, const at::Tensor& hidden) {
  return autocast.enabled ? autocast.dtype : hidden.scalar_type();
}

// Row-wise log(sum(exp(logits))) as (N, 1), computed in place: no second (N, V) tensor.
at::Tensor log_sum_exp_(at::Tensor& logits) {
  const at::Tensor row_max = std::get<0>(logits.max(1, true));
  return logits.sub_(row_max).exp_().sum(1, true).log_().add_(row_max);
}

// What the chunked loss's forward and backward both derive from their inputs: the
// positions as rows, their labels as a column (and with -1 replaced by 0, for gathers),
// and the weight in the matmuls' dtype.
struct HeadRows {
  at::Tensor rows, labels, safe_labels, weight_cast;
};

HeadRows head_rows(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets, at::ScalarType dtype) {
  const at::Tensor labels = targets.reshape({-1, 1});
  return {hidden.reshape({-1, hidden.size(-1)}), labels, labels.clamp_min(0), weight.to(dtype)};
}

// Forward keeps, per position, only the log-sum-exp of its logits; backward recomputes one
// chunk of logits at a time and turns it in place into the logits' gradient
// scale * (softmax - one_hot(target)), so a chunk costs one fp32 (N, V) tensor (plus its half
// copy under autocast), and the weight gradient is accumulated in place.
struct ChunkedLmLoss : torch::autograd::Function<ChunkedLmLoss> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& hidden, const torch::Tensor& weight,
                               const torch::Tensor& targets, int64_t chunk, const c10::IValue& tied) {
    const at::DeviceType device_type = hidden.device().type();
    const AutocastState autocast = autocast_state(device_type);
    const AutocastGuard explicit_dtypes(device_type, {false, autocast.dtype});
    const at::ScalarType dtype = head_matmul_dtype(autocast, hidden);
    const auto [rows, labels, safe_labels, weight_cast] = head_rows(hidden, weight, targets, dtype);
    const at::TensorOptions statistics = hidden.options().dtype(ops::softmax_dtype(dtype));
    at::Tensor log_sum_exp = at::empty({rows.size(0), 1}, statistics);
    at::Tensor target_logit = at::empty({rows.size(0), 1}, statistics);
    for (int64_t start = 0; start < rows.size(0); start += chunk) {
      at::Tensor logits = ops::logits_for_softmax(rows.slice(0, start, start + chunk).to(dtype), weight_cast);
      target_logit.slice(0, start, start + chunk).copy_(logits.gather(1, safe_labels.slice(0, start, start + chunk)));
      log_sum_exp.slice(0, start, start + chunk).copy_(log_sum_exp_(logits));
    }
    const at::Tensor valid = labels.ne(-1);
    const at::Tensor loss_sum = at::where(valid, log_sum_exp - target_logit, at::zeros({}, statistics)).sum();
    const at::Tensor counted = valid.sum().to(loss_sum.scalar_type());  // a tensor, not a number: no host sync
    ctx->save_for_backward({hidden, weight, targets, log_sum_exp, counted});
    ctx->saved_data["chunk"] = chunk;
    ctx->saved_data["tied"] = tied;
    save_autocast(ctx, autocast);
    return loss_sum / counted;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& hidden = saved[0];
    const at::Tensor& log_sum_exp = saved[3];
    const at::DeviceType device_type = hidden.device().type();
    const AutocastState autocast = saved_autocast(ctx);
    const AutocastGuard explicit_dtypes(device_type, {false, autocast.dtype});
    const at::ScalarType dtype = head_matmul_dtype(autocast, hidden);
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const auto [rows, labels, safe_labels, weight_cast] = head_rows(hidden, saved[1], saved[2], dtype);
    // d loss / d logit = row_scale * (softmax - one_hot); ignored positions have row_scale 0
    const at::Tensor row_scale = labels.ne(-1).to(log_sum_exp.scalar_type()) * (grad_outputs[0] / saved[4]);
    at::Tensor grad_rows = at::empty_like(rows);
    at::Tensor grad_weight = at::zeros_like(saved[1]);
    const c10::IValue& tied = ctx->saved_data["tied"];
    for (int64_t start = 0; start < rows.size(0); start += chunk) {
      const at::Tensor part = rows.slice(0, start, start + chunk).to(dtype);
      const at::Tensor scale = row_scale.slice(0, start, start + chunk);
      at::Tensor grad_logits = ops::logits_for_softmax(part, weight_cast);
      grad_logits.sub_(log_sum_exp.slice(0, start, start + chunk)).exp_().mul_(scale);
      grad_logits.scatter_add_(1, safe_labels.slice(0, start, start + chunk), -scale);
      grad_logits = grad_logits.to(dtype);  // under autocast the fp32 tensor is freed here
      at::Tensor grad_part = grad_rows.slice(0, start, start + chunk);
      if (dtype == grad_rows.scalar_type()) {
        at::mm_out(grad_part, grad_logits, weight_cast);
        grad_weight.addmm_(grad_logits.t(), part);
      } else {
        grad_part.copy_(mm(grad_logits, weight_cast));
        // rounded to the half type first, as autograd would; in slices of the vocabulary
        // because adding a half tensor to a float one makes a float copy of it on the CPU
        for (int64_t row = 0; row < grad_weight.size(0); row += kHalfWeightGradRows) {
          grad_weight.slice(0, row, row + kHalfWeightGradRows)
              .add_(ops::mm(grad_logits.slice(1, row, row + kHalfWeightGradRows).t(), part));
        }
      }
    }
    if (tied.isCapsule()) {  // tied_embedding's backward completes and returns it
      c10::static_intrusive_pointer_cast<TiedGradient>(tied.toCapsule())->sum = std::move(grad_weight);
    }
    return {grad_rows.view_as(hidden), grad_weight, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

struct TiedEmbedding : torch::autograd::Function<TiedEmbedding> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& weight, const torch::Tensor& idx,
                               const c10::IValue& tied) {
    ctx->save_for_backward({idx});
    ctx->saved_data["tied"] = tied;
    ctx->saved_data["rows"] = weight.size(0);
    return at::embedding(weight, idx);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const at::Tensor idx = ctx->get_saved_variables()[0];
    const at::Tensor& grad = grad_outputs[0];
    auto tied = c10::static_intrusive_pointer_cast<TiedGradient>(ctx->saved_data["tied"].toCapsule());
    const int64_t rows = ctx->saved_data["rows"].toInt();
    at::Tensor sum = std::move(tied->sum);
    if (!sum.defined()) sum = at::zeros({rows, grad.size(-1)}, grad.options());
    if (grad.is_cuda()) {  // CUDA's index_add_ adds with atomics, in no fixed order
      sum.add_(at::embedding_dense_backward(grad, idx, rows, -1, false));
    } else {
      sum.index_add_(0, idx.reshape(-1), grad.reshape({-1, grad.size(-1)}));
    }
    return {sum, torch::Tensor(), torch::Tensor()};
  }
};

c10::IValue capsule(const c10::intrusive_ptr<TiedGradient>& tied) {
  return tied ? c10::IValue::make_capsule(tied) : c10::IValue();
}

}  // namespace

at::Tensor chunked_lm_loss(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                           int64_t chunk_positions, const c10::intrusive_ptr<TiedGradient>& tied) {
  return ChunkedLmLoss::apply(hidden, weight, targets, chunk_positions, capsule(tied));
}

at::Tensor tied_embedding(const at::Tensor& weight, const at::Tensor& idx, const c10::intrusive_ptr<TiedGradient>& tied) {
  TORCH_CHECK(tied, "tied_embedding needs a TiedGradient");
  return TiedEmbedding::apply(weight, idx, capsule(tied));
}

}  // namespace nanogpt
