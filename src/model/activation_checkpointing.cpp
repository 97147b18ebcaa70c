#include "nanogpt/model/activation_checkpointing.h"

#include <torch/torch.h>

#include "nanogpt/base/compat.h"
#include "nanogpt/model/model.h"
#include "model/saved_autocast.h"

namespace nanogpt {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct CheckpointedBlock : torch::autograd::Function<CheckpointedBlock> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, BlockImpl* block) {
    // The block outlives the graph (the model owns it); the context keeps its address.
    ctx->saved_data["block"] = reinterpret_cast<int64_t>(block);
    ctx->saved_data["rng_cpu"] = rng_state(at::kCPU);
    if (x.is_cuda()) ctx->saved_data["rng_device"] = rng_state(x.device());
    save_autocast(ctx, autocast_state(x.device().type()));
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

}  // namespace

at::Tensor checkpointed_block(BlockImpl& block, const at::Tensor& x) { return CheckpointedBlock::apply(x, &block); }

}  // namespace nanogpt
