#include <gtest/gtest.h>
#include <torch/torch.h>

#include "nanogpt/adamw_check.h"
#include "nanogpt/compat.h"
#include "nanogpt/fused_adamw.h"

#include <torch/version.h>

using namespace nanogpt;

namespace {

std::vector<torch::Tensor> make_parameters() {
  torch::manual_seed(11);
  return {torch::randn({65, 128}).requires_grad_(true), torch::randn({384, 128}).requires_grad_(true)};
}

}  // namespace

// The moments to the bit; the weights within the rounding of LibTorch's square roots (MKL's
// vector math in PyPI's build, up to 1 ulp off) after six steps: a few weights 1 ulp apart.
TEST(FusedAdamW, EqualsLibTorchAdamWUpToItsSquareRoots) {
  const AdamwCheckResult r = check_adamw(torch::kCPU, 6);
  EXPECT_EQ(r.path, adamw_path_name(AdamwPath::cpu_kernel));
  EXPECT_LE(r.weight_error, 0x1p-22);  // 2 ulp of the largest weight
  EXPECT_EQ(r.moment_error, 0.0);
  EXPECT_TRUE(r.same_step_counts);
  EXPECT_EQ(r.elements, 65 * 128 + 384 * 128 + 7 * 3 + 128 + 5);
  EXPECT_TRUE(r.passed);
}

// Runs where this build has CUDA and a GPU (the GPU check runs `nanogpt check-adamw --device=cuda` too).
TEST(FusedAdamW, CudaParametersTakeLibTorchsFusedKernel) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA in this build or no GPU visible";
  const AdamwCheckResult r = check_adamw(torch::kCUDA, 6);
  EXPECT_EQ(r.path, adamw_path_name(AdamwPath::device_kernel));
  EXPECT_TRUE(r.passed) << "update error " << r.update_error << ", moment error " << r.moment_error;
}

TEST(FusedAdamW, PathFollowsParametersAndOptions) {
  auto params = make_parameters();
  EXPECT_EQ(FusedAdamW(params, torch::optim::AdamWOptions(1e-3)).path(), AdamwPath::cpu_kernel);
  FusedAdamW amsgrad(params, torch::optim::AdamWOptions(1e-3).amsgrad(true));
  EXPECT_EQ(amsgrad.path(), AdamwPath::libtorch);
  FusedAdamW half({torch::zeros({4}, torch::kHalf).requires_grad_(true)}, torch::optim::AdamWOptions(1e-3));
  EXPECT_EQ(half.path(), AdamwPath::libtorch);
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

TEST(FusedAdamW, DoubleParametersTakeAdamWsOwnStep) {
  auto make = [] {
    torch::manual_seed(13);
    return std::vector<torch::Tensor>{torch::randn({4, 4}, torch::kDouble).requires_grad_(true)};
  };
  auto fused_params = make(), reference_params = make();
  FusedAdamW fused(fused_params, torch::optim::AdamWOptions(1e-2));
  torch::optim::AdamW reference(reference_params, torch::optim::AdamWOptions(1e-2));
  fused_params[0].mutable_grad() = torch::ones({4, 4}, torch::kDouble);
  reference_params[0].mutable_grad() = torch::ones({4, 4}, torch::kDouble);
  fused.step();
  reference.step();
  EXPECT_TRUE(torch::equal(fused_params[0], reference_params[0]));
}
