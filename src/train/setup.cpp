#include "train/setup.h"

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <tuple>

#include <fmt/format.h>

#include "nanogpt/base/compat.h"
#include "nanogpt/base/device.h"
#include "nanogpt/base/fileio.h"
#include "nanogpt/train/memory_plan.h"
#include "nanogpt/interop/pretrained.h"
#include "nanogpt/tokenizer/char_tokenizer.h"
#include "train/memory_report.h"
#include "train/trainer.h"

namespace nanogpt::detail {

namespace fs = std::filesystem;

std::string with_commas(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::optional<int64_t> meta_vocab_size(const std::string& data_dir) {
  const std::optional<DatasetMeta> meta = read_dataset_meta(data_dir);
  return meta && meta->tokenizer != "gpt2" ? std::optional<int64_t>(meta->vocab_size) : std::nullopt;
}

TokenFile open_split(const TrainConfig& c, const std::string& name, int64_t vocab_size) {
  const fs::path path = fs::path(c.resolved_data_dir()) / (name + ".bin");
  if (!fs::exists(path)) {
    throw DataError(fmt::format("token file '{}' does not exist; prepare the dataset first (see data/README.md) "
                                "or set data_dir",
                                path.string()));
  }
  TokenFile file(path.string(), vocab_size);
  if (file.size() <= c.block_size) {
    throw DataError(fmt::format("token file '{}' has {} tokens; block_size {} needs at least {}", path.string(),
                                file.size(), c.block_size, c.block_size + 1));
  }
  return file;
}

GPTConfig model_args_for(const TrainConfig& config, const std::optional<int64_t>& meta_vocab,
                         const CheckpointInfo& resumed, const std::string& pretrained_dir, const Print& print) {
  GPTConfig args{config.block_size, 0, config.n_layer, config.n_head, config.n_embd, config.dropout, config.bias};
  const InitFrom init = InitFrom::parse(config.init_from);
  if (init.scratch()) {
    print("Initializing a new model from scratch");
    if (!meta_vocab) print("defaulting to vocab_size of GPT-2 to 50304 (50257 rounded up for efficiency)");
    args.vocab_size = meta_vocab.value_or(50304);
  } else if (init.pretrained()) {
    print(fmt::format("Initializing from OpenAI GPT-2 weights: {} ({})", init.model, pretrained_dir));
    std::string note;
    args = read_pretrained_config(pretrained_dir, init.model, config.dropout, &note);
    if (!note.empty()) print(note);
  } else {
    print(fmt::format("Resuming training from {}", config.out_dir));
    const GPTConfig& saved = resumed.model_args;
    // the batches are config.block_size long, the model's positions the checkpoint's
    if (config.block_size != saved.block_size) {
      throw ConfigError(fmt::format("block_size is {} but the checkpoint in '{}' has {}: resuming keeps the model's "
                                    "shape, so set block_size: {}",
                                    config.block_size, config.out_dir, saved.block_size, saved.block_size));
    }
    auto text = [](bool b) { return std::string(b ? "true" : "false"); };
    for (const auto& [key, mine, theirs] :
         {std::tuple{"n_layer", std::to_string(config.n_layer), std::to_string(saved.n_layer)},
          std::tuple{"n_head", std::to_string(config.n_head), std::to_string(saved.n_head)},
          std::tuple{"n_embd", std::to_string(config.n_embd), std::to_string(saved.n_embd)},
          std::tuple{"bias", text(config.bias), text(saved.bias)}}) {
      if (mine != theirs) {
        print(fmt::format("note: resuming keeps the checkpoint's {} {} (the config's {} is not used, as in nanoGPT)", key,
                          theirs, mine));
      }
    }
    args = {saved.block_size, saved.vocab_size, saved.n_layer, saved.n_head, saved.n_embd, config.dropout, saved.bias};
  }
  if (meta_vocab && args.vocab_size < *meta_vocab) {
    throw DataError(fmt::format("the model's vocab_size {} is smaller than the dataset's {}", args.vocab_size,
                                *meta_vocab));
  }
  return args;
}

void keep_previous_run(const std::string& out_dir, const Print& print) {
  const fs::path dir(out_dir);
  if (!fs::exists(dir / "ckpt.pt")) return;
  fs::rename(dir / "ckpt.pt", dir / "ckpt.prev.pt");
  std::string metrics_note;
  if (fs::exists(dir / "metrics.jsonl")) {
    fs::rename(dir / "metrics.jsonl", dir / "metrics.prev.jsonl");
    metrics_note = " and its metrics.jsonl to metrics.prev.jsonl";
  }
  print(fmt::format("note: {} held the checkpoint of an earlier run: moved it to ckpt.prev.pt{} (init_from=resume "
                    "continues a run instead)",
                    out_dir, metrics_note));
}

void apply_memory_plan(TrainConfig& config, int64_t vocab_size, const Print& print) {
  const int64_t budget = parse_byte_size(config.memory_budget, "memory_budget");
  const MemoryPlan plan = plan_memory(config, vocab_size, memory_device_from_name(config.device), budget);
  config.batch_size = plan.config.batch_size;
  config.gradient_accumulation_steps = plan.config.gradient_accumulation_steps;
  config.activation_checkpointing = plan.config.activation_checkpointing;
  config.checkpoint_every = plan.config.checkpoint_every;
  config.loss_chunk_size = plan.config.loss_chunk_size;
  print(fmt::format("memory plan for {}: {} (estimated peak {})", config.memory_budget, describe_setting(config),
                    format_bytes(plan.estimate.total_bytes)));
}

void print_parameter_groups(const torch::optim::AdamW& optimizer, const Print& print) {
  for (size_t g = 0; g < 2; ++g) {
    int64_t n = 0;
    for (const auto& p : optimizer.param_groups()[g].params()) n += p.numel();
    print(fmt::format("num {}decayed parameter tensors: {}, with {} parameters", g == 0 ? "" : "non-",
                      optimizer.param_groups()[g].params().size(), with_commas(n)));
  }
}

Trainer::Trainer(const TrainConfig& config, const TrainHooks& hooks)
    : config_(config),
      hooks_(hooks),
      ddp_env_(read_distributed_env()),
      ddp_(ddp_env_.is_distributed()),
      master_process_(ddp_env_.rank == 0),
      init_(InitFrom::parse(config.init_from)) {
  print_ = !master_process_ ? Print([](const std::string&) {})
           : hooks.print    ? hooks.print
                            : Print([](const std::string& line) { std::cout << line << std::endl; });
  set_up_device();
  set_up_data_and_shape();
  set_up_model();
  set_up_data_parallel();
  set_up_outputs();
}

void Trainer::set_up_device() {
  device_ = device_for_rank(parse_device(config_.device), ddp_env_);
  // all cores by default, shared among the processes of this machine
  const int threads = config_.num_threads > 0 ? static_cast<int>(config_.num_threads)
                                              : std::max(1, hardware_threads() / ddp_env_.local_world_size);
  at::set_num_threads(threads);
  apply_cpu_memory_mode(config_.cpu_memory);
  if (ddp_ && config_.auto_fit) {
    throw ConfigError(fmt::format("config key 'auto_fit' is for one process only (WORLD_SIZE is {}): every rank "
                                  "would have to change its micro-batch at once; set auto_fit: false",
                                  ddp_env_.world_size));
  }
  batch_size_ = config_.batch_size;
  gradient_accumulation_steps_ = config_.gradient_accumulation_steps;
  tokens_per_iter_ = gradient_accumulation_steps_ * batch_size_ * config_.block_size;
  print_(fmt::format("tokens per iteration will be: {}", with_commas(tokens_per_iter_)));
  print_(fmt::format("device: {}, {}, {}", device_choice(config_.device, device_), cpu_threads_summary(),
                     torch_build_summary()));
  precision_.emplace(config_.dtype, device_.type());
  if (const std::string note = precision_->cpu_note(); !note.empty()) print_(note);

  if (master_process_) create_folder(config_.out_dir, "out_dir");
  // a cap on the device's tensor memory, as a smaller device would have
  const std::string& cap = !config_.memory_limit.empty() ? config_.memory_limit : config_.memory_budget;
  device_cap_.emplace(device_, cap.empty() ? 0 : parse_byte_size(cap, "memory_limit"));
  if (!cap.empty()) print_(fmt::format("device memory capped at {}: tensors beyond it fail as out of memory", cap));
  torch::manual_seed(static_cast<uint64_t>(config_.seed));
}

void Trainer::set_up_data_and_shape() {
  const std::optional<int64_t> meta_vocab = meta_vocab_size(config_.resolved_data_dir());
  if (meta_vocab) print_(fmt::format("found vocab_size = {} (inside {})", *meta_vocab, config_.resolved_data_dir()));
  ckpt_path_ = (fs::path(config_.out_dir) / "ckpt.pt").string();
  if (init_.resume()) resumed_ = read_checkpoint_info(ckpt_path_);
  if (init_.pretrained()) pretrained_dir_ = find_pretrained_dir(init_.model, config_.pretrained_dir);
  model_args_ = model_args_for(config_, meta_vocab, resumed_, pretrained_dir_, print_);

  // poor man's data loader: memory-mapped token files, random windows (ids checked against the model's vocabulary)
  train_data_.emplace(open_split(config_, "train", model_args_.vocab_size));
  val_data_.emplace(open_split(config_, "val", model_args_.vocab_size));
  if (!config_.memory_budget.empty()) {
    apply_memory_plan(config_, model_args_.vocab_size, print_);
    batch_size_ = config_.batch_size;
    gradient_accumulation_steps_ = config_.gradient_accumulation_steps;
  }
  if (ddp_) {
    // world_size number of processes will be training simultaneously, so we can scale
    // down the desired gradient accumulation iterations per process proportionally
    if (gradient_accumulation_steps_ % ddp_env_.world_size != 0) {
      throw ConfigError(fmt::format("config key 'gradient_accumulation_steps' ({}) must be divisible by WORLD_SIZE "
                                    "({}): each rank runs gradient_accumulation_steps / WORLD_SIZE micro-steps",
                                    gradient_accumulation_steps_, ddp_env_.world_size));
    }
    gradient_accumulation_steps_ /= ddp_env_.world_size;
    process_group_ = std::make_unique<ProcessGroup>(ddp_env_, config_.backend, device_,
                                                    std::chrono::seconds(config_.ddp_timeout_s));
  }
}

void Trainer::set_up_model() {
  model_ = GPT(model_args_);
  print_(fmt::format("number of parameters: {:.2f}M", model_->get_num_params() / 1e6));
  if (!pretrained_dir_.empty()) load_pretrained_weights(pretrained_dir_, model_);
  if (config_.block_size < model_->config.block_size) {
    model_->crop_block_size(config_.block_size);
    model_args_.block_size = config_.block_size;
  }
  model_->to(device_);
  model_->checkpoint_every = config_.activation_checkpointing == "blocks" ? config_.checkpoint_every : 0;
  model_->loss_chunk_size = config_.loss_chunk_size;
  // weights and optimizer state stay fp32; the forward runs under autocast
  scaler_ = GradScaler(precision_->scales_gradients);
  saved_iter_ = init_.resume() ? resumed_.iter_num : -1;

  optimizer_ = model_->configure_optimizers(config_.weight_decay, config_.learning_rate, {config_.beta1, config_.beta2});
  print_parameter_groups(*optimizer_, print_);
  if (init_.resume()) {
    load_checkpoint_state(ckpt_path_, model_, optimizer_.get());
    iter_num_ = resumed_.iter_num;
    best_val_loss_ = resumed_.best_val_loss;
    if (resumed_.rng_state.defined() && !ddp_) set_rng_state(at::kCPU, resumed_.rng_state);
  }
}

void Trainer::set_up_data_parallel() {
  if (!ddp_) return;
  const auto bucket_bytes = static_cast<int64_t>(config_.bucket_cap_mb * 1024 * 1024);
  ddp_model_ = std::make_unique<DistributedDataParallel>(*process_group_, model_->parameters(), bucket_bytes);
  ShardedBatches::Options options;
  options.batch_size = batch_size_;
  options.block_size = config_.block_size;
  options.micro_steps = gradient_accumulation_steps_ * ddp_env_.world_size;
  options.eval_iters = config_.eval_iters;
  options.rank = ddp_env_.rank;
  options.world_size = ddp_env_.world_size;
  auto evaluates = [this](int64_t it) { return it % config_.eval_interval == 0 || config_.eval_only; };
  shards_.emplace(*train_data_, *val_data_, options, device_,
                  resumed_.rng_state.defined() ? resumed_.rng_state : rng_state(at::kCPU), evaluates, iter_num_);
  torch::manual_seed(static_cast<uint64_t>(config_.seed + ddp_env_.rank));
  print_(fmt::format("data parallel: {} ranks ({} on this machine), backend {}, {} micro-steps per rank, gradients "
                     "in {} bucket(s) of up to {} MiB",
                     ddp_env_.world_size, ddp_env_.local_world_size, config_.backend, gradient_accumulation_steps_,
                     ddp_model_->num_buckets(), config_.bucket_cap_mb));
}

void Trainer::set_up_outputs() {
  config_json_ = to_json(config_);
  // an eval_only run writes no checkpoint: it leaves out_dir's as it is and adds to its metrics
  const bool continues = init_.resume() || config_.eval_only;
  if (master_process_ && !continues) keep_previous_run(config_.out_dir, print_);
  if (master_process_) metrics_.emplace((fs::path(config_.out_dir) / "metrics.jsonl").string(), continues);
}

}  // namespace nanogpt::detail
