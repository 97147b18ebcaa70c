#pragma once
// out_dir/ckpt.pt in Python nanoGPT's layout (torch.save's zip format, see torch_file.h):
// `model` (state_dict names of model.py), `optimizer` (torch.optim.AdamW's state_dict),
// `model_args`, `iter_num`, `best_val_loss`, `config`, plus this port's `rng_state`, which
// Python ignores. Each side loads the other's; written atomically.
#include <ATen/ATen.h>

#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "nanogpt/model/model.h"

namespace nanogpt {

struct CheckpointError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct CheckpointInfo {
  GPTConfig model_args;
  int64_t iter_num = 0;
  double best_val_loss = 1e9;
  nlohmann::json config;  // the TrainConfig that wrote it
  at::Tensor rng_state;   // CPU generator state before the pending training batch was drawn
};

// Writes `path` through a temporary file and a rename: a failure leaves the old file.
void save_checkpoint(const std::string& path, GPT& model, const torch::optim::AdamW* optimizer,
                     const CheckpointInfo& info);

// Reads the metadata only (no tensors are copied into a model).
CheckpointInfo read_checkpoint_info(const std::string& path);

// Builds the model described by the checkpoint and loads its weights.
GPT load_model(const std::string& path, CheckpointInfo* info = nullptr);

// Loads the weights into an existing model of the same shape, and the optimizer state
// when `optimizer` is given. Throws CheckpointError naming the tensor that does not fit.
void load_checkpoint_state(const std::string& path, GPT& model, torch::optim::AdamW* optimizer);

}  // namespace nanogpt
