#include "nanogpt/recompute.h"

#include <torch/torch.h>

#include "nanogpt/compat.h"
#include "nanogpt/model.h"

namespace nanogpt {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

void save_autocast(AutogradContext* ctx, at::DeviceType device_type) {
  const AutocastState state = autocast_state(device_type);
  ctx->saved_data["autocast_enabled"] = state.enabled;
  ctx->saved_data["autocast_dtype"] = static_cast<int64_t>(state.dtype);
}

AutocastState saved_autocast(AutogradContext* ctx) {
  return {ctx->saved_data["autocast_enabled"].toBool(),
          static_cast<at::ScalarType>(ctx->saved_data["autocast_dtype"].toInt())};
}

struct CheckpointedBlock : torch::autograd::Function<CheckpointedBlock> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, BlockImpl* block) {
    // The block outlives the graph (the model owns it); the context keeps its address.
    ctx->saved_data["block"] = reinterpret_cast<int64_t>(block);
    ctx->saved_data["rng_cpu"] = rng_state(at::kCPU);
    if (x.is_cuda()) ctx->saved_data["rng_device"] = rng_state(x.device());
    save_autocast(ctx, x.device().type());
    ctx->save_for_backward({x});
    return block->forward(x);  // grad mode is off here: no intermediates are kept
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const torch::Tensor x = ctx->get_saved_variables()[0];
    auto* block = reinterpret_cast<BlockImpl*>(ctx->saved_data["block"].toInt());
    // Replay the forward's random numbers, then give the generators back their state.
    const torch::Tensor cpu_now = rng_state(at::kCPU);
    set_rng_state(at::kCPU, ctx->saved_data["rng_cpu"].toTensor());
    torch::Tensor device_now;
    if (x.is_cuda()) {
      device_now = rng_state(x.device());
      set_rng_state(x.device(), ctx->saved_data["rng_device"].toTensor());
    }
    torch::Tensor input = x.detach().requires_grad_(true);
    torch::Tensor output;
    {
      torch::AutoGradMode enable_grad(true);
      AutocastGuard autocast(x.device().type(), saved_autocast(ctx));
      output = block->forward(input);
    }
    set_rng_state(at::kCPU, cpu_now);
    if (x.is_cuda()) set_rng_state(x.device(), device_now);
    torch::autograd::backward({output}, {grad_outputs[0]});  // accumulates the block's parameter gradients
    return {input.grad(), torch::Tensor()};
  }
};

torch::Tensor chunk_loss_sum(const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& targets) {
  return torch::nn::functional::cross_entropy(
      torch::nn::functional::linear(hidden, weight), targets,
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-1).reduction(torch::kSum));
}

struct ChunkedLmLoss : torch::autograd::Function<ChunkedLmLoss> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& hidden, const torch::Tensor& weight,
                               const torch::Tensor& targets, int64_t chunk) {
    const torch::Tensor rows = hidden.reshape({-1, hidden.size(-1)});
    const torch::Tensor labels = targets.reshape(-1);
    torch::Tensor loss_sum = torch::zeros({}, hidden.options().dtype(torch::kFloat));
    for (int64_t start = 0; start < rows.size(0); start += chunk) {
      loss_sum += chunk_loss_sum(rows.slice(0, start, start + chunk), weight, labels.slice(0, start, start + chunk));
    }
    // a tensor, not a number: no host sync
    const torch::Tensor counted = (labels != -1).sum().to(torch::kFloat);
    ctx->save_for_backward({hidden, weight, targets, counted});
    ctx->saved_data["chunk"] = chunk;
    save_autocast(ctx, hidden.device().type());
    return loss_sum / counted;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& hidden = saved[0];
    const torch::Tensor rows = hidden.reshape({-1, hidden.size(-1)});
    const torch::Tensor labels = saved[2].reshape(-1);
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const torch::Tensor scale = grad_outputs[0] / saved[3];
    torch::Tensor weight = saved[1].detach().requires_grad_(true);
    torch::Tensor grad_rows = torch::empty_like(rows);
    torch::Tensor grad_weight = torch::zeros_like(weight);
    AutocastGuard autocast(hidden.device().type(), saved_autocast(ctx));
    for (int64_t start = 0; start < rows.size(0); start += chunk) {
      torch::Tensor part = rows.slice(0, start, start + chunk).detach().requires_grad_(true);
      torch::Tensor loss;
      {
        torch::AutoGradMode enable_grad(true);
        loss = chunk_loss_sum(part, weight, labels.slice(0, start, start + chunk));
      }
      auto grads = torch::autograd::grad({loss}, {part, weight}, {scale});
      grad_rows.slice(0, start, start + chunk).copy_(grads[0]);
      grad_weight += grads[1];
    }
    return {grad_rows.view_as(hidden), grad_weight, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

at::Tensor checkpointed_block(BlockImpl& block, const at::Tensor& x) { return CheckpointedBlock::apply(x, &block); }

at::Tensor chunked_lm_loss(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                           int64_t chunk_positions) {
  return ChunkedLmLoss::apply(hidden, weight, targets, chunk_positions);
}

}  // namespace nanogpt
