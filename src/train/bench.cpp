#include "nanogpt/train/bench.h"

#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "nanogpt/data/data.h"
#include "nanogpt/base/fileio.h"
#include "nanogpt/cpu/bf16_linear_in_float.h"
#include "nanogpt/memory/memory_stats.h"
#include "nanogpt/model/model.h"
#include "nanogpt/tokenizer/char_tokenizer.h"
#include "nanogpt/train/step.h"
#include "nanogpt/base/device.h"
#include "nanogpt/train/precision.h"

namespace nanogpt {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace

std::optional<double> gpu_peak_flops(const std::string& name, at::ScalarType compute_type) {
  // dense tensor-core peaks from NVIDIA's data sheets; float32 runs as TF32 on these parts
  const bool half = compute_type != at::kFloat;
  if (name.find("H200") != std::string::npos) return half ? 989e12 : 494e12;
  if (name.find("H100") != std::string::npos) {
    if (name.find("PCIe") != std::string::npos) return half ? 756e12 : 378e12;
    return half ? 989e12 : 494e12;  // SXM
  }
  if (name.find("A100") != std::string::npos) return half ? 312e12 : 156e12;
  return std::nullopt;
}

double cpu_peak_flops(at::ScalarType type) {
  const int64_t n = 512;
  const at::Tensor a = at::randn({n, n}).to(type), b = at::randn({n, n}).to(type);
  // the products the model computes: on a CPU without bf16 instructions, bf16 ones in float32
  at::Tensor c = mm_bf16_in_float(a, b);  // first call: thread pools, packing buffers
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    int64_t calls = 0;
    const auto t0 = Clock::now();
    do {
      c = mm_bf16_in_float(a, b);
      ++calls;
    } while (seconds_since(t0) < 0.2);
    best = std::max(best, 2.0 * n * n * n * static_cast<double>(calls) / seconds_since(t0));
  }
  return best;
}

namespace {

void check_options(const BenchOptions& options) {
  if (options.burn_in_steps < 0 || options.timed_steps < 1) {
    throw std::invalid_argument("bench needs --burn-in >= 0 and --steps >= 1");
  }
  if (!options.profile_path.empty()) {
    // LibTorch's profiler only logs a file it cannot open: find out before the steps run
    std::ofstream probe(options.profile_path, std::ios::app);
    if (!probe) {
      throw IoError(fmt::format("cannot write the profile '{}': {}", options.profile_path, std::strerror(errno)));
    }
  }
}

// bench.py's batches: data_dir's train.bin (ids checked against its dataset's vocabulary), else random tokens
struct BenchData {
  BenchData(const TrainConfig& config, const BenchOptions& options)
      : train_bin(fs::path(config.resolved_data_dir()) / "train.bin"),
        real(!options.synthetic_data && fs::exists(train_bin)) {
    const std::optional<DatasetMeta> meta = real ? read_dataset_meta(config.resolved_data_dir()) : std::nullopt;
    vocab_size = meta && meta->tokenizer != "gpt2" ? meta->vocab_size : 50304;  // as train does
    if (real) tokens.emplace(train_bin.string(), vocab_size);
  }
  Batch next(const TrainConfig& config, const at::Device& device) const {
    if (tokens) return get_batch(*tokens, config.batch_size, config.block_size, device);
    at::Tensor x = torch::randint(vocab_size, {config.batch_size, config.block_size}, torch::kLong).to(device);
    return {x, x.roll(-1, 1)};
  }

  fs::path train_bin;
  bool real;
  int64_t vocab_size = 0;
  std::optional<TokenFile> tokens;
};

// what the steps run: the config's model in train mode, its AdamW, optimizer_step's settings
struct BenchModel {
  GPT model;
  std::unique_ptr<torch::optim::AdamW> optimizer;
  StepSettings settings;
};

BenchModel make_model(const TrainConfig& config, int64_t vocab_size, const at::Device& device,
                      const Precision& precision) {
  GPT model(GPTConfig{config.block_size, vocab_size, config.n_layer, config.n_head, config.n_embd, config.dropout,
                      config.bias});
  model->to(device);
  model->train();
  model->checkpoint_every = config.activation_checkpointing == "blocks" ? config.checkpoint_every : 0;
  model->loss_chunk_size = config.loss_chunk_size;
  auto optimizer = model->configure_optimizers(config.weight_decay, config.learning_rate, {config.beta1, config.beta2});
  const StepSettings settings{config.gradient_accumulation_steps, config.grad_clip, precision.autocast, device.type()};
  return BenchModel{model, std::move(optimizer), settings};
}

// MFU's denominator: --peak-flops, else the GPU table, else the CPU probe, else the config's mfu_peak_flops
void find_peak_flops(const TrainConfig& config, const BenchOptions& options, const at::Device& device,
                     const Precision& precision, BenchResult& result) {
  if (options.peak_flops) {
    result.peak_flops = *options.peak_flops;
    result.peak_flops_source = "--peak-flops";
  } else if (auto gpu = gpu_peak_flops(device_name(device), precision.compute_type)) {
    result.peak_flops = *gpu;
    result.peak_flops_source = fmt::format("{} {} table", device_name(device), config.dtype);
  } else if (device.is_cpu()) {
    result.peak_flops = cpu_peak_flops(precision.compute_type);
    result.peak_flops_source = fmt::format("CPU {} matmul probe, {} threads", config.dtype, at::get_num_threads());
  } else {
    result.peak_flops = config.mfu_peak_flops;
    result.peak_flops_source = "mfu_peak_flops (device not in the table)";
  }
}

void print_setup(const TrainConfig& config, const BenchOptions& options, const BenchData& data,
                 const Precision& precision, const BenchResult& result,
                 const std::function<void(const std::string&)>& print) {
  print(fmt::format("bench: n_layer {}, n_head {}, n_embd {}, block_size {}, vocab_size {}; micro-batch {} x {} "
                    "accumulation steps = {} tokens/iter; dtype {}, device {}, {}; {} data",
                    config.n_layer, config.n_head, config.n_embd, config.block_size, data.vocab_size, config.batch_size,
                    config.gradient_accumulation_steps, result.tokens_per_iter, config.dtype, config.device,
                    cpu_threads_summary(), result.synthetic_data ? "synthetic" : data.train_bin.string()));
  if (!data.real && !options.synthetic_data) {
    print(fmt::format("note: no {}, so the steps run on random tokens (vocab_size {}); prepare the dataset to time "
                      "real batches, or pass --synthetic to choose random tokens",
                      data.train_bin.string(), data.vocab_size));
  }
  print(fmt::format("peak FLOP/s for MFU: {:.3g} ({})", result.peak_flops, result.peak_flops_source));
  if (const std::string note = precision.cpu_note(); !note.empty()) print(note);
}

// the timed stage's speed, MFU and memory peaks
void record_timed_stage(const TrainConfig& config, const at::Device& device, const GPT& model, int64_t steps,
                        double dt, BenchResult& result) {
  result.ms_per_iter = dt / static_cast<double>(steps) * 1000.0;
  result.tokens_per_s = static_cast<double>(result.tokens_per_iter) / (result.ms_per_iter / 1000.0);
  result.mfu = model->estimate_mfu(config.batch_size * config.gradient_accumulation_steps, dt / static_cast<double>(steps),
                                   result.peak_flops);
  const MemoryPeaks peaks = memory_peaks(device);
  result.peak_tensor_bytes = device.is_cuda() ? peaks.cuda_allocated_bytes : peaks.cpu_tensor_bytes;
  result.peak_reserved_bytes = peaks.cuda_reserved_bytes;
  result.peak_rss_bytes = peaks.peak_rss_bytes;
}

// bench.py's two stages: burn-in steps, then the timed (and, with a profile path, profiled) steps
void run_stages(const TrainConfig& config, const BenchOptions& options, const at::Device& device, BenchModel& run,
                const std::function<Batch()>& next_batch, BenchResult& result,
                const std::function<void(const std::string&)>& print) {
  Batch batch = next_batch();
  for (int stage = 0; stage < 2; ++stage) {
    const int64_t steps = stage == 0 ? options.burn_in_steps : options.timed_steps;
    if (steps == 0) continue;
    std::optional<torch::autograd::profiler::RecordProfile> profile;
    if (stage == 1) {
      reset_memory_peaks(device);
      if (!options.profile_path.empty()) profile.emplace(options.profile_path);
    }
    synchronize(device);
    const auto t0 = Clock::now();
    for (int64_t k = 0; k < steps; ++k) {
      const at::Tensor loss = optimizer_step(run.model, *run.optimizer, batch, next_batch, run.settings);
      result.last_loss = loss.item<double>() * static_cast<double>(config.gradient_accumulation_steps);
      print(fmt::format("{}/{} loss: {:.4f}", k, steps, result.last_loss));
    }
    synchronize(device);
    const double dt = seconds_since(t0);
    profile.reset();  // writes the trace
    if (stage == 1) record_timed_stage(config, device, run.model, steps, dt, result);
  }
}

void print_results(const BenchOptions& options, const BenchResult& result,
                   const std::function<void(const std::string&)>& print) {
  print(fmt::format("time per iteration: {:.4f}ms, tokens/s: {:.0f}, MFU: {:.2f}%", result.ms_per_iter,
                    result.tokens_per_s, result.mfu * 100));
  print(fmt::format("peak memory of the timed steps: tensors {}{}, RSS {}",
                    result.peak_tensor_bytes >= 0 ? format_bytes(result.peak_tensor_bytes) : "not counted",
                    result.peak_reserved_bytes >= 0 ? fmt::format(" (CUDA reserved {})", format_bytes(result.peak_reserved_bytes)) : "",
                    format_bytes(result.peak_rss_bytes)));
  if (!options.profile_path.empty()) print(fmt::format("profile of the timed steps: {} (chrome://tracing)", options.profile_path));
}

}  // namespace

BenchResult bench(const TrainConfig& config, const BenchOptions& options,
                  const std::function<void(const std::string&)>& print) {
  check_options(options);
  const at::Device device = parse_device(config.device);
  at::set_num_threads(config.num_threads > 0 ? static_cast<int>(config.num_threads) : hardware_threads());
  apply_cpu_memory_mode(config.cpu_memory);
  torch::manual_seed(static_cast<uint64_t>(config.seed));

  BenchResult result;
  const BenchData data(config, options);
  result.synthetic_data = !data.real;
  const std::function<Batch()> next_batch = [&]() -> Batch { return data.next(config, device); };

  const Precision precision(config.dtype, device.type());
  BenchModel run = make_model(config, data.vocab_size, device, precision);
  result.tokens_per_iter = config.gradient_accumulation_steps * config.batch_size * config.block_size;

  find_peak_flops(config, options, device, precision, result);
  print_setup(config, options, data, precision, result, print);
  run_stages(config, options, device, run, next_batch, result, print);
  print_results(options, result, print);
  return result;
}

}  // namespace nanogpt
