#include "train/train_setup.h"

#include <filesystem>
#include <tuple>

#include <fmt/format.h>

#include "nanogpt/train/memory_plan.h"
#include "nanogpt/interop/pretrained.h"
#include "nanogpt/tokenizer/char_tokenizer.h"
#include "train/train_memory.h"

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
  if (config.init_from == "scratch") {
    print("Initializing a new model from scratch");
    if (!meta_vocab) print("defaulting to vocab_size of GPT-2 to 50304 (50257 rounded up for efficiency)");
    args.vocab_size = meta_vocab.value_or(50304);
  } else if (is_pretrained_gpt2(config.init_from)) {
    print(fmt::format("Initializing from OpenAI GPT-2 weights: {} ({})", config.init_from, pretrained_dir));
    std::string note;
    args = read_pretrained_config(pretrained_dir, config.init_from, config.dropout, &note);
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

}  // namespace nanogpt::detail
