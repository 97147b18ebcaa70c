// Times this port's CPU kernels against the LibTorch code they replace, on one thread, and
// prints a markdown table: the fused causal attention (forward, backward) against
// LibTorch's attention with a bool mask (nanogpt::masked_attention: 1.13's
// _scaled_dot_product_attention, 2.x's scaled_dot_product_attention), the fused GELU against
// at::gelu, and FusedAdamW's step against AdamW's.
// Usage: nanogpt_kernel_bench [--threads N] [--repeats N]
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "nanogpt/compat.h"
#include "nanogpt/cpu_attention.h"
#include "nanogpt/cpu_gelu.h"
#include "nanogpt/fused_adamw.h"
#include "nanogpt/memory_stats.h"

namespace {

double milliseconds(const std::function<void()>& run, int repeats) {
  run();  // warm-up: allocations, first-touch pages
  std::vector<double> times;
  for (int r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    run();
    times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

struct PassTimes {
  double forward, backward;
  double total() const { return forward + backward; }
};

// Backward's time is that of forward and backward together less forward's.
PassTimes pass_times(const std::function<void()>& forward, const std::function<void()>& forward_and_backward,
                     int repeats) {
  const double forward_ms = milliseconds(forward, repeats);
  return {forward_ms, milliseconds(forward_and_backward, repeats) - forward_ms};
}

PassTimes time_attention(int64_t B, int64_t H, int64_t T, int64_t D, bool fused, int repeats) {
  torch::manual_seed(0);
  auto q = torch::randn({B, H, T, D}).requires_grad_(true);
  auto k = torch::randn({B, H, T, D}).requires_grad_(true);
  auto v = torch::randn({B, H, T, D}).requires_grad_(true);
  auto upstream = torch::randn({B, H, T, D});
  auto mask = torch::ones({T, T}, torch::kBool).tril();
  auto attend = [&] {
    return fused ? nanogpt::fused_cpu_causal_attention(q, k, v, 0)
                 : nanogpt::masked_attention(q, k, v, mask, 0.0);
  };
  return pass_times([&] { torch::NoGradGuard no_grad; attend(); }, [&] { attend().backward(upstream); }, repeats);
}

// Forward as a training step runs it (input requiring grad: the fused kernel writes the slope).
PassTimes time_gelu(const std::vector<int64_t>& shape, bool fused, int repeats) {
  torch::manual_seed(0);
  auto x = torch::randn(shape).requires_grad_(true);
  auto upstream = torch::randn(shape);
  auto apply = [&] { return fused ? nanogpt::fused_cpu_gelu(x) : torch::gelu(x); };
  return pass_times([&] { apply(); }, [&] { apply().backward(upstream); }, repeats);
}

double time_adamw(bool fused, int repeats) {
  // a GPT-2 124M-sized set of float32 parameters would take GiBs; the README CPU recipe's shapes
  std::vector<torch::Tensor> params;
  for (auto shape : std::vector<std::vector<int64_t>>{{65, 128}, {64, 128}, {384, 128}, {128, 128}, {512, 128},
                                                      {128, 512}, {384, 128}, {128, 128}, {512, 128}, {128, 512},
                                                      {384, 128}, {128, 128}, {512, 128}, {128, 512}, {384, 128},
                                                      {128, 128}, {512, 128}, {128, 512}}) {
    params.push_back(torch::randn(shape).requires_grad_(true));
    params.back().mutable_grad() = torch::randn(shape);
  }
  std::unique_ptr<torch::optim::AdamW> optimizer =
      fused ? std::make_unique<nanogpt::FusedAdamW>(params, torch::optim::AdamWOptions(1e-3).weight_decay(0.1))
            : std::make_unique<torch::optim::AdamW>(params, torch::optim::AdamWOptions(1e-3).weight_decay(0.1));
  return milliseconds([&] { optimizer->step(); }, repeats);
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1, repeats = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--threads") == 0) threads = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--repeats") == 0) repeats = std::atoi(argv[i + 1]);
  }
  at::set_num_threads(threads);
  nanogpt::install_counting_cpu_allocator();  // CPU memory as the nanogpt binary sets it up
  nanogpt::keep_freed_cpu_memory();
  std::printf("%d thread(s), median of %d runs\n\n", threads, repeats);
  std::printf("| attention (B, nh, T, hs) | LibTorch fwd ms | fused fwd ms | LibTorch bwd ms | fused bwd ms | fused / LibTorch, fwd+bwd |\n");
  std::printf("| --- | ---: | ---: | ---: | ---: | ---: |\n");
  struct Shape {
    int64_t B, H, T, D;
    const char* what;
  };
  for (const Shape& s : std::vector<Shape>{{12, 4, 64, 32, "README CPU recipe"},
                                           {64, 6, 256, 64, "baby GPT"},
                                           {16, 12, 384, 64, "384 keys"},
                                           {8, 12, 512, 64, "512 keys"},
                                           {2, 12, 1024, 64, "GPT-2, 1024 keys"},
                                           {1, 12, 2048, 64, "2048 keys, the most the port fuses"}}) {
    const int runs = s.T >= 384 ? std::max(3, repeats / 4) : repeats;
    const PassTimes math = time_attention(s.B, s.H, s.T, s.D, false, runs);
    const PassTimes fused = time_attention(s.B, s.H, s.T, s.D, true, runs);
    std::printf("| %s (%ld, %ld, %ld, %ld) | %.2f | %.2f | %.2f | %.2f | %.2f |\n", s.what, long(s.B), long(s.H),
                long(s.T), long(s.D), math.forward, fused.forward, math.backward, fused.backward,
                fused.total() / math.total());
  }
  std::printf("\n| GELU (B, T, 4 n_embd) | at::gelu fwd ms | fused fwd ms | at::gelu bwd ms | fused bwd ms | fused / at::gelu, fwd+bwd |\n");
  std::printf("| --- | ---: | ---: | ---: | ---: | ---: |\n");
  for (const auto& [shape, what] : std::vector<std::pair<std::vector<int64_t>, const char*>>{
           {{12, 64, 512}, "README CPU recipe"}, {{64, 256, 1536}, "baby GPT"}}) {
    const PassTimes aten = time_gelu(shape, false, repeats), fused = time_gelu(shape, true, repeats);
    std::printf("| %s (%ld, %ld, %ld) | %.3f | %.3f | %.3f | %.3f | %.2f |\n", what, long(shape[0]), long(shape[1]),
                long(shape[2]), aten.forward, fused.forward, aten.backward, fused.backward,
                fused.total() / aten.total());
  }
  const double adamw = time_adamw(false, repeats), fused_adamw = time_adamw(true, repeats);
  std::printf("\n| AdamW step, README CPU recipe's parameters | LibTorch ms | FusedAdamW ms | ratio |\n");
  std::printf("| --- | ---: | ---: | ---: |\n");
  std::printf("| 0.80M float32 parameters in 18 tensors | %.3f | %.3f | %.2f |\n", adamw, fused_adamw, fused_adamw / adamw);
}
