#pragma once
// nanoGPT's bench.py: burn-in steps, then timed steps of forward, backward and AdamW on the
// config's model and batch; ms/iter, tokens/s, MFU against the device's peak, peak memory.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "nanogpt/base/config.h"

namespace nanogpt {

struct BenchOptions {
  int64_t burn_in_steps = 10;  // bench.py's first stage
  int64_t timed_steps = 20;    // and its second
  bool synthetic_data = false; // random tokens instead of data_dir's train.bin
  std::optional<double> peak_flops;  // MFU denominator; default: device table or CPU probe
  std::string profile_path;    // Chrome trace of the timed steps (LibTorch's profiler)
};

struct BenchResult {
  double ms_per_iter = 0;
  double tokens_per_s = 0;
  double mfu = 0;
  double peak_flops = 0;
  std::string peak_flops_source;  // "H100 SXM bf16 table", "CPU matmul probe", "--peak-flops"
  int64_t tokens_per_iter = 0;
  double last_loss = 0;
  bool synthetic_data = false;
  int64_t peak_tensor_bytes = -1;    // CPU counting allocator or CUDA peak allocated
  int64_t peak_reserved_bytes = -1;  // CUDA caching allocator peak reserved
  int64_t peak_rss_bytes = -1;
};

// Dense peak FLOP/s of a CUDA device by its name (A100, H100, H200) and dtype; nullopt for
// other names.
std::optional<double> gpu_peak_flops(const std::string& device_name, at::ScalarType compute_type);

// Measured matmul FLOP/s of this CPU in `dtype` with the current thread count.
double cpu_peak_flops(at::ScalarType compute_type);

BenchResult bench(const TrainConfig& config, const BenchOptions& options,
                  const std::function<void(const std::string&)>& print);

}  // namespace nanogpt
