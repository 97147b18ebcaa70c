// The checks of a train config's values: validate() and the byte sizes it and the memory
// plan read (parse_byte_size).
#include "nanogpt/base/config.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "nanogpt/base/device.h"

namespace nanogpt {

namespace {

void require(bool ok, std::vector<std::string> keys, const std::string& message) {
  if (!ok) throw ConfigError(message, std::move(keys));
}

}  // namespace

int64_t parse_byte_size(const std::string& text, const std::string& key) {
  char* end = nullptr;
  const double number = std::strtod(text.c_str(), &end);
  std::string unit(end);
  unit.erase(std::remove(unit.begin(), unit.end(), ' '), unit.end());
  static const std::vector<std::pair<std::string, double>> units = {
      {"", 1.0},        {"B", 1.0},        {"KiB", 1024.0}, {"MiB", 1024.0 * 1024},
      {"GiB", 1024.0 * 1024 * 1024},       {"TiB", 1024.0 * 1024 * 1024 * 1024},
      {"KB", 1e3},      {"MB", 1e6},       {"GB", 1e9},     {"TB", 1e12}};
  for (const auto& [name, scale] : units) {
    if (end != text.c_str() && unit == name && number > 0 && std::isfinite(number)) {
      if (number * scale >= 9.2e18) break;  // past int64: no memory is that large
      return static_cast<int64_t>(number * scale);
    }
  }
  throw ConfigError(fmt::format("'{}' expects a positive size such as 12GiB, 512MiB or 1.5GB, got '{}'", key, text));
}

void validate(const TrainConfig& c) {
  auto positive = [](const char* key, int64_t v) {
    require(v > 0, {key}, fmt::format("config key '{}' must be a positive integer, got {}", key, v));
  };
  positive("n_layer", c.n_layer);
  positive("n_head", c.n_head);
  positive("n_embd", c.n_embd);
  positive("block_size", c.block_size);
  positive("batch_size", c.batch_size);
  positive("gradient_accumulation_steps", c.gradient_accumulation_steps);
  positive("eval_interval", c.eval_interval);
  positive("log_interval", c.log_interval);
  positive("eval_iters", c.eval_iters);
  require(c.max_iters >= 0, {"max_iters"}, fmt::format("config key 'max_iters' must be >= 0, got {}", c.max_iters));
  require(c.warmup_iters >= 0, {"warmup_iters"}, fmt::format("config key 'warmup_iters' must be >= 0, got {}", c.warmup_iters));
  require(c.num_threads >= 0, {"num_threads"}, fmt::format("config key 'num_threads' must be >= 0 (0 = all cores), got {}", c.num_threads));
  require(c.n_embd % c.n_head == 0, {"n_embd", "n_head"},
          fmt::format("n_embd ({}) must be divisible by n_head ({})", c.n_embd, c.n_head));
  require(c.dropout >= 0.0 && c.dropout < 1.0, {"dropout"},
          fmt::format("config key 'dropout' must be in [0, 1), got {}", c.dropout));
  require(c.learning_rate >= 0.0, {"learning_rate"}, fmt::format("config key 'learning_rate' must be >= 0, got {}", c.learning_rate));
  require(c.min_lr >= 0.0, {"min_lr"}, fmt::format("config key 'min_lr' must be >= 0, got {}", c.min_lr));
  require(c.weight_decay >= 0.0, {"weight_decay"}, fmt::format("config key 'weight_decay' must be >= 0, got {}", c.weight_decay));
  require(c.grad_clip >= 0.0, {"grad_clip"}, fmt::format("config key 'grad_clip' must be >= 0 (0 disables), got {}", c.grad_clip));
  require(c.beta1 >= 0.0 && c.beta1 < 1.0, {"beta1"}, fmt::format("config key 'beta1' must be in [0, 1), got {}", c.beta1));
  require(c.beta2 >= 0.0 && c.beta2 < 1.0, {"beta2"}, fmt::format("config key 'beta2' must be in [0, 1), got {}", c.beta2));
  require(c.mfu_peak_flops > 0.0, {"mfu_peak_flops"}, fmt::format("config key 'mfu_peak_flops' must be > 0, got {}", c.mfu_peak_flops));
  require(!c.decay_lr || c.lr_decay_iters > c.warmup_iters, {"lr_decay_iters", "warmup_iters"},
          fmt::format("lr_decay_iters ({}) must be larger than warmup_iters ({}) when decay_lr is true",
                      c.lr_decay_iters, c.warmup_iters));
  require(c.dtype == "float32" || c.dtype == "bfloat16" || c.dtype == "float16", {"dtype"},
          fmt::format("config key 'dtype' must be float32, bfloat16 or float16, got '{}'", c.dtype));
  require(c.dtype != "float16" || resolved_device_name(c.device).rfind("cuda", 0) == 0, {"dtype", "device"},
          "dtype 'float16' needs device cuda (autocast on the CPU supports bfloat16 only)");
  require(c.cpu_memory == "keep" || c.cpu_memory == "release", {"cpu_memory"},
          fmt::format("config key 'cpu_memory' must be 'keep' or 'release', got '{}'", c.cpu_memory));
  require(c.activation_checkpointing == "none" || c.activation_checkpointing == "blocks", {"activation_checkpointing"},
          fmt::format("config key 'activation_checkpointing' must be 'none' or 'blocks', got '{}'",
                      c.activation_checkpointing));
  require(c.checkpoint_every > 0, {"checkpoint_every"},
          fmt::format("config key 'checkpoint_every' must be a positive integer, got {}", c.checkpoint_every));
  auto byte_size = [](const char* key, const std::string& value) {
    if (value.empty()) return;
    try {
      parse_byte_size(value, key);
    } catch (const ConfigError& e) {
      throw ConfigError(e.what(), {key});
    }
  };
  byte_size("memory_budget", c.memory_budget);
  byte_size("memory_limit", c.memory_limit);
  require(c.loss_chunk_size >= 0, {"loss_chunk_size"},
          fmt::format("config key 'loss_chunk_size' must be >= 0 (0 = off), got {}", c.loss_chunk_size));
  InitFrom::parse(c.init_from);
  require(c.backend == "nccl" || c.backend == "gloo", {"backend"},
          fmt::format("config key 'backend' must be 'nccl' or 'gloo', got '{}'", c.backend));
  require(c.bucket_cap_mb > 0.0, {"bucket_cap_mb"}, fmt::format("config key 'bucket_cap_mb' must be > 0, got {}", c.bucket_cap_mb));
  positive("ddp_timeout_s", c.ddp_timeout_s);
  require(!c.out_dir.empty(), {"out_dir"}, "config key 'out_dir' must not be empty");
  require(!c.dataset.empty() || !c.data_dir.empty(), {"dataset", "data_dir"}, "config key 'dataset' must not be empty");
  try {
    check_device_name(c.device);
  } catch (const std::invalid_argument& e) {
    throw ConfigError(std::string("config key 'device': ") + e.what(), {"device"});
  }
}

}  // namespace nanogpt
