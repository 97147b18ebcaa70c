#pragma once
// The model's linear layers on the CPU with each product cut into blocks of output rows, one
// single-threaded sgemm call per block, run on ProductThreads (product_threads.h).
#include <ATen/ATen.h>

#include <memory>

namespace nanogpt {

class ProductThreads;

}  // namespace nanogpt

namespace torch::autograd {
struct AutogradContext;
}  // namespace torch::autograd

namespace nanogpt {

// Whether split_linear takes x @ weight.T: float32 CPU tensors, CPU autocast off, and at
// least two blocks of rows for the forward product.
bool split_linear_applies(const at::Tensor& x, const at::Tensor& weight, const ProductThreads& threads);

// F::linear(x, weight, bias), x (..., in), weight (out, in), bias (out) or undefined; forward
// and backward products split across `threads`. Each output element is one sgemm dot product,
// so it equals LibTorch's single-threaded result up to the BLAS's choice of kernel for the
// block. Differentiable once: its backward is not itself recorded (training needs no more).
at::Tensor split_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                        const std::shared_ptr<ProductThreads>& threads);

// ProductThreads kept in a custom autograd function's saved data (alive as long as it is), for
// its backward: keep_threads does nothing without threads, and kept_threads is then null.
void keep_threads(torch::autograd::AutogradContext* ctx, const std::shared_ptr<ProductThreads>& threads);
ProductThreads* kept_threads(torch::autograd::AutogradContext* ctx);

}  // namespace nanogpt
