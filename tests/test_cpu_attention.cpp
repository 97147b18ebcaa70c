#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "nanogpt/cpu/ops.h"
#include "nanogpt/cpu/attention.h"

#include "cpu/attention_kernel.h"  // src/: the kernel itself, for its baseline copy

using namespace nanogpt;

namespace {

// softmax(q k^T / sqrt(hs)) v in double precision, query row i seeing keys 0..past+i; with a
// bool keep mask, the probabilities are dropped where it is false and scaled by 1 / (1 - p).
torch::Tensor reference_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                  int64_t past, const torch::Tensor& keep = {}, double p = 0.0) {
  const int64_t tq = q.size(2), tk = k.size(2);
  auto rows = torch::arange(tq).unsqueeze(1) + past;
  auto cols = torch::arange(tk).unsqueeze(0);
  auto scores = q.to(torch::kDouble).matmul(k.to(torch::kDouble).transpose(-2, -1)) / std::sqrt(double(q.size(3)));
  scores = scores.masked_fill(cols > rows, -std::numeric_limits<double>::infinity());
  auto probabilities = torch::softmax(scores, -1);
  if (keep.defined()) probabilities = probabilities * keep.to(torch::kDouble) / (1 - p);
  return probabilities.matmul(v.to(torch::kDouble));
}

struct Case {
  int64_t batch, heads, queries, keys, past, dim;
};

// q, k, v as the model makes them: strided head views of one (B, T, 3C) projection.
std::vector<torch::Tensor> projected_heads(const Case& c) {
  auto qkv = torch::randn({c.batch, c.keys, 3 * c.heads * c.dim});
  std::vector<torch::Tensor> heads;
  for (const auto& part : qkv.split(c.heads * c.dim, 2)) {
    heads.push_back(part.view({c.batch, c.keys, c.heads, c.dim}).transpose(1, 2));
  }
  heads[0] = heads[0].slice(2, c.past, c.past + c.queries);
  return heads;
}

// q, k, v as float32 leaves and as float64 leaves of the same values.
struct Leaves {
  std::vector<torch::Tensor> fp32, fp64;
};
Leaves leaves_of(const std::vector<torch::Tensor>& heads) {
  Leaves l;
  for (const auto& t : heads) {
    l.fp32.push_back(t.detach().requires_grad_(true));
    l.fp64.push_back(t.detach().to(torch::kDouble).requires_grad_(true));
  }
  return l;
}

// The fused output against the float64 expectation, then dq, dk, dv after one backward.
void expect_output_and_gradients_match(const torch::Tensor& out, const torch::Tensor& expected, const Leaves& l,
                                       const std::string& context) {
  ASSERT_EQ(out.sizes(), expected.sizes());
  EXPECT_LE((out.to(torch::kDouble) - expected).abs().max().item<double>(), 2e-6) << context;
  auto upstream = torch::randn(out.sizes());
  out.backward(upstream);
  expected.backward(upstream.to(torch::kDouble));
  const char* names[] = {"dq", "dk", "dv"};
  for (int i = 0; i < 3; ++i) {
    const auto error = (l.fp32[i].grad().to(torch::kDouble) - l.fp64[i].grad()).abs().max().item<double>();
    const auto scale = l.fp64[i].grad().abs().max().item<double>();
    EXPECT_LE(error, 1e-5 * std::max(1.0, scale)) << names[i] << ", " << context;
  }
}

void expect_matches_reference(const Case& c) {
  torch::manual_seed(c.batch * 1000 + c.keys * 10 + c.dim);
  const Leaves l = leaves_of(projected_heads(c));
  auto out = fused_cpu_causal_attention(l.fp32[0], l.fp32[1], l.fp32[2], c.past);
  auto expected = reference_attention(l.fp64[0], l.fp64[1], l.fp64[2], c.past);
  expect_output_and_gradients_match(out, expected, l, "keys " + std::to_string(c.keys));
}

}  // namespace

TEST(CpuAttention, MatchesDoublePrecisionReferenceWithGradients) {
  expect_matches_reference({2, 3, 17, 17, 0, 5});   // odd sizes: vector tails in every loop
  expect_matches_reference({1, 2, 64, 64, 0, 32});  // the README CPU recipe's head shape
  expect_matches_reference({2, 2, 3, 10, 7, 8});    // queries after cached keys
  expect_matches_reference({1, 1, 1, 9, 8, 16});    // one new token seeing every key
  expect_matches_reference({1, 2, 70, 70, 0, 64});  // GPT-2's head size, keys past one 64-wide block
  expect_matches_reference({1, 1, 5, 300, 295, 24});  // a long cache, head size 24 (3 vectors: run-time width)
}

TEST(CpuAttention, StaysFiniteForLargeScores) {
  torch::manual_seed(3);
  auto q = torch::randn({1, 2, 12, 8}) * 60, k = torch::randn({1, 2, 12, 8}) * 60, v = torch::randn({1, 2, 12, 8});
  auto out = fused_cpu_causal_attention(q, k, v, 0);
  EXPECT_TRUE(torch::isfinite(out).all().item<bool>());
  EXPECT_LE((out.to(torch::kDouble) - reference_attention(q, k, v, 0)).abs().max().item<double>(), 1e-5);
}

TEST(CpuAttention, HeadsComeOutSideBySideWithoutACopy) {
  auto q = torch::randn({2, 3, 5, 4});
  auto out = fused_cpu_causal_attention(q, q, q, 0);
  EXPECT_EQ(out.sizes(), q.sizes());
  EXPECT_TRUE(out.transpose(1, 2).is_contiguous());
}

TEST(CpuAttention, ANanKeyReachesOnlyTheQueriesThatSeeIt) {
  auto q = torch::randn({1, 2, 6, 4}), k = torch::randn({1, 2, 6, 4}), v = torch::randn({1, 2, 6, 4});
  k.index_put_({0, 1, 2, 0}, std::numeric_limits<float>::quiet_NaN());
  auto row_has_nan = torch::isnan(fused_cpu_causal_attention(q, k, v, 0)).any(-1);  // (1, 2, 6)
  EXPECT_FALSE(row_has_nan[0][0].any().item<bool>());
  EXPECT_TRUE(torch::equal(row_has_nan[0][1], torch::tensor({false, false, true, true, true, true})));
}

TEST(CpuAttention, AppliesToFloat32AndBfloat16CpuUpToTheMostKeys) {
  auto x = torch::randn({1, 1, 4, 4});
  EXPECT_TRUE(fused_cpu_attention_applies(x, x, x));
  auto most_keys = torch::randn({1, 1, kFusedAttentionMaxKeys, 4});
  auto too_many_keys = torch::randn({1, 1, kFusedAttentionMaxKeys + 1, 4});
  EXPECT_TRUE(fused_cpu_attention_applies(x, most_keys, most_keys));
  EXPECT_FALSE(fused_cpu_attention_applies(x, too_many_keys, too_many_keys));
  auto bf16 = x.to(torch::kBFloat16), half = x.to(torch::kHalf);
  EXPECT_TRUE(fused_cpu_attention_applies(bf16, bf16, bf16));
  EXPECT_FALSE(fused_cpu_attention_applies(bf16, x, x));
  EXPECT_FALSE(fused_cpu_attention_applies(half, half, half));
  auto keys = torch::randn({1, 1, 5, 4});
  EXPECT_THROW(
      {
        try {
          fused_cpu_causal_attention(x, keys, keys, 2);
        } catch (const c10::Error& e) {
          EXPECT_NE(std::string(e.what()).find("4 queries after 2 cached positions need more than 5 keys"),
                    std::string::npos)
              << e.what();
          throw;
        }
      },
      c10::Error);
}

// Attention dropout: the same keep mask as LibTorch's attention draws from the same seed,
// the same random stream afterwards, and gradients against a float64 reference built on
// that mask.
TEST(CpuAttention, DropoutDrawsLibTorchsMaskAndMatchesAReference) {
  const double p = 0.2;
  for (const Case& c : {Case{2, 3, 17, 17, 0, 5}, Case{3, 4, 64, 64, 0, 32}}) {
    torch::manual_seed(11);
    auto heads = projected_heads(c);
    const Leaves l = leaves_of(heads);
    auto causal = torch::ones({c.queries, c.keys}, torch::kBool).tril();

    torch::manual_seed(5);
    auto out = fused_cpu_causal_attention(l.fp32[0], l.fp32[1], l.fp32[2], 0, p);
    const auto stream_after = torch::rand({4});
    torch::manual_seed(5);
    auto libtorch = nanogpt::ops::math_attention(heads[0], heads[1], heads[2], causal, p);
    const auto libtorch_stream_after = torch::rand({4});
    EXPECT_TRUE(torch::equal(stream_after, libtorch_stream_after));
    EXPECT_LE((out - libtorch).abs().max().item<double>(), 2e-6);

    torch::manual_seed(5);
    auto keep = torch::empty({c.batch, c.heads, c.queries, c.keys}, torch::kBool).bernoulli_(1 - p);
    EXPECT_GT(keep.logical_not().sum().item<int64_t>(), 0);  // some probabilities are dropped
    auto expected = reference_attention(l.fp64[0], l.fp64[1], l.fp64[2], 0, keep, p);
    expect_output_and_gradients_match(out, expected, l, "dropout, keys " + std::to_string(c.keys));
  }
}

// The kernel's baseline copy, the one CPUs without AVX2 and FMA run, against the copy this
// CPU runs (tested above against float64), on single heads: blocks of 4 rows and tails,
// cached keys, every row width the loops special-case and one they do not.
TEST(CpuAttention, BaselineKernelCopyMatchesTheDispatchedOne) {
  namespace kernel = nanogpt::attention_kernel;
  const auto rows = [](const torch::Tensor& t) { return kernel::Rows{t.data_ptr<float>(), t.stride(0)}; };
  const auto mutable_rows = [](torch::Tensor& t) { return kernel::MutableRows{t.data_ptr<float>(), t.stride(0)}; };
  for (const int64_t dim : {5, 8, 32, 48, 64}) {
    torch::manual_seed(dim);
    const int64_t queries = 11, keys = 14, past = 3;
    const kernel::HeadShape shape{queries, keys, past, dim, static_cast<float>(1.0 / std::sqrt(double(dim)))};
    auto q = torch::randn({queries, dim}), k = torch::randn({keys, dim}), v = torch::randn({keys, dim});
    auto dout = torch::randn({queries, dim});
    std::vector<float> scratch(
        std::max(kernel::forward_scratch_floats(shape), kernel::backward_scratch_floats(shape, false)));
    std::vector<torch::Tensor> results[2];
    for (int copy = 0; copy < 2; ++copy) {
      const auto forward = copy == 0 ? kernel::forward_head : kernel::forward_head_baseline;
      const auto backward = copy == 0 ? kernel::backward_head : kernel::backward_head_baseline;
      auto out = torch::empty({queries, dim}), lse = torch::empty({queries});
      auto dq = torch::empty({queries, dim}), dk = torch::empty({keys, dim}), dv = torch::empty({keys, dim});
      forward(shape, rows(q), rows(k), rows(v), {}, mutable_rows(out), lse.data_ptr<float>(), scratch.data());
      backward(shape, rows(q), rows(k), rows(v), {}, rows(out), rows(dout), lse.data_ptr<float>(), mutable_rows(dq),
               mutable_rows(dk), mutable_rows(dv), scratch.data());
      results[copy] = {out, lse, dq, dk, dv};
    }
    const char* names[] = {"out", "lse", "dq", "dk", "dv"};
    for (size_t i = 0; i < results[0].size(); ++i) {
      const double scale = std::max(1.0, results[0][i].abs().max().item<double>());
      EXPECT_LE((results[0][i] - results[1][i]).abs().max().item<double>(), 1e-5 * scale)
          << names[i] << ", head size " << dim;
    }
  }
}

TEST(CpuAttention, HeadsOnSeveralThreadsGiveTheSameBits) {
  // each head is the same kernel call whichever of LibTorch's threads runs it
  const int threads_before = at::get_num_threads();
  for (const auto dtype : {torch::kFloat, torch::kBFloat16}) {
    for (const double dropout : {0.0, 0.3}) {
      torch::manual_seed(11);
      const auto q = torch::randn({2, 5, 37, 16}).to(dtype).requires_grad_();
      const auto k = torch::randn({2, 5, 37, 16}).to(dtype).requires_grad_();
      const auto v = torch::randn({2, 5, 37, 16}).to(dtype).requires_grad_();
      const auto grad = torch::randn({2, 5, 37, 16}).to(dtype);
      std::vector<torch::Tensor> results;
      for (const int threads : {1, 3}) {
        at::set_num_threads(threads);
        torch::manual_seed(12);  // the same dropout mask on both sides
        const auto out = fused_cpu_causal_attention(q, k, v, 0, dropout);
        const auto grads = torch::autograd::grad({out}, {q, k, v}, {grad});
        results.insert(results.end(), {out, grads[0], grads[1], grads[2]});
      }
      for (size_t i = 0; i < 4; ++i) {
        EXPECT_TRUE(torch::equal(results[i], results[i + 4])) << "tensor " << i << ", dropout " << dropout;
      }
    }
  }
}
