#include <gtest/gtest.h>
#include <torch/torch.h>

#include "nanogpt/model/adamw_check.h"
#include "nanogpt/model/fused_adamw.h"
#include "nanogpt/base/device.h"

#include <torch/version.h>

using namespace nanogpt;

namespace {

std::vector<torch::Tensor> make_parameters() {
  torch::manual_seed(11);
  return {torch::randn({65, 128}).requires_grad_(true), torch::randn({384, 128}).requires_grad_(true)};
}

}  // namespace

// LibTorch's fused kernel against its own AdamW step on the CPU, six steps: equal to rounding.
TEST(FusedAdamW, EqualsLibTorchAdamWToRounding) {
  const AdamwCheckResult r = check_adamw(torch::kCPU, 6);
  EXPECT_EQ(r.path, adamw_path_name(AdamwPath::fused_kernel));
  EXPECT_LE(r.weight_error, 0x1p-22);  // 2 ulp of the largest weight
  EXPECT_LE(r.moment_error, 0x1p-22);
  EXPECT_TRUE(r.same_step_counts);
  EXPECT_EQ(r.elements, 65 * 128 + 384 * 128 + 7 * 3 + 128 + 5);
  EXPECT_TRUE(r.passed);
}

// Runs where this build has CUDA and a GPU (the GPU check runs `nanogpt check-adamw --device=cuda` too).
TEST(FusedAdamW, CudaParametersTakeLibTorchsFusedKernel) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA in this build or no GPU visible";
  const AdamwCheckResult r = check_adamw(torch::kCUDA, 6);
  EXPECT_EQ(r.path, adamw_path_name(AdamwPath::fused_kernel));
  EXPECT_TRUE(r.passed) << "update error " << r.update_error << ", moment error " << r.moment_error;
}

TEST(FusedAdamW, PathFollowsParametersAndOptions) {
  auto params = make_parameters();
  EXPECT_EQ(FusedAdamW(params, torch::optim::AdamWOptions(1e-3)).path(), AdamwPath::fused_kernel);
  FusedAdamW amsgrad(params, torch::optim::AdamWOptions(1e-3).amsgrad(true));
  EXPECT_EQ(amsgrad.path(), AdamwPath::libtorch);
  FusedAdamW bf16({torch::zeros({4}, torch::kBFloat16).requires_grad_(true)}, torch::optim::AdamWOptions(1e-3));
  EXPECT_EQ(bf16.path(), AdamwPath::fused_kernel);
  FusedAdamW strided({torch::zeros({4, 4}).t().requires_grad_(true)}, torch::optim::AdamWOptions(1e-3));
  EXPECT_EQ(strided.path(), AdamwPath::libtorch);
}

TEST(FusedAdamW, SkipsParametersWithoutGradientAndBumpsVersions) {
  auto params = make_parameters();
  auto optimizer = std::make_unique<FusedAdamW>(params, torch::optim::AdamWOptions(6e-4).weight_decay(0.1));
  const auto untouched = params[1].clone();
  const auto version = params[0]._version();
  params[0].mutable_grad() = torch::ones({65, 128});
  optimizer->step();
  EXPECT_TRUE(torch::equal(params[1], untouched));
  EXPECT_EQ(optimizer->state().count(optimizer_state_key(params[1])), 0u);
  EXPECT_GT(params[0]._version(), version);
}
