#include <dlfcn.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "nanogpt/compat.h"
#include "nanogpt/float_products.h"
#include "nanogpt/model.h"
#include "nanogpt/product_threads.h"
#include "nanogpt/split_linear.h"

using namespace nanogpt;

namespace {

using SetThreads = void (*)(int);
using GetThreads = int (*)();

bool process_has_sgemm() { return dlsym(RTLD_DEFAULT, "sgemm_") != nullptr; }

std::shared_ptr<ProductThreads> three_threads() { return std::make_shared<ProductThreads>(3, nullptr, 1); }

void expect_close(const torch::Tensor& actual, const torch::Tensor& expected, const std::string& what) {
  ASSERT_TRUE(actual.defined()) << what;
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  const double scale = expected.abs().max().item<double>();
  EXPECT_LE((actual - expected).abs().max().item<double>(), 1e-5 * std::max(scale, 1.0)) << what;
}

}  // namespace

TEST(ProductThreads, RunsEveryPartOnceWithPartZeroOnTheCaller) {
  ProductThreads threads(3, nullptr, 1);
  EXPECT_EQ(threads.threads(), 3);
  for (int parts = 1; parts <= 3; ++parts) {
    for (int repeat = 0; repeat < 50; ++repeat) {
      std::vector<std::thread::id> ran_on(parts);
      std::vector<std::atomic<int>> runs(parts);
      threads.run(parts, [&](int part) {
        ran_on[part] = std::this_thread::get_id();
        runs[part].fetch_add(1);
      });
      for (int part = 0; part < parts; ++part) EXPECT_EQ(runs[part].load(), 1) << "part " << part;
      EXPECT_EQ(ran_on[0], std::this_thread::get_id());
      EXPECT_EQ(std::set<std::thread::id>(ran_on.begin(), ran_on.end()).size(), static_cast<size_t>(parts));
    }
  }
  EXPECT_THROW(threads.run(4, [](int) {}), std::invalid_argument);
  EXPECT_THROW(ProductThreads(1, nullptr, 1), std::invalid_argument);
}

TEST(ProductThreads, HelpersThatFellAsleepWakeForTheNextRun) {
  ProductThreads threads(2, nullptr, 1);
  for (int round = 0; round < 3; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));  // past the helpers' polling time
    std::atomic<int> sum{0};
    threads.run(2, [&](int part) { sum.fetch_add(part + 1); });
    EXPECT_EQ(sum.load(), 3);
  }
}

TEST(ProductThreads, RethrowsTheExceptionOfAPartAndStaysUsable) {
  ProductThreads threads(3, nullptr, 1);
  try {
    threads.run(3, [](int part) {
      if (part == 2) throw std::runtime_error("part 2 failed");
    });
    FAIL() << "expected the helper's exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "part 2 failed");
  }
  EXPECT_THROW(threads.run(2, [](int part) {
    if (part == 0) throw std::logic_error("caller's part");
  }), std::logic_error);
  std::atomic<int> ran{0};
  threads.run(3, [&](int) { ran.fetch_add(1); });
  EXPECT_EQ(ran.load(), 3);
}

TEST(ProductThreads, TheBlasRunsOneThreadPerBlockAndGetsItsCountBack) {
  std::vector<int> set_to;
  std::atomic<int> current{4};
  ProductThreads threads(2, [&](int n) { set_to.push_back(n); current = n; }, 4);
  std::vector<int> seen(2);
  threads.run(2, [&](int part) { seen[part] = current.load(); });
  EXPECT_EQ(seen, (std::vector<int>{1, 1}));
  EXPECT_EQ(set_to, (std::vector<int>{1, 4}));
  threads.run(1, [](int) {});  // one part: the BLAS is left alone
  EXPECT_EQ(set_to.size(), 2u);
}

TEST(ProductThreads, TwoCallersAtOnceBothGetAllTheirParts) {
  ProductThreads threads(2, nullptr, 1);
  std::atomic<int> first{0}, second{0};
  auto caller = [&](std::atomic<int>& counter) {
    for (int i = 0; i < 300; ++i) threads.run(2, [&](int part) { counter.fetch_add(part + 1); });
  };
  std::thread a(caller, std::ref(first)), b(caller, std::ref(second));
  a.join();
  b.join();
  EXPECT_EQ(first.load(), 900);
  EXPECT_EQ(second.load(), 900);
}

TEST(ProductThreads, ForARunFollowsTheConfigAndTheBlas) {
  std::string summary, bf16_summary;
  EXPECT_EQ(product_threads_for_run(true, /*on_cpu=*/false, /*bf16_on_libtorch=*/false, &summary), nullptr);
  EXPECT_EQ(summary, "");
  EXPECT_EQ(product_threads_for_run(false, true, false, &summary), nullptr);
  EXPECT_EQ(summary, "matrix products: the BLAS's own threading (split_products: false)");
  EXPECT_EQ(product_threads_for_run(false, true, /*bf16_on_libtorch=*/true, &summary), nullptr);
  EXPECT_EQ(summary, "matrix products: LibTorch's bf16 kernels (this CPU has bf16 instructions) (split_products: false)");
  const auto get = reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  const auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (!get || !set) {
    EXPECT_EQ(product_threads_for_run(true, true, false, &summary), nullptr);
    EXPECT_EQ(summary, "matrix products: the BLAS's own threading (the BLAS is not OpenBLAS; its own threading is kept)");
    GTEST_SKIP() << "LibTorch's BLAS here is not OpenBLAS";
  }
  const int blas_threads = get();
  set(1);
  EXPECT_EQ(product_threads_for_run(true, true, false, &summary), nullptr);
  EXPECT_EQ(summary, "matrix products: the BLAS's own threading (OpenBLAS has 1 thread)");
  EXPECT_EQ(product_threads_for_run(true, true, /*bf16_on_libtorch=*/true, &summary), nullptr);
  EXPECT_EQ(summary, "matrix products: LibTorch's bf16 kernels (this CPU has bf16 instructions) (OpenBLAS has 1 thread)");
  set(3);
  const auto threads = product_threads_for_run(true, true, false, &summary);
  // bf16 products on LibTorch's kernels: the threads remain, for the attention
  const auto bf16_threads = product_threads_for_run(true, true, true, &bf16_summary);
  set(blas_threads);
  ASSERT_NE(threads, nullptr);
  EXPECT_EQ(threads->threads(), 3);
  EXPECT_EQ(summary,
            "matrix products: split into blocks of rows across 3 threads, one single-threaded OpenBLAS call each "
            "(split_products)");
  ASSERT_NE(bf16_threads, nullptr);
  EXPECT_EQ(bf16_threads->threads(), 3);
  EXPECT_EQ(bf16_summary,
            "matrix products: LibTorch's bf16 kernels (this CPU has bf16 instructions); the fused attention across 3 "
            "threads (split_products)");
}

TEST(SplitLinear, OutputAndGradientsEqualLinear) {
  if (!process_has_sgemm()) GTEST_SKIP() << "no sgemm_ in this process";
  torch::manual_seed(3);
  const auto threads = three_threads();
  struct Case {
    std::vector<int64_t> x_shape;
    int64_t out;
    bool bias;
  };
  // odd row counts (blocks of 16-row multiples and a short last one), 3-D input, a bias
  for (const Case& c : {Case{{97, 33}, 65, false}, Case{{97, 33}, 65, true}, Case{{768, 128}, 384, false},
                        Case{{4, 50, 64}, 256, true}, Case{{200, 512}, 128, false}}) {
    const std::string what = "x " + c10::str(c.x_shape) + ", out " + std::to_string(c.out) + (c.bias ? ", bias" : "");
    const torch::Tensor x = torch::randn(c.x_shape, torch::requires_grad());
    const torch::Tensor w = (torch::randn({c.out, c.x_shape.back()}) * 0.1).requires_grad_();
    const torch::Tensor b = c.bias ? torch::randn({c.out}).requires_grad_() : torch::Tensor();
    ASSERT_TRUE(split_linear_applies(x, w, *threads)) << what;
    const torch::Tensor y = split_linear(x, w, b, threads);
    const torch::Tensor y_ref = torch::nn::functional::linear(x, w, b);
    expect_close(y, y_ref, "output, " + what);
    const torch::Tensor grad = torch::randn(y.sizes());
    const auto grads = torch::autograd::grad({y}, c.bias ? std::vector<torch::Tensor>{x, w, b} : std::vector<torch::Tensor>{x, w}, {grad});
    const auto grads_ref = torch::autograd::grad({y_ref}, c.bias ? std::vector<torch::Tensor>{x, w, b} : std::vector<torch::Tensor>{x, w}, {grad});
    for (size_t i = 0; i < grads.size(); ++i) expect_close(grads[i], grads_ref[i], "gradient " + std::to_string(i) + ", " + what);
    // and against float64, so that both are right and not merely equal
    const torch::Tensor y64 = torch::nn::functional::linear(x.to(torch::kDouble), w.to(torch::kDouble),
                                                            c.bias ? b.to(torch::kDouble) : torch::Tensor());
    EXPECT_LT((y.to(torch::kDouble) - y64).abs().max().item<double>(), 1e-4) << what;
  }
}

TEST(SplitLinear, TakesAnyLayoutAndOnlyTheGradientsAskedFor) {
  if (!process_has_sgemm()) GTEST_SKIP() << "no sgemm_ in this process";
  torch::manual_seed(4);
  const auto threads = three_threads();
  const torch::Tensor base = torch::randn({48, 160});
  const torch::Tensor x = base.t();  // (160, 48), not contiguous; needs no gradient
  const torch::Tensor w = torch::randn({96, 48}).requires_grad_();
  const torch::Tensor y = split_linear(x, w, {}, threads);
  expect_close(y, torch::mm(x, w.t()), "transposed input");
  y.sum().backward();
  expect_close(w.grad(), torch::mm(torch::ones({96, 160}), x), "weight gradient");
  {
    torch::NoGradGuard no_grad;
    EXPECT_FALSE(split_linear(x, w, {}, threads).requires_grad());
  }
  // x's gradient, through a view, without the weight's
  const torch::Tensor leaf = torch::randn({2, 40, 48}, torch::requires_grad());
  const torch::Tensor frozen = w.detach();
  const torch::Tensor out = split_linear(leaf * 2, frozen, {}, threads);
  out.sum().backward();
  expect_close(leaf.grad(), 2 * torch::ones({2, 40, 96}).matmul(frozen), "input gradient");
}

TEST(SplitLinear, AppliesOnlyToFloatCpuProductsWithRowsToSplit) {
  const auto threads = three_threads();
  const torch::Tensor w = torch::randn({64, 32});
  EXPECT_TRUE(split_linear_applies(torch::randn({64, 32}), w, *threads));    // two blocks of 32 rows
  EXPECT_FALSE(split_linear_applies(torch::randn({63, 32}), w, *threads));   // one block
  EXPECT_FALSE(split_linear_applies(torch::randn({1, 4, 32}), w, *threads));  // sampling: a few rows
  EXPECT_FALSE(split_linear_applies(torch::randn({64, 32}, torch::kDouble), w.to(torch::kDouble), *threads));
  EXPECT_FALSE(split_linear_applies(torch::randn({64, 31}), w, *threads));
  {
    const AutocastGuard autocast(at::kCPU, AutocastState{true, at::kBFloat16});
    EXPECT_FALSE(split_linear_applies(torch::randn({64, 32}), w, *threads));
  }
}

TEST(SplitLinear, ATrainingStepOfGptMatchesTheUnsplitOne) {
  if (!process_has_sgemm()) GTEST_SKIP() << "no sgemm_ in this process";
  const GPTConfig config{32, 65, 2, 2, 64, 0.0, true};
  torch::manual_seed(5);
  GPT split(config), plain(config);
  torch::NoGradGuard no_grad_copy;
  for (size_t i = 0; i < plain->parameters().size(); ++i) plain->parameters()[i].copy_(split->parameters()[i]);
  split->use_product_threads(three_threads());
  const torch::Tensor idx = torch::randint(65, {4, 32}), targets = torch::randint(65, {4, 32});
  torch::AutoGradMode grad_on(true);
  auto [logits_split, loss_split] = split->forward(idx, targets);
  auto [logits_plain, loss_plain] = plain->forward(idx, targets);
  EXPECT_NEAR(loss_split.item<double>(), loss_plain.item<double>(), 1e-5);
  const torch::Tensor mlp_out = split->blocks[0]->mlp(torch::randn({4, 32, 64}, torch::requires_grad()));
  EXPECT_EQ(mlp_out.grad_fn()->name(), "SplitLinearBackward");  // the split path, not LibTorch's linear
  loss_split.backward();
  loss_plain.backward();
  const auto named = split->named_parameters();
  for (size_t i = 0; i < named.size(); ++i) {
    expect_close(named[i].value().grad(), plain->parameters()[i].grad(), named[i].key());
  }
}

namespace {

// ProductThreads whose BLAS hook counts the runs that were split (one call to 1 per run)
struct CountedThreads {
  std::shared_ptr<int> split_runs = std::make_shared<int>(0);
  std::shared_ptr<ProductThreads> threads = std::make_shared<ProductThreads>(
      3, [runs = split_runs](int n) { *runs += n == 1; }, /*blas_threads=*/5);
};

torch::Tensor bf16(const torch::Tensor& t) { return t.to(torch::kBFloat16); }

double max_error(const torch::Tensor& got, const torch::Tensor& expected) {
  return (got.to(torch::kDouble) - expected).abs().max().item<double>();
}

}  // namespace

TEST(SplitFloatProduct, BlocksOnThreadsGiveTheWidenedProduct) {
  if (!process_has_sgemm()) GTEST_SKIP() << "no sgemm_ in this process";
  torch::manual_seed(6);
  CountedThreads counted;
  // two tiles of rows, a bias, both result dtypes
  const auto a = bf16(torch::randn({kFloatProductTile + 476, 200})), b = bf16(torch::randn({200, 300}));
  const auto bias = bf16(torch::randn({300}));
  const auto expected = torch::mm(a.to(torch::kDouble), b.to(torch::kDouble)) + bias.to(torch::kDouble);
  const auto got = float_product(a, b, torch::kFloat, bias, counted.threads.get());
  EXPECT_EQ(*counted.split_runs, 2);
  EXPECT_LT(max_error(got, expected), 1e-4);
  EXPECT_TRUE(torch::equal(float_product(a, b, torch::kBFloat16, bias, counted.threads.get()), bf16(got)));
  EXPECT_LT(max_error(got, float_product(a, b, torch::kFloat, bias).to(torch::kDouble)), 1e-4);  // unsplit
  // transposed operands, as the linear layer's backward passes them: grad.T @ x and x @ weight.T
  const auto grad = bf16(torch::randn({768, 96})), x = bf16(torch::randn({768, 64})), weight = bf16(torch::randn({96, 64}));
  const auto grad_weight = float_product(grad.t(), x, torch::kFloat, {}, counted.threads.get());
  EXPECT_LT(max_error(grad_weight, torch::mm(grad.t().to(torch::kDouble), x.to(torch::kDouble))), 1e-4);
  const auto projected = float_product(x, weight.t(), torch::kFloat, {}, counted.threads.get());
  EXPECT_LT(max_error(projected, torch::mm(x.to(torch::kDouble), weight.t().to(torch::kDouble))), 1e-4);
  // a float operand is read as it is
  const auto x_float = torch::randn({100, 64});
  const auto mixed = float_product(x_float, weight.t(), torch::kBFloat16, {}, counted.threads.get());
  EXPECT_TRUE(torch::equal(mixed, bf16(torch::mm(x_float, weight.t().to(torch::kFloat)))));
  EXPECT_EQ(*counted.split_runs, 7);
  // too few rows for two blocks, or an inner dimension past a tile: float_product's own path
  float_product(bf16(torch::randn({63, 8})), bf16(torch::randn({8, 8})), torch::kFloat, {}, counted.threads.get());
  float_product(bf16(torch::randn({64, kFloatProductTile + 1})), bf16(torch::randn({kFloatProductTile + 1, 8})),
                torch::kFloat, {}, counted.threads.get());
  EXPECT_EQ(*counted.split_runs, 7);
}

TEST(SplitFloatProduct, Bf16LinearOnThreadsFollowsTheUnsplitOne) {
  if (!process_has_sgemm()) GTEST_SKIP() << "no sgemm_ in this process";
  torch::manual_seed(7);
  CountedThreads counted;
  const torch::Tensor x = torch::randn({6, 40, 64}, torch::requires_grad());
  const torch::Tensor w = (torch::randn({96, 64}) * 0.1).requires_grad_();
  const torch::Tensor b = torch::randn({96}).requires_grad_();
  const AutocastGuard autocast(at::kCPU, AutocastState{true, at::kBFloat16});
  const torch::Tensor y = bf16_linear_in_float(x, w, b, counted.threads);
  const torch::Tensor y_ref = bf16_linear_in_float(x, w, b);
  EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(*counted.split_runs, 1);
  // each output is the same float sum rounded once: equal, or one bf16 step apart where the
  // two BLAS calls added the terms in another order
  EXPECT_LE(max_error(y, y_ref.to(torch::kDouble)), 1e-2 * y_ref.abs().max().item<double>());
  const torch::Tensor grad = torch::randn(y.sizes()).to(torch::kBFloat16);
  const auto grads = torch::autograd::grad({y}, {x, w, b}, {grad});
  const auto grads_ref = torch::autograd::grad({y_ref}, {x, w, b}, {grad});
  EXPECT_EQ(*counted.split_runs, 3);  // forward, then both backward products
  for (size_t i = 0; i < grads.size(); ++i) {
    EXPECT_LE(max_error(grads[i], grads_ref[i].to(torch::kDouble)), 1e-2 * grads_ref[i].abs().max().item<double>())
        << "gradient " << i;
  }
}

TEST(SplitFloatProduct, AFloatInputIsCastInTheBlocksAsAutocastCastsIt) {
  if (!process_has_sgemm()) GTEST_SKIP() << "no sgemm_ in this process";
  torch::manual_seed(8);
  const auto threads = three_threads();
  const torch::Tensor x = torch::randn({5, 30, 64}, torch::requires_grad());  // float32, as LayerNorm's output
  const torch::Tensor w = (torch::randn({96, 64}) * 0.1).requires_grad_();
  const torch::Tensor b = torch::randn({96}).requires_grad_();
  const torch::Tensor grad = torch::randn({5, 30, 96}).to(torch::kBFloat16);
  const AutocastGuard autocast(at::kCPU, AutocastState{true, at::kBFloat16});
  const torch::Tensor fused = bf16_linear_in_float(x, w, b, threads);
  const auto fused_grads = torch::autograd::grad({fused}, {x, w, b}, {grad});
  // the cast done first, as autocast does it, on the same threads
  const torch::Tensor x_bf16 = x.detach().to(torch::kBFloat16).requires_grad_();
  const torch::Tensor cast_first = bf16_linear_in_float(x_bf16, w, b, threads);
  const auto cast_first_grads = torch::autograd::grad({cast_first}, {x_bf16, w, b}, {grad});
  EXPECT_EQ(fused.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(fused, cast_first));
  EXPECT_EQ(fused_grads[0].scalar_type(), torch::kFloat);  // x's own dtype, holding bf16 values
  EXPECT_TRUE(torch::equal(fused_grads[0], cast_first_grads[0].to(torch::kFloat)));
  EXPECT_TRUE(torch::equal(fused_grads[1], cast_first_grads[1]));
  EXPECT_TRUE(torch::equal(fused_grads[2], cast_first_grads[2]));
}
