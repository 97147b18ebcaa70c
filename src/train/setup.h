#pragma once
// Internal to the trainer: what a run starts from, before its loop. The dataset's vocabulary
// and token files, the model's shape (scratch, GPT-2 weights or a checkpoint), the memory
// plan, and the lines train.py prints about them.
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "nanogpt/interop/checkpoint.h"
#include "nanogpt/base/config.h"
#include "nanogpt/data/data.h"
#include "nanogpt/model/model.h"

namespace nanogpt::detail {

using Print = std::function<void(const std::string&)>;

// 1234567 as "1,234,567".
std::string with_commas(int64_t n);

// The dataset's vocabulary size, from meta.json or nanoGPT's meta.pkl, when it has one. A
// GPT-2 BPE dataset has none in nanoGPT (no meta.pkl), so the model gets the padded 50304.
std::optional<int64_t> meta_vocab_size(const std::string& data_dir);

// The split's token file ("train" or "val"), which must exist and hold more than block_size tokens.
TokenFile open_split(const TrainConfig& c, const std::string& name, int64_t vocab_size);

// The model's shape: the config's, or the checkpoint's when resuming (dropout may change).
GPTConfig model_args_for(const TrainConfig& config, const std::optional<int64_t>& meta_vocab,
                         const CheckpointInfo& resumed, const std::string& pretrained_dir, const Print& print);

// A run that does not resume, in an out_dir holding another run's ckpt.pt: that checkpoint
// and its metrics.jsonl move aside to ckpt.prev.pt and metrics.prev.jsonl (one earlier run is
// kept), so that a forgotten init_from=resume overwrites nothing.
void keep_previous_run(const std::string& out_dir, const Print& print);

// The planner's setting for memory_budget, applied before anything is allocated.
void apply_memory_plan(TrainConfig& config, int64_t vocab_size, const Print& print);

// nanoGPT's "num decayed parameter tensors" lines, for the two groups of configure_optimizers.
void print_parameter_groups(const torch::optim::AdamW& optimizer, const Print& print);

}  // namespace nanogpt::detail
