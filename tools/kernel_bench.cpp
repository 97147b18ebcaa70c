// Times this port's fused CPU attention (forward, backward) against LibTorch's
// at::scaled_dot_product_attention at the same dropout, on one thread by default, and prints a
// markdown table. The port calls the fused kernel only with dropout (compat.cpp: without it,
// LibTorch's CPU flash kernel), so the rows with dropout are the ones that decide.
// Usage: nanogpt_kernel_bench [--threads N] [--repeats N]
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "nanogpt/cpu/attention.h"
#include "nanogpt/memory/memory_stats.h"

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

PassTimes time_attention(int64_t B, int64_t H, int64_t T, int64_t D, double dropout, bool fused, int repeats) {
  torch::manual_seed(0);
  auto q = torch::randn({B, H, T, D}).requires_grad_(true);
  auto k = torch::randn({B, H, T, D}).requires_grad_(true);
  auto v = torch::randn({B, H, T, D}).requires_grad_(true);
  auto upstream = torch::randn({B, H, T, D});
  auto attend = [&] {
    return fused ? nanogpt::fused_cpu_causal_attention(q, k, v, 0, dropout)
                 : at::scaled_dot_product_attention(q, k, v, {}, dropout, /*is_causal=*/true);
  };
  return pass_times([&] { torch::NoGradGuard no_grad; attend(); }, [&] { attend().backward(upstream); }, repeats);
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
  std::printf("| attention (B, nh, T, hs) | dropout | LibTorch fwd ms | fused fwd ms | LibTorch bwd ms | fused bwd ms | fused / LibTorch, fwd+bwd |\n");
  std::printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
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
    for (const double dropout : {0.0, 0.2}) {
      const PassTimes libtorch = time_attention(s.B, s.H, s.T, s.D, dropout, false, runs);
      const PassTimes fused = time_attention(s.B, s.H, s.T, s.D, dropout, true, runs);
      std::printf("| %s (%ld, %ld, %ld, %ld) | %.1f | %.2f | %.2f | %.2f | %.2f | %.2f |\n", s.what, long(s.B),
                  long(s.H), long(s.T), long(s.D), dropout, libtorch.forward, fused.forward, libtorch.backward,
                  fused.backward, fused.total() / libtorch.total());
    }
  }
}
