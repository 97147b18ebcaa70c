#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstring>
#include <limits>
#include <vector>

#include "nanogpt/base/compat.h"
#include "nanogpt/cpu/attention.h"
#include "nanogpt/cpu/bf16_linear_in_float.h"
#include "nanogpt/model/model.h"

#include "cpu/bf16_convert.h"  // src/: the conversion loops, against c10::BFloat16's
#include "nanogpt/cpu/features.h"

using namespace nanogpt;

namespace {

torch::Tensor bf16(const torch::Tensor& t) { return t.to(torch::kBFloat16); }
torch::Tensor widened(const torch::Tensor& t) { return t.to(torch::kFloat); }

}  // namespace

TEST(FloatProducts, ConversionsRoundAsC10BFloat16) {
  std::vector<float> values = {0.0f, -0.0f, 1.0f, 1.00390625f /* tie, to even: down */,
                               1.01171875f /* tie, to even: up */, 3.0e38f /* to inf */, 1e-40f /* subnormal */,
                               std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                               std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN()};
  const auto random = torch::randn({1000}) * 100;
  for (int64_t i = 0; i < random.numel(); ++i) values.push_back(random[i].item<float>());
  struct Build {
    const char* name;
    void (*narrow)(const float*, c10::BFloat16*, int64_t);
    void (*widen)(const c10::BFloat16*, float*, int64_t);
  };
  // what this CPU runs (the AVX2 build where it has AVX2), and the baseline build
  for (const Build& build : {Build{"dispatched", bf16_convert::narrow, bf16_convert::widen},
                             Build{"baseline", bf16_convert::narrow_baseline, bf16_convert::widen_baseline}}) {
    std::vector<c10::BFloat16> narrowed(values.size());
    build.narrow(values.data(), narrowed.data(), static_cast<int64_t>(values.size()));
    std::vector<float> back(values.size());
    build.widen(narrowed.data(), back.data(), static_cast<int64_t>(values.size()));
    for (size_t i = 0; i < values.size(); ++i) {
      EXPECT_EQ(narrowed[i].x, c10::BFloat16(values[i]).x) << build.name << " " << values[i];
      const float expected = static_cast<float>(narrowed[i]);
      EXPECT_TRUE(std::memcmp(&back[i], &expected, sizeof(float)) == 0) << build.name << " " << values[i];
    }
    EXPECT_EQ(static_cast<float>(narrowed[3]), 1.0f) << build.name;
    EXPECT_EQ(static_cast<float>(narrowed[4]), 1.015625f) << build.name;
  }
}

TEST(FloatProducts, OneTileIsOneSgemmOfTheWidenedOperands) {
  torch::manual_seed(0);
  const auto a = bf16(torch::randn({300, 200})), b = bf16(torch::randn({200, 500}));
  const auto bias = bf16(torch::randn({500}));
  const auto expected = at::mm(widened(a), widened(b));
  EXPECT_TRUE(torch::equal(float_product(a, b, torch::kFloat), expected));
  EXPECT_TRUE(torch::equal(float_product(a, b, torch::kBFloat16), bf16(expected)));
  EXPECT_TRUE(torch::equal(float_product(a, b, torch::kBFloat16, bias), bf16(expected + widened(bias))));
  // transposed operands are read through their strides
  EXPECT_TRUE(torch::equal(float_product(b.t(), a.t(), torch::kFloat), at::mm(widened(b).t(), widened(a).t())));
}

TEST(FloatProducts, TilesCoverEveryRowColumnAndInnerPosition) {
  torch::manual_seed(1);
  const int64_t past_one_tile = kFloatProductTile + 37;
  const auto a = bf16(torch::randn({past_one_tile, past_one_tile + 5}));
  const auto b = bf16(torch::randn({past_one_tile + 5, past_one_tile - 100}));
  const auto bias = bf16(torch::randn({past_one_tile - 100}));
  const auto expected = at::mm(widened(a), widened(b)) + widened(bias);
  const auto got = float_product(a, b, torch::kFloat, bias);
  // the inner positions are summed in two tiles: the same sums, added in another order
  EXPECT_TRUE(torch::allclose(got, expected, 1e-5, 1e-4)) << (got - expected).abs().max().item<double>();
  EXPECT_TRUE(torch::equal(float_product(a, b, torch::kBFloat16, bias), bf16(got)));
}

TEST(FloatProducts, EmptyInnerDimensionGivesTheBias) {
  const auto a = torch::zeros({3, 0}, torch::kBFloat16), b = torch::zeros({0, 4}, torch::kBFloat16);
  EXPECT_TRUE(torch::equal(float_product(a, b, torch::kFloat), torch::zeros({3, 4})));
  EXPECT_THROW(float_product(a, torch::zeros({2, 4}), torch::kFloat), c10::Error);
}

// The linear layer under bf16 autocast: bf16 copies in, a bf16 result out, and gradients that
// are the float products of the bf16 values, rounded to bf16 as autocast's would be.
TEST(FloatProducts, LinearIsAutocastsLinearInFloatArithmetic) {
  torch::manual_seed(2);
  const auto x = torch::randn({2, 5, 24}, torch::requires_grad());
  const auto weight = torch::randn({16, 24}, torch::requires_grad());
  const auto bias = torch::randn({16}, torch::requires_grad());
  const auto upstream = bf16(torch::randn({2, 5, 16}));
  torch::Tensor y, native;
  {
    AutocastGuard autocast(at::kCPU, {true, at::kBFloat16});
    y = bf16_linear_in_float(x, weight, bias);
    native = torch::nn::functional::linear(x, weight, bias);  // LibTorch's own bf16 product
  }
  ASSERT_EQ(y.scalar_type(), torch::kBFloat16);
  const auto x_h = widened(bf16(x.detach())), w_h = widened(bf16(weight.detach()));
  EXPECT_TRUE(torch::equal(y, bf16(at::matmul(x_h, w_h.t()) + widened(bf16(bias.detach())))));
  EXPECT_TRUE(torch::allclose(widened(y), widened(native), 1e-2, 1e-2));
  y.backward(upstream);
  const auto g = widened(upstream).view({10, 16});
  EXPECT_TRUE(torch::equal(x.grad(), widened(bf16(at::mm(g, w_h))).view({2, 5, 24})));
  EXPECT_TRUE(torch::equal(weight.grad(), widened(bf16(at::mm(g.t(), x_h.view({10, 24}))))));
  EXPECT_TRUE(torch::allclose(bias.grad(), g.sum(0), 1e-2, 1e-2));
}

TEST(FloatProducts, LinearWithoutBiasAndWithoutInputGradient) {
  torch::manual_seed(3);
  const auto x = torch::randn({7, 8});
  const auto weight = torch::randn({3, 8}, torch::requires_grad());
  torch::Tensor y;
  {
    AutocastGuard autocast(at::kCPU, {true, at::kBFloat16});
    y = bf16_linear_in_float(x, weight);
  }
  y.sum().backward();
  EXPECT_FALSE(x.grad().defined());
  const auto ones = torch::ones({7, 3});
  EXPECT_TRUE(torch::equal(weight.grad(), widened(bf16(at::mm(ones.t(), widened(bf16(x)))))));
}

TEST(FloatProducts, TheModelTakesThePathOnlyUnderBf16AutocastWithoutBf16Instructions) {
  const auto x = torch::randn({2, 3});
  EXPECT_FALSE(autocast_linear_in_float(x));
  AutocastGuard autocast(at::kCPU, {true, at::kBFloat16});
  EXPECT_EQ(autocast_linear_in_float(x), !cpu_has_native_bf16());
  EXPECT_EQ(cpu_bf16_products_in_float(x), !cpu_has_native_bf16());
}

// The whole model under bf16 autocast against float32: the same loss and gradients to
// bf16's precision, through whichever products this CPU takes.
TEST(FloatProducts, Bf16TrainingStepFollowsTheFloat32One) {
  GPTConfig config;
  config.block_size = 32;
  config.vocab_size = 96;
  config.n_layer = 2;
  config.n_head = 2;
  config.n_embd = 64;
  torch::manual_seed(4);
  GPT model(config);
  const auto idx = torch::randint(96, {3, 32}, torch::kLong);
  const auto targets = torch::randint(96, {3, 32}, torch::kLong);
  auto step = [&](bool half) {
    model->zero_grad();
    std::optional<AutocastGuard> autocast;
    if (half) autocast.emplace(at::kCPU, AutocastState{true, at::kBFloat16});
    const auto loss = std::get<1>(model->forward(idx, targets));
    loss.backward();
    std::vector<torch::Tensor> grads;
    for (const auto& p : model->parameters()) grads.push_back(p.grad().clone());
    return std::make_pair(loss.item<double>(), grads);
  };
  const auto [loss32, grads32] = step(false);
  const auto [loss16, grads16] = step(true);
  EXPECT_NEAR(loss16, loss32, 2e-2 * loss32);
  for (size_t i = 0; i < grads32.size(); ++i) {
    const double cosine =
        torch::cosine_similarity(grads16[i].flatten(), grads32[i].flatten(), 0).item<double>();
    EXPECT_GT(cosine, 0.99) << "parameter " << i;
  }
}

TEST(FloatProducts, Bf16AttentionIsTheFloatKernelRounded) {
  torch::manual_seed(5);
  const auto q = bf16(torch::randn({2, 3, 20, 16})), k = bf16(torch::randn({2, 3, 20, 16}));
  const auto v = bf16(torch::randn({2, 3, 20, 16}));
  ASSERT_TRUE(fused_cpu_attention_applies(q, k, v));
  EXPECT_FALSE(fused_cpu_attention_applies(q, widened(k), v));  // one dtype
  const auto q32 = widened(q).requires_grad_(true), k32 = widened(k).requires_grad_(true);
  const auto v32 = widened(v).requires_grad_(true);
  const auto expected = fused_cpu_causal_attention(q32, k32, v32, 0);
  const auto q16 = q.clone().requires_grad_(true), k16 = k.clone().requires_grad_(true);
  const auto v16 = v.clone().requires_grad_(true);
  const auto got = fused_cpu_causal_attention(q16, k16, v16, 0);
  ASSERT_EQ(got.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(got, bf16(expected)));
  const auto upstream = bf16(torch::randn({2, 3, 20, 16}));
  expected.backward(widened(upstream));
  got.backward(upstream);
  for (const auto& [half, single] : {std::pair{q16, q32}, {k16, k32}, {v16, v32}}) {
    ASSERT_EQ(half.grad().scalar_type(), torch::kBFloat16);
    // backward reads the rounded output: bf16's precision, not bit equality
    EXPECT_TRUE(torch::allclose(widened(half.grad()), single.grad(), 2e-2, 2e-2))
        << (widened(half.grad()) - single.grad()).abs().max().item<double>();
  }
}
