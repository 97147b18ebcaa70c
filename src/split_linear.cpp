#include "nanogpt/split_linear.h"

#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/autograd/saved_variable.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "nanogpt/compat.h"
#include "nanogpt/product_threads.h"

#include "blas_gemm.h"
#include "compat_autograd.h"

namespace nanogpt {

namespace {

using blas_gemm::gemm;
using torch::autograd::variable_list;

struct ThreadsCapsule : torch::CustomClassHolder {
  explicit ThreadsCapsule(std::shared_ptr<ProductThreads> threads) : threads(std::move(threads)) {}
  std::shared_ptr<ProductThreads> threads;
};

bool fits_blas_int(const at::Tensor& t) {
  return std::all_of(t.sizes().begin(), t.sizes().end(), [](int64_t n) { return n < INT_MAX; }) && t.numel() < INT_MAX;
}

struct SplitLinearBackward : torch::autograd::Node {
  std::shared_ptr<ProductThreads> threads;
  torch::autograd::SavedVariable x_rows, weight;  // x as (rows, in), contiguous
  std::vector<int64_t> x_sizes;

  std::string name() const override { return "SplitLinearBackward"; }
  void release_variables() override {
    x_rows.reset_data();
    weight.reset_data();
  }

  variable_list apply(variable_list&& grads) override {
    variable_list out(num_outputs());
    if (!grads[0].defined()) return out;
    const at::Tensor x = x_rows.unpack(), w = weight.unpack();
    const int64_t rows = x.size(0), in = x.size(1), features = w.size(0);
    const at::Tensor grad = grads[0].reshape({rows, features}).contiguous();
    at::Tensor grad_x, grad_w;
    if (should_compute_output(0)) grad_x = at::empty(x_sizes, x.options());
    if (should_compute_output(1)) grad_w = at::empty({features, in}, w.options());
    const RowBlocks x_blocks(rows, threads->threads()), w_blocks(features, threads->threads());
    const float *g = grad.data_ptr<float>(), *xs = x.data_ptr<float>(), *ws = w.data_ptr<float>();
    float* gx = grad_x.defined() ? grad_x.data_ptr<float>() : nullptr;
    float* gw = grad_w.defined() ? grad_w.data_ptr<float>() : nullptr;
    // block i of both products in one run: grad_x rows = grad rows @ w, grad_w rows = grad columns.T @ x
    threads->run(std::max(x_blocks.count, w_blocks.count), [&](int block) {
      if (gx && block < x_blocks.count) {
        const int64_t begin = x_blocks.begin(block), end = x_blocks.end(block);
        gemm(false, false, end - begin, in, features, g + begin * features, features, ws, in, 0.0f, gx + begin * in, in);
      }
      if (gw && block < w_blocks.count) {
        const int64_t begin = w_blocks.begin(block), end = w_blocks.end(block);
        gemm(true, false, end - begin, in, rows, g + begin, features, xs, in, 0.0f, gw + begin * in, in);
      }
    });
    out[0] = grad_x;
    out[1] = grad_w;
    if (should_compute_output(2)) out[2] = grad.sum(0);
    return out;
  }
};

}  // namespace

bool split_linear_applies(const at::Tensor& x, const at::Tensor& weight, const ProductThreads& threads) {
  if (!x.is_cpu() || x.scalar_type() != at::kFloat || weight.scalar_type() != at::kFloat || weight.dim() != 2 ||
      x.dim() < 1 || x.size(-1) != weight.size(1) || x.size(-1) == 0 || autocast_state(at::kCPU).enabled) {
    return false;
  }
  return fits_blas_int(x) && fits_blas_int(weight) &&
         x.numel() / x.size(-1) * weight.size(0) < INT_MAX &&
         RowBlocks(x.numel() / x.size(-1), threads.threads()).count > 1;
}

at::Tensor split_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                        const std::shared_ptr<ProductThreads>& threads) {
  const int64_t in = x.size(-1), features = weight.size(0), rows = x.numel() / in;
  const at::Tensor x_rows = x.detach().reshape({rows, in}).contiguous();
  const at::Tensor w = weight.detach().contiguous();
  std::vector<int64_t> out_sizes = x.sizes().vec();
  out_sizes.back() = features;
  at::Tensor out = at::empty(out_sizes, x.options());
  const float *xs = x_rows.data_ptr<float>(), *ws = w.data_ptr<float>();
  const at::Tensor bias_values = bias.defined() ? bias.detach().contiguous() : at::Tensor();
  const float* bs = bias_values.defined() ? bias_values.data_ptr<float>() : nullptr;
  float* ys = out.data_ptr<float>();
  const RowBlocks blocks(rows, threads->threads());
  threads->run(blocks.count, [&](int block) {
    const int64_t begin = blocks.begin(block), end = blocks.end(block);
    if (bs) {  // as addmm: the bias first, the product added to it
      for (int64_t row = begin; row < end; ++row) std::memcpy(ys + row * features, bs, features * sizeof(float));
    }
    gemm(false, true, end - begin, features, in, xs + begin * in, in, ws, in, bs ? 1.0f : 0.0f, ys + begin * features,
         features);
  });
  if (torch::autograd::compute_requires_grad(x, weight, bias)) {
    auto node = autograd_compat::make_node<SplitLinearBackward>();
    node->set_next_edges(torch::autograd::collect_next_edges(x, weight, bias));
    node->threads = threads;
    node->x_rows = torch::autograd::SavedVariable(x_rows, /*is_output=*/false);
    node->weight = torch::autograd::SavedVariable(w, /*is_output=*/false);
    node->x_sizes = x.sizes().vec();
    torch::autograd::set_history(out, node);
  }
  return out;
}

void keep_threads(torch::autograd::AutogradContext* ctx, const std::shared_ptr<ProductThreads>& threads) {
  if (threads) ctx->saved_data["threads"] = c10::IValue::make_capsule(c10::make_intrusive<ThreadsCapsule>(threads));
}

ProductThreads* kept_threads(torch::autograd::AutogradContext* ctx) {
  const auto kept = ctx->saved_data.find("threads");
  if (kept == ctx->saved_data.end()) return nullptr;
  return c10::static_intrusive_pointer_cast<ThreadsCapsule>(kept->second.toCapsule())->threads.get();
}

}  // namespace nanogpt
