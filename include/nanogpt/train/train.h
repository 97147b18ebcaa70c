#pragma once
// nanoGPT's train.py: the loop with gradient accumulation, warmup + cosine LR, clipping,
// periodic eval, checkpoints and resume; data-parallel over several processes when torchrun's
// variables say so (WORLD_SIZE > 1, see distributed.h).
#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "nanogpt/base/config.h"

namespace nanogpt {

// Learning rate at iteration `it`: linear warmup, cosine decay to min_lr, then min_lr.
double get_lr(const TrainConfig& config, int64_t it);

// In a multi-process run, the losses are rank 0's; the other ranks leave them unset.
struct TrainResult {
  int64_t iter_num = 0;        // the next iteration a resume would run
  double best_val_loss = 1e9;
  double last_train_loss = 0;  // loss of the last logged iteration
  double last_val_loss = 0;    // val loss of the last eval (NaN when none ran)
  bool interrupted = false;
};

class GPT;

struct TrainHooks {
  // Polled between iterations; when it becomes true the run saves a checkpoint and stops (in
  // a multi-process run, every rank stops when any rank's flag is set).
  const std::atomic<bool>* stop_requested = nullptr;
  // Receives every line the trainer prints (default: stdout). Only rank 0 prints.
  std::function<void(const std::string&)> print;
  // Called on every rank with the trained model when the run ends without an error.
  std::function<void(GPT&)> on_finish;
};

TrainResult train(const TrainConfig& config, const TrainHooks& hooks = {});

}  // namespace nanogpt
