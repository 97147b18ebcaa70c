#pragma once
// Every setting of nanoGPT's train.py, with its default, type and checks; YAML
// loading and `--key=value` overrides in the manner of nanoGPT's configurator.py.
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace nanogpt {

// A bad config file, key or value. The message names it and says what was expected; `keys`
// are the keys a value check is about (load_config prefixes where they were set).
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
  ConfigError(const std::string& message, std::vector<std::string> keys)
      : std::runtime_error(message), keys(std::move(keys)) {}
  std::vector<std::string> keys;
};

// Where each key was last set: "path:line" of a YAML file or "command line".
using KeyOrigins = std::map<std::string, std::string>;

// init_from, parsed once: a new model, out_dir/ckpt.pt, or a GPT-2 model of Hugging Face's.
struct InitFrom {
  enum class Source { kScratch, kResume, kPretrained };
  Source source = Source::kScratch;
  std::string model;  // kPretrained: gpt2, gpt2-medium, gpt2-large or gpt2-xl

  bool scratch() const { return source == Source::kScratch; }
  bool resume() const { return source == Source::kResume; }
  bool pretrained() const { return source == Source::kPretrained; }
  // A ConfigError naming init_from for any other value.
  static InitFrom parse(const std::string& value);
};

struct TrainConfig {
  // I/O
  std::string out_dir = "out";
  int64_t eval_interval = 2000;
  int64_t log_interval = 1;
  int64_t eval_iters = 200;
  bool eval_only = false;
  bool always_save_checkpoint = true;
  std::string init_from = "scratch";
  // wandb logging (accepted for compatibility; this port logs to out_dir/metrics.jsonl)
  bool wandb_log = false;
  std::string wandb_project = "owt";
  std::string wandb_run_name = "gpt2";
  // data
  std::string dataset = "openwebtext";
  std::string data_dir;  // empty: data/<dataset>
  int64_t gradient_accumulation_steps = 5 * 8;
  int64_t batch_size = 12;
  int64_t block_size = 1024;
  // model
  int64_t n_layer = 12;
  int64_t n_head = 12;
  int64_t n_embd = 768;
  double dropout = 0.0;
  bool bias = false;
  // adamw optimizer
  double learning_rate = 6e-4;
  int64_t max_iters = 600000;
  double weight_decay = 1e-1;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double grad_clip = 1.0;
  // learning rate decay
  bool decay_lr = true;
  int64_t warmup_iters = 2000;
  int64_t lr_decay_iters = 600000;
  double min_lr = 6e-5;
  // DDP
  std::string backend = "nccl";
  // system
  std::string device = "cuda";
  std::string dtype = "float32";
  bool compile = false;
  // this port's own
  int64_t seed = 1337;
  int64_t num_threads = 0;          // 0: all hardware threads
  double mfu_peak_flops = 312e12;   // MFU denominator; nanoGPT's A100 bf16 peak
  std::string pretrained_dir;       // init_from gpt2*: the Hugging Face folder (see pretrained.h)
  // memory (this port's own, see docs/memory.md)
  std::string activation_checkpointing = "none";  // none | blocks
  int64_t checkpoint_every = 1;                    // with blocks: every Nth block
  int64_t loss_chunk_size = 0;                     // LM head + loss over N positions at a time; 0: off
  std::string memory_budget;                       // e.g. "12GiB": plan for it and cap the device at it
  std::string memory_limit;                        // cap the device without planning (a smaller device)
  bool auto_fit = false;                           // on out-of-memory: halve micro-batch, double accumulation
  std::string cpu_memory = "keep";                 // keep | release: freed CPU tensor memory (memory_stats.h)
  // data-parallel runs under torchrun (this port's own, see docs/distributed.md)
  double bucket_cap_mb = 25.0;   // gradients are all-reduced in flat buckets of about this size (DDP's default)
  int64_t ddp_timeout_s = 600;   // a collective, or a wait for rank 0, fails after this long without progress

  // data_dir, or data/<dataset> when data_dir is empty.
  std::string resolved_data_dir() const;
};

// Bytes of a size such as "12GiB", "512MiB", "1.5GB" or "1000000"; throws ConfigError
// naming `key` when it is not one.
int64_t parse_byte_size(const std::string& text, const std::string& key);

// Defaults with device "cuda" replaced by "cpu" (and backend "nccl" by "gloo") when no GPU
// is usable, the way a nanoGPT user on a CPU machine passes --device=cpu.
TrainConfig default_config();

// The names of all keys, in train.py's order followed by this port's own.
const std::vector<std::string>& config_keys();

// Set one key from its text form (YAML scalar or command-line value), type checked.
void set_config_value(TrainConfig& config, const std::string& key, const std::string& value,
                      const std::string& origin);

// Apply a YAML file (a mapping of keys to scalars) on top of `config`, noting in `origins`
// (when given) the line that set each key.
void apply_yaml_file(TrainConfig& config, const std::string& path, KeyOrigins* origins = nullptr);

// Apply `--key=value` arguments on top of `config`.
void apply_overrides(TrainConfig& config, const std::vector<std::string>& args, KeyOrigins* origins = nullptr);

// Check sizes, ranges and names; throws ConfigError naming the key (and listing it in `keys`).
void validate(const TrainConfig& config);

// Defaults, then the YAML file (if any), then the overrides, then validation, whose errors
// start with where the offending keys were set ("config.yaml:12: ...").
TrainConfig load_config(const std::string& yaml_path, const std::vector<std::string>& overrides);

nlohmann::json to_json(const TrainConfig& config);
// Keys of `j` on top of the defaults; a number that does not fit its key (a float or an
// integer past int64 for an integer key) is a ConfigError naming `origin`, the key and the value.
TrainConfig config_from_json(const nlohmann::json& j, const std::string& origin);

// The YAML text of a config, one `key: value` line per key.
std::string to_yaml(const TrainConfig& config);

}  // namespace nanogpt
