#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "nanogpt/cpu_gelu.h"
#include "nanogpt/product_threads.h"

#include "gelu_kernel.h"  // src/: the kernel itself, for its baseline copy

using namespace nanogpt;

namespace {

double exact_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }
double exact_gelu(double x) { return x * exact_cdf(x); }
double exact_slope(double x) { return exact_cdf(x) + x * std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI); }

// 200,001 points over [-10, 10], and a count that leaves a tail past the last eight.
std::vector<float> grid() {
  std::vector<float> x(200001);
  for (size_t i = 0; i < x.size(); ++i) x[i] = -10.0f + 20.0f * static_cast<float>(i) / (x.size() - 1);
  return x;
}

using Forward = void (*)(const float*, float*, float*, int64_t);

void expect_close_to_exact(Forward forward, const char* which) {
  const std::vector<float> x = grid();
  std::vector<float> y(x.size()), slope(x.size()), y_alone(x.size());
  forward(x.data(), y.data(), slope.data(), static_cast<int64_t>(x.size()));
  forward(x.data(), y_alone.data(), nullptr, static_cast<int64_t>(x.size()));
  double worst_y = 0, worst_slope = 0, worst_tail = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    worst_y = std::max(worst_y, std::abs(y[i] - exact_gelu(x[i])));
    worst_slope = std::max(worst_slope, std::abs(slope[i] - exact_slope(x[i])));
    if (x[i] <= -1 && x[i] >= -4) {  // where 1 + erf(x) would cancel
      worst_tail = std::max(worst_tail, std::abs(y[i] / exact_gelu(x[i]) - 1));
    }
    ASSERT_EQ(y[i], y_alone[i]) << which << " x " << x[i];
  }
  EXPECT_LT(worst_y, 4.5e-7) << which;
  EXPECT_LT(worst_slope, 4e-7) << which;
  EXPECT_LT(worst_tail, 1e-3) << which;
}

}  // namespace

TEST(CpuGelu, KernelIsWithinAFewUlpOfTheExactGelu) {
  expect_close_to_exact(gelu_kernel::forward, "kernel");
  expect_close_to_exact(gelu_kernel::forward_baseline, "baseline kernel");
}

TEST(CpuGelu, KernelWritesExactlyTheElementsAsked) {
  for (int64_t n : {1, 7, 8, 13, 16}) {
    std::vector<float> x(24, 1.5f), y(24, -7.0f), slope(24, -7.0f);
    gelu_kernel::forward(x.data(), y.data(), slope.data(), n);
    for (int64_t i = 0; i < 24; ++i) {
      EXPECT_EQ(y[i] == -7.0f, i >= n) << "n " << n << " element " << i;
      EXPECT_EQ(slope[i] == -7.0f, i >= n) << "n " << n << " element " << i;
    }
  }
}

TEST(CpuGelu, MatchesAtenGeluAndItsGradient) {
  torch::manual_seed(0);
  const auto x = (torch::randn({12, 64, 512}) * 3).requires_grad_(true);
  const auto upstream = torch::randn({12, 64, 512});
  // ATen's gelu in double precision: its float32 kernel is not the same on every LibTorch and
  // CPU (2.6 with AVX-512 is 1.2e-6, 5 ulp, off the exact value near x = 3.5)
  const auto reference_x = x.detach().to(torch::kDouble).requires_grad_(true);
  const auto y = fused_cpu_gelu(x);
  const auto reference = at::gelu(reference_x);
  // within 1e-6 plus two float32 ulp of the value
  const auto excess = (y.to(torch::kDouble) - reference).abs() - (1e-6 + 2.4e-7 * reference.abs());
  EXPECT_LE(excess.max().item<double>(), 0.0);
  y.backward(upstream);
  reference.backward(upstream.to(torch::kDouble));
  EXPECT_LT((x.grad().to(torch::kDouble) - reference_x.grad()).abs().max().item<double>(), 1e-5);
  // the gradient is the upstream times the exact slope, elementwise
  const auto slope = x.grad() / upstream;
  const double xi = x[3][7][11].item<double>();
  EXPECT_NEAR(slope[3][7][11].item<double>(), exact_slope(xi), 1e-6);
}

TEST(CpuGelu, ChoosesThePathByTensor) {
  const auto x = torch::linspace(-4, 4, 101);
  EXPECT_TRUE(fused_cpu_gelu_applies(x));
  EXPECT_FALSE(fused_cpu_gelu_applies(x.to(torch::kDouble)));
  EXPECT_TRUE(fused_cpu_gelu_applies(x.to(torch::kBFloat16)));
  EXPECT_FALSE(fused_cpu_gelu_applies(x.to(torch::kHalf)));
  EXPECT_TRUE(at::equal(mlp_gelu(x.to(torch::kDouble)), at::gelu(x.to(torch::kDouble))));
  {
    torch::NoGradGuard no_grad;  // no slope to keep; the same values
    EXPECT_TRUE(at::equal(mlp_gelu(x.requires_grad_(true)), fused_cpu_gelu(x.detach())));
  }
  const auto strided = torch::randn({8, 6}).t();  // not contiguous
  EXPECT_TRUE(at::equal(fused_cpu_gelu(strided), fused_cpu_gelu(strided.contiguous())));
  try {
    fused_cpu_gelu(x.to(torch::kDouble));
    ADD_FAILURE() << "a double tensor was accepted";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("float32 or bfloat16 CPU tensor expected, got Double"), std::string::npos) << e.what();
  }
}

TEST(CpuGelu, ChunksOnProductThreadsGiveTheSameBits) {
  auto runs = std::make_shared<int>(0);
  ProductThreads threads(3, [runs](int n) { *runs += n == 1; }, /*blas_threads=*/5);
  for (const auto dtype : {torch::kFloat, torch::kBFloat16}) {
    torch::manual_seed(13);
    const auto x = (torch::randn({3 * 16384 + 5}) * 3).to(dtype).requires_grad_();
    const auto grad = torch::randn({3 * 16384 + 5}).to(dtype);
    const int runs_before = *runs;
    const auto on_threads = fused_cpu_gelu(x, &threads);
    EXPECT_EQ(*runs - runs_before, 1);
    const auto plain = fused_cpu_gelu(x);
    EXPECT_TRUE(torch::equal(on_threads, plain)) << dtype;
    EXPECT_TRUE(torch::equal(torch::autograd::grad({on_threads}, {x}, {grad})[0],
                             torch::autograd::grad({plain}, {x}, {grad})[0])) << dtype;
  }
  // fewer elements than two chunks: LibTorch's loop, no run
  const int runs_before = *runs;
  fused_cpu_gelu(torch::randn({1000}), &threads);
  EXPECT_EQ(*runs, runs_before);
}
