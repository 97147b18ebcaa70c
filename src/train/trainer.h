#pragma once
// Internal to train(): one run, what nanoGPT's train.py keeps in its globals, and the steps
// of its loop. The set-up is in setup.cpp, the loop in train.cpp.
#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "nanogpt/base/config.h"
#include "nanogpt/data/data.h"
#include "nanogpt/distributed/distributed.h"
#include "nanogpt/interop/checkpoint.h"
#include "nanogpt/memory/memory_stats.h"
#include "nanogpt/model/model.h"
#include "nanogpt/train/finite_watch.h"
#include "nanogpt/train/grad_scaler.h"
#include "nanogpt/train/metrics.h"
#include "nanogpt/train/precision.h"
#include "nanogpt/train/train.h"
#include "nanogpt/train/step.h"
#include "train/setup.h"

namespace nanogpt::detail {

class Trainer {
 public:
  Trainer(const TrainConfig& config, const TrainHooks& hooks);
  TrainResult run();

 private:
  // set-up, in train.py's order (setup.cpp)
  void set_up_device();
  void set_up_data_and_shape();
  void set_up_model();
  void set_up_data_parallel();
  void set_up_outputs();

  // the loop's steps (train.cpp)
  at::Tensor forward_loss(const at::Tensor& x, const at::Tensor& y);
  Batch next_train_batch();
  std::map<std::string, double> estimate_loss();
  void evaluate_and_checkpoint(double lr);
  void forward_backward();
  void halve_micro_batch_after(const std::exception& out_of_memory);
  void optimizer_step();
  void log_iteration(double dt, double lr);
  bool stop_requested();
  void save(int64_t at_iter);
  void stop_if_diverged();
  void on_master(const std::string& what, const std::function<void()>& work);

  TrainConfig config_;  // memory_budget and auto_fit may change its memory setting
  const TrainHooks& hooks_;
  // several processes under torchrun: this one is a rank of a data-parallel run
  const DistributedEnv ddp_env_;
  const bool ddp_;
  const bool master_process_;  // this process will do logging, checkpointing etc.
  Print print_;
  at::Device device_{at::kCPU};
  std::optional<Precision> precision_;
  InitFrom init_;
  // auto_fit may trade micro-batch for accumulation steps; their product stays fixed
  int64_t batch_size_ = 0;
  int64_t gradient_accumulation_steps_ = 0;
  int64_t tokens_per_iter_ = 0;
  std::optional<ScopedDeviceMemoryLimit> device_cap_;  // a cap on the device's tensor memory

  std::string ckpt_path_;
  CheckpointInfo resumed_;
  std::string pretrained_dir_;
  GPTConfig model_args_;
  std::optional<TokenFile> train_data_;
  std::optional<TokenFile> val_data_;
  std::unique_ptr<ProcessGroup> process_group_;
  GPT model_{nullptr};
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  GradScaler scaler_{false};
  // a diverged run stops before it writes NaN weights; with float16 the scaler skips such steps
  // (so the watch observes losses and gradient norms only where the scaler is off)
  FiniteWatch finite_watch_;
  // data parallel: rank 0's weights everywhere, gradients averaged over the ranks on the last
  // micro-step; the batches of a one-process run, shared out; dropout from a per-rank stream
  std::unique_ptr<DistributedDataParallel> ddp_model_;
  std::optional<ShardedBatches> shards_;
  nlohmann::json config_json_;
  std::optional<MetricsLog> metrics_;

  int64_t iter_num_ = 0;
  int64_t local_iter_num_ = 0;
  double best_val_loss_ = 1e9;
  int64_t saved_iter_ = -1;  // the iteration ckpt_path_ holds
  double running_mfu_ = -1.0;
  // The generator state before each training batch is drawn: a checkpoint stores the state
  // before the pending batch, so that a resumed run draws that same batch again.
  at::Tensor pending_batch_rng_state_;
  Batch batch_;
  at::Tensor loss_;
  TrainResult result_;
};

}  // namespace nanogpt::detail
