#include <gtest/gtest.h>

#include <fstream>
#include <torch/torch.h>

#include "nanogpt/base/compat.h"
#include "nanogpt/cpu/bf16_linear_in_float.h"
#include "nanogpt/train/grad_scaler.h"
#include "nanogpt/memory/memory_stats.h"
#include "nanogpt/model/model.h"
#include "nanogpt/model/activation_checkpointing.h"
#include "nanogpt/model/chunked_loss.h"
#include "nanogpt/cpu/features.h"
#include "nanogpt/train/precision.h"

using namespace nanogpt;

namespace {

struct StepResult {
  double loss;
  std::map<std::string, torch::Tensor> grads;
  double next_random;  // the generator's next draw: recomputation must leave it untouched
};

// One forward/backward of a fixed model (seed 7) on fixed data (seed 8), with dropout drawn
// after seeding 9.
StepResult forward_backward(double dropout, int64_t checkpoint_every, int64_t loss_chunk_size, bool bf16) {
  torch::manual_seed(7);
  GPT model(GPTConfig{32, 97, 3, 4, 32, dropout, true});
  model->checkpoint_every = checkpoint_every;
  model->loss_chunk_size = loss_chunk_size;
  torch::manual_seed(8);
  auto x = torch::randint(97, {3, 32}, torch::kLong);
  auto y = torch::randint(97, {3, 32}, torch::kLong);
  y.index_put_({0, torch::indexing::Slice(0, 5)}, -1);  // ignored targets
  torch::manual_seed(9);
  torch::Tensor loss;
  {
    std::optional<AutocastGuard> guard;
    if (bf16) guard.emplace(at::kCPU, AutocastState{true, at::kBFloat16});
    loss = std::get<1>(model->forward(x, y));
  }
  loss.backward();
  StepResult run{loss.item<double>(), {}, torch::rand({1}).item<double>()};
  for (const auto& item : model->named_parameters()) run.grads[item.key()] = item.value().grad().clone();
  return run;
}

void expect_equal_runs(const StepResult& a, const StepResult& b, double tolerance) {
  if (tolerance == 0) {
    EXPECT_EQ(a.loss, b.loss);
  } else {
    EXPECT_NEAR(a.loss, b.loss, tolerance);
  }
  EXPECT_EQ(a.next_random, b.next_random);
  ASSERT_EQ(a.grads.size(), b.grads.size());
  for (const auto& [name, grad] : a.grads) {
    const torch::Tensor& other = b.grads.at(name);
    if (tolerance == 0) {
      EXPECT_TRUE(torch::equal(grad, other)) << name << " differs by " << (grad - other).abs().max().item<double>();
    } else {
      EXPECT_LE((grad - other).abs().max().item<double>(), tolerance) << name;
    }
  }
}

}  // namespace

TEST(Recompute, CheckpointedBlocksGiveIdenticalGradients) {
  for (double dropout : {0.0, 0.2}) {
    SCOPED_TRACE(dropout);
    const StepResult plain = forward_backward(dropout, 0, 0, false);
    expect_equal_runs(plain, forward_backward(dropout, 1, 0, false), 0);
    expect_equal_runs(plain, forward_backward(dropout, 2, 0, false), 0);
  }
}

TEST(Recompute, CheckpointedBlocksGiveIdenticalGradientsUnderBf16Autocast) {
  for (double dropout : {0.0, 0.2}) {
    SCOPED_TRACE(dropout);
    expect_equal_runs(forward_backward(dropout, 0, 0, true), forward_backward(dropout, 1, 0, true), 0);
  }
}

TEST(Recompute, ChunkedLossEqualsUnchunked) {
  for (double dropout : {0.0, 0.2}) {
    for (int64_t chunk : {1, 7, 32, 96, 500}) {
      SCOPED_TRACE(chunk);
      expect_equal_runs(forward_backward(dropout, 0, 0, false), forward_backward(dropout, 0, chunk, false), 1e-6);
    }
  }
}

TEST(Recompute, ChunkedLossWithCheckpointingEqualsPlain) {
  expect_equal_runs(forward_backward(0.2, 0, 0, false), forward_backward(0.2, 1, 16, false), 1e-6);
}

TEST(Recompute, ChunkedLossUnderBf16StaysWithinBf16Rounding) {
  // bf16 keeps 8 bits of mantissa: chunking changes summation order, not the result beyond that.
  expect_equal_runs(forward_backward(0.0, 0, 0, true), forward_backward(0.0, 0, 16, true), 2e-2);
}

TEST(Recompute, ChunkedLossDirectlyMatchesCrossEntropy) {
  torch::manual_seed(1);
  auto hidden = torch::randn({2, 5, 8}, torch::requires_grad());
  auto weight = torch::randn({11, 8}, torch::requires_grad());
  auto targets = torch::randint(11, {2, 5}, torch::kLong);
  targets[1][4] = -1;
  auto expected = torch::nn::functional::cross_entropy(torch::matmul(hidden, weight.t()).view({-1, 11}), targets.view(-1),
                                                        torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-1));
  auto got = chunked_lm_loss(hidden, weight, targets, 3);
  EXPECT_NEAR(got.item<double>(), expected.item<double>(), 1e-6);
  auto expected_grads = torch::autograd::grad({expected}, {hidden, weight});
  auto got_grads = torch::autograd::grad({got}, {hidden, weight});
  EXPECT_TRUE(torch::allclose(got_grads[0], expected_grads[0], 0, 1e-6));
  EXPECT_TRUE(torch::allclose(got_grads[1], expected_grads[1], 0, 1e-6));
}

TEST(Recompute, ChunkedLossUnderBf16RunsTheHeadInBf16) {
  torch::manual_seed(2);
  auto hidden = torch::randn({2, 6, 16}, torch::requires_grad());
  auto weight = torch::randn({40, 16}, torch::requires_grad());
  auto targets = torch::randint(40, {2, 6}, torch::kLong);
  torch::Tensor expected, got;
  {
    AutocastGuard bf16(at::kCPU, {true, at::kBFloat16});
    // the model's LM head: through float32 products where this CPU lacks bf16 instructions
    const torch::Tensor logits = autocast_linear_in_float(hidden) ? bf16_linear_in_float(hidden, weight)
                                                                  : torch::nn::functional::linear(hidden, weight);
    expected = torch::nn::functional::cross_entropy(logits.view({-1, 40}), targets.view(-1));
    got = chunked_lm_loss(hidden, weight, targets, 12);  // one chunk: the same operations
  }
  EXPECT_NEAR(got.item<double>(), expected.item<double>(), 1e-5);
  auto expected_grads = torch::autograd::grad({expected}, {hidden, weight});
  auto got_grads = torch::autograd::grad({got}, {hidden, weight});
  for (int i = 0; i < 2; ++i) {
    // products of bf16 matmuls: every gradient element is a bf16 number
    EXPECT_TRUE(torch::equal(got_grads[i], got_grads[i].to(torch::kBFloat16).to(torch::kFloat))) << i;
    EXPECT_TRUE(torch::allclose(got_grads[i], expected_grads[i], 1e-2, 1e-5)) << i;
  }
}

TEST(Recompute, TiedEmbeddingLeavesOneWeightGradientAlive) {
  // The chunked loss and the token embedding share a (V, C) weight much larger than the rest.
  install_counting_cpu_allocator();
  const int64_t V = 8192, C = 64, weight_bytes = V * C * 4;
  torch::manual_seed(3);
  auto weight = torch::randn({V, C}, torch::requires_grad());
  auto idx = torch::randint(V, {2, 8}, torch::kLong);
  auto targets = torch::randint(V, {2, 8}, torch::kLong);
  auto run = [&](bool tied) {
    weight.mutable_grad() = torch::zeros_like(weight);  // a later micro-step: the gradient exists
    c10::intrusive_ptr<TiedGradient> shared;
    if (tied) shared = c10::make_intrusive<TiedGradient>();
    torch::Tensor hidden = tied ? tied_embedding(weight, idx, shared) : torch::embedding(weight, idx);
    torch::Tensor loss = chunked_lm_loss(hidden.tanh(), weight, targets, 4, shared);
    const int64_t before = memory_peaks(at::kCPU).cpu_tensor_bytes_now;
    reset_memory_peaks(at::kCPU);
    loss.backward();
    return std::make_pair(memory_peaks(at::kCPU).cpu_tensor_bytes - before, weight.grad().clone());
  };
  const auto [untied_peak, untied_grad] = run(false);
  const auto [tied_peak, tied_grad] = run(true);
  EXPECT_TRUE(torch::allclose(tied_grad, untied_grad, 0, 1e-6));
  // untied: two gradients (the engine adds the second into the first)
  EXPECT_GT(untied_peak, 1.9 * weight_bytes) << untied_peak;
  EXPECT_LT(tied_peak, 1.5 * weight_bytes) << tied_peak;
}

TEST(Recompute, AutocastGuardRestoresTheOuterState) {
  const AutocastState before = autocast_state(at::kCPU);
  EXPECT_FALSE(before.enabled);
  {
    AutocastGuard outer(at::kCPU, {true, at::kBFloat16});
    EXPECT_TRUE(autocast_state(at::kCPU).enabled);
    auto a = torch::randn({4, 4});
    EXPECT_EQ(torch::matmul(a, a).scalar_type(), at::kBFloat16);
    {
      AutocastGuard inner(at::kCPU, {false, at::kBFloat16});
      EXPECT_FALSE(autocast_state(at::kCPU).enabled);
      EXPECT_EQ(torch::matmul(a, a).scalar_type(), at::kFloat);
    }
    EXPECT_TRUE(autocast_state(at::kCPU).enabled);
    EXPECT_EQ(autocast_state(at::kCPU).dtype, at::kBFloat16);
  }
  EXPECT_EQ(autocast_state(at::kCPU).enabled, before.enabled);
  EXPECT_EQ(autocast_state(at::kCPU).dtype, before.dtype);
  auto a = torch::randn({4, 4});
  EXPECT_EQ(torch::matmul(a, a).scalar_type(), at::kFloat);
}

TEST(Recompute, GradScalerSkipsNonFiniteStepsAndAdjustsTheScale) {
  auto p = torch::ones({3}, torch::requires_grad());
  torch::optim::SGD sgd({p}, torch::optim::SGDOptions(1.0));
  GradScaler scaler(true, 1024.0, 2.0, 0.5, 2);
  auto step = [&](double gradient) {
    p.mutable_grad() = torch::full({3}, gradient * scaler.scale());
    const bool stepped = scaler.step(sgd, {p});
    scaler.update();
    return stepped;
  };
  EXPECT_TRUE(step(0.5));  // unscaled gradient 0.5: p = 1 - 0.5
  EXPECT_TRUE(torch::allclose(p, torch::full({3}, 0.5)));
  EXPECT_EQ(scaler.scale(), 1024.0);
  EXPECT_TRUE(step(0.25));  // second good step: the scale grows
  EXPECT_EQ(scaler.scale(), 2048.0);
  EXPECT_FALSE(step(std::numeric_limits<double>::infinity()));  // skipped, scale halves
  EXPECT_EQ(scaler.scale(), 1024.0);
  EXPECT_TRUE(torch::allclose(p, torch::full({3}, 0.25)));
  GradScaler off(false);
  EXPECT_TRUE(torch::equal(off.scale(torch::ones({})), torch::ones({})));
}

TEST(Recompute, CountingAllocatorMeasuresTensorBytes) {
  install_counting_cpu_allocator();
  ASSERT_TRUE(counting_cpu_allocator_installed());
  reset_memory_peaks(at::kCPU);
  const int64_t before = memory_peaks(at::kCPU).cpu_tensor_bytes_now;
  {
    auto big = torch::empty({1024, 1024}, torch::kFloat);  // 4 MiB
    EXPECT_EQ(memory_peaks(at::kCPU).cpu_tensor_bytes_now - before, 4 << 20);
  }
  EXPECT_EQ(memory_peaks(at::kCPU).cpu_tensor_bytes_now, before);
  EXPECT_GE(memory_peaks(at::kCPU).cpu_tensor_bytes - before, 4 << 20);
  reset_memory_peaks(at::kCPU);
  EXPECT_EQ(memory_peaks(at::kCPU).cpu_tensor_bytes, before);
  EXPECT_GT(memory_peaks(at::kCPU).peak_rss_bytes, 0);
}

int64_t resident_kib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NANOGPT_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define NANOGPT_TEST_ASAN 1
#endif
#if defined(__GLIBC__) && !defined(NANOGPT_TEST_ASAN)
constexpr bool kGlibcMalloc = true;
#else
constexpr bool kGlibcMalloc = false;  // AddressSanitizer brings its own malloc
#endif

TEST(Recompute, CpuMemoryReleaseGivesFreedTensorMemoryBack) {
  if (!kGlibcMalloc) GTEST_SKIP() << "cpu_memory sets glibc's malloc, which this build does not use";
  auto resident_drop_after_free = [] {
    std::vector<torch::Tensor> held;
    for (int i = 0; i < 48; ++i) held.push_back(torch::ones({512 * 1024}));  // 2 MiB each, written
    const int64_t holding = resident_kib();
    held.clear();
    return holding - resident_kib();
  };
  // (free chunks that earlier tests left in the heap may serve some of the 2 MiB requests)
  release_freed_cpu_memory();
  const int64_t released_drop = resident_drop_after_free();
  keep_freed_cpu_memory();  // the binary's setting
  const int64_t kept_drop = resident_drop_after_free();
  EXPECT_GT(released_drop, 48 * 1024) << "KiB of 96 MiB freed";
  EXPECT_LT(kept_drop, 16 * 1024) << "KiB of 96 MiB freed";
}

TEST(Compat, NativeBf16IsReadFromTheCpuFlags) {
  const std::string epyc_avx2 =
      "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma bmi2\n\nprocessor\t: 1\n";
  const std::string sapphire_rapids = "flags\t\t: avx2 avx512f avx512_bf16 amx_tile amx_bf16\n";
  const std::string genoa = "flags\t\t: avx2 avx512f avx512_bf16 avx512_vnni\n";
  EXPECT_FALSE(cpuinfo_has_native_bf16(epyc_avx2));
  EXPECT_TRUE(cpuinfo_has_native_bf16(sapphire_rapids));
  EXPECT_TRUE(cpuinfo_has_native_bf16(genoa));
  EXPECT_FALSE(cpuinfo_has_native_bf16("flags\t\t: avx512_bf16x\n"));  // whole flags only
  EXPECT_FALSE(cpuinfo_has_native_bf16(""));
  EXPECT_EQ(Precision("float32", at::kCPU).cpu_note(), "");
  EXPECT_EQ(Precision("bfloat16", at::kCPU).cpu_note().empty(), cpu_has_native_bf16());
  EXPECT_TRUE(Precision("bfloat16", at::kCUDA).cpu_note().empty());
}

