// nanoGPT's train.py: get_lr, and the training loop with its steps (the set-up that precedes
// it is in setup.cpp).
#include "nanogpt/train/train.h"

#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "nanogpt/base/compat.h"
#include "train/memory_report.h"
#include "train/trainer.h"

namespace nanogpt {

double get_lr(const TrainConfig& c, int64_t it) {
  // 1) linear warmup for warmup_iters steps
  if (it < c.warmup_iters) return c.learning_rate * static_cast<double>(it + 1) / static_cast<double>(c.warmup_iters + 1);
  // 2) past lr_decay_iters, the minimum learning rate
  if (it > c.lr_decay_iters) return c.min_lr;
  // 3) in between, cosine decay down to the minimum
  const double decay_ratio =
      static_cast<double>(it - c.warmup_iters) / static_cast<double>(c.lr_decay_iters - c.warmup_iters);
  const double coeff = 0.5 * (1.0 + std::cos(M_PI * decay_ratio));
  return c.min_lr + coeff * (c.learning_rate - c.min_lr);
}

TrainResult train(const TrainConfig& config, const TrainHooks& hooks) {
  detail::Trainer trainer(config, hooks);
  return trainer.run();
}

namespace detail {

namespace {

void set_learning_rate(torch::optim::AdamW& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) {
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  }
}

}  // namespace

TrainResult Trainer::run() {
  result_.last_val_loss = std::nan("");
  batch_ = next_train_batch();  // fetch the very first batch
  reset_memory_peaks(device_);
  auto t0 = std::chrono::steady_clock::now();
  while (true) {
    // determine and set the learning rate for this iteration
    const double lr = config_.decay_lr ? get_lr(config_, iter_num_) : config_.learning_rate;
    set_learning_rate(*optimizer_, lr);

    // evaluate the loss on train/val sets and write checkpoints
    if (iter_num_ % config_.eval_interval == 0 || config_.eval_only) {
      evaluate_and_checkpoint(lr);
      if (config_.eval_only) break;
    }

    // forward backward update, with gradient accumulation to simulate a larger batch
    forward_backward();
    optimizer_step();

    // timing and logging
    const auto t1 = std::chrono::steady_clock::now();
    const double dt = std::chrono::duration<double>(t1 - t0).count();
    t0 = t1;
    if (iter_num_ % config_.log_interval == 0) stop_if_diverged();  // a host sync: only at log intervals
    if (iter_num_ % config_.log_interval == 0 && master_process_) log_iteration(dt, lr);
    iter_num_ += 1;
    local_iter_num_ += 1;

    if (stop_requested()) {
      stop_if_diverged();
      print_(fmt::format("interrupted at iteration {}", iter_num_));
      on_master("checkpoint", [&] { save(iter_num_); });
      result_.interrupted = true;
      break;
    }
    // termination conditions
    if (iter_num_ > config_.max_iters) break;
  }
  stop_if_diverged();
  if (ddp_) process_group_->barrier();
  result_.iter_num = iter_num_;
  result_.best_val_loss = best_val_loss_;
  if (hooks_.on_finish) hooks_.on_finish(model_);
  return result_;
}

at::Tensor Trainer::forward_loss(const at::Tensor& x, const at::Tensor& y) {
  std::optional<AutocastGuard> guard;
  if (precision_->autocast) guard.emplace(device_.type(), *precision_->autocast);
  return std::get<1>(model_->forward(x, y));
}

Batch Trainer::next_train_batch() {
  if (shards_) return shards_->next_train();
  pending_batch_rng_state_ = rng_state(at::kCPU);
  return get_batch(*train_data_, batch_size_, config_.block_size, device_);
}

// helps estimate an arbitrarily accurate loss over either split using many batches
std::map<std::string, double> Trainer::estimate_loss() {
  torch::NoGradGuard no_grad;
  model_->eval();
  std::map<std::string, double> out;
  for (const std::string split : {"train", "val"}) {
    at::Tensor losses = torch::zeros({config_.eval_iters});
    for (int64_t k = 0; k < config_.eval_iters; ++k) {
      auto [X, Y] = shards_ ? shards_->next_eval(split)
                            : get_batch(split == "train" ? *train_data_ : *val_data_, batch_size_, config_.block_size,
                                        device_);
      losses[k] = forward_loss(X, Y).item<float>();
    }
    out[split] = losses.mean().item<float>();
  }
  model_->train();
  return out;
}

void Trainer::evaluate_and_checkpoint(double lr) {
  stop_if_diverged();
  on_master("evaluation", [&] {
    auto losses = estimate_loss();
    for (const auto& [split, value] : losses) finite_watch_.observe(at::scalar_tensor(value), iter_num_, split + " loss");
    stop_if_diverged();  // before a checkpoint could take the weights
    print_(fmt::format("step {}: train loss {:.4f}, val loss {:.4f}", iter_num_, losses["train"], losses["val"]));
    metrics_->write({{"kind", "eval"}, {"iter", iter_num_}, {"train_loss", losses["train"]},
                     {"val_loss", losses["val"]}, {"lr", lr}});
    result_.last_val_loss = losses["val"];
    if (!config_.eval_only && (losses["val"] < best_val_loss_ || config_.always_save_checkpoint)) {
      best_val_loss_ = losses["val"];
      if (iter_num_ > 0) save(iter_num_);
    }
  });
}

void Trainer::forward_backward() {
  while (true) {
    try {
      for (int64_t micro_step = 0; micro_step < gradient_accumulation_steps_; ++micro_step) {
        // in DDP training we only need to sync gradients at the last micro step
        if (ddp_) ddp_model_->require_backward_grad_sync = (micro_step == gradient_accumulation_steps_ - 1);
        loss_ = forward_loss(batch_.first, batch_.second) / static_cast<double>(gradient_accumulation_steps_);
        batch_ = next_train_batch();  // prefetch while the device works on the forward pass
        scaler_.scale(loss_).backward();
      }
      if (ddp_) ddp_model_->finish_gradient_sync();  // the gradients averaged over all ranks
      if (!scaler_.enabled()) finite_watch_.observe(loss_, iter_num_, "loss");
      return;
    } catch (const std::exception& error) {
      if (!is_out_of_memory(error)) throw;
      halve_micro_batch_after(error);
    }
  }
}

// auto_fit: the iteration runs again at half the micro-batch and twice the accumulation steps
// (the same tokens per iteration); without auto_fit the error says what would fit.
void Trainer::halve_micro_batch_after(const std::exception& out_of_memory) {
  loss_ = at::Tensor();
  zero_grad_set_to_none(model_->parameters());
  release_cached_memory(device_);
  if (!config_.auto_fit || batch_size_ % 2 != 0) {
    TrainConfig failed = config_;
    failed.batch_size = batch_size_;
    failed.gradient_accumulation_steps = gradient_accumulation_steps_;
    throw std::runtime_error(out_of_memory_advice(failed, model_args_.vocab_size, out_of_memory));
  }
  batch_size_ /= 2;
  gradient_accumulation_steps_ *= 2;
  config_json_["batch_size"] = batch_size_;
  config_json_["gradient_accumulation_steps"] = gradient_accumulation_steps_;
  print_(fmt::format("out of memory at iteration {}: auto_fit halves the micro-batch to {} and doubles "
                     "gradient_accumulation_steps to {} (tokens per iteration unchanged), then redoes the iteration",
                     iter_num_, batch_size_, gradient_accumulation_steps_));
  batch_ = next_train_batch();
}

void Trainer::optimizer_step() {
  // clip the gradient
  if (config_.grad_clip != 0.0) {
    scaler_.unscale(model_->parameters());
    const at::Tensor grad_norm = clip_grad_norm(model_->parameters(), config_.grad_clip);
    if (!scaler_.enabled()) finite_watch_.observe(grad_norm, iter_num_, "gradient norm");
  }
  // step the optimizer and scaler if training in fp16
  if (!scaler_.step(*optimizer_, model_->parameters())) {
    print_(fmt::format("iter {}: inf/NaN gradients at loss scale {}, step skipped", iter_num_, scaler_.scale()));
  }
  scaler_.update();
  zero_grad_set_to_none(model_->parameters());  // free the gradients as soon as possible
}

void Trainer::log_iteration(double dt, double lr) {
  const double lossf = loss_.item<double>() * static_cast<double>(gradient_accumulation_steps_);
  if (local_iter_num_ >= 5) {  // let the training loop settle a bit
    const double mfu = model_->estimate_mfu(batch_size_ * gradient_accumulation_steps_, dt, config_.mfu_peak_flops);
    running_mfu_ = running_mfu_ == -1.0 ? mfu : 0.9 * running_mfu_ + 0.1 * mfu;
  }
  const MemoryPeaks peaks = memory_peaks(device_);
  const DistributedDataParallel::SyncTimes sync =
      ddp_ ? ddp_model_->last_sync_times() : DistributedDataParallel::SyncTimes{};
  print_(fmt::format("iter {}: loss {:.4f}, time {:.2f}ms, mfu {:.2f}%{}{}", iter_num_, lossf, dt * 1000,
                     running_mfu_ * 100, peaks_text(peaks),
                     ddp_ ? fmt::format(", allreduce {:.2f}ms ({:.2f}ms exposed)", sync.allreduce_ms, sync.exposed_ms)
                          : ""));
  nlohmann::json record = {{"kind", "iter"},
                           {"iter", iter_num_},
                           {"loss", lossf},
                           {"lr", lr},
                           {"ms", dt * 1000},
                           {"tokens_per_s", static_cast<double>(tokens_per_iter_) / dt},
                           {"mfu", running_mfu_ < 0 ? nlohmann::json(nullptr) : nlohmann::json(running_mfu_)}};
  record.update(peaks_json(peaks));
  if (ddp_) record.update({{"allreduce_ms", sync.allreduce_ms}, {"allreduce_exposed_ms", sync.exposed_ms}});
  metrics_->write(record);
  reset_memory_peaks(device_);  // each log line reports the peak of its own window
  result_.last_train_loss = lossf;
}

bool Trainer::stop_requested() {
  bool stop = hooks_.stop_requested != nullptr && hooks_.stop_requested->load();
  if (ddp_) stop = process_group_->any(stop);  // Ctrl-C reaches the ranks at different iterations
  return stop;
}

void Trainer::save(int64_t at_iter) {
  CheckpointInfo info{model_args_, at_iter, best_val_loss_, config_json_,
                      shards_ ? shards_->pending_rng_state() : pending_batch_rng_state_};
  print_(fmt::format("saving checkpoint to {}", config_.out_dir));
  save_checkpoint(ckpt_path_, model_, optimizer_.get(), info);
  saved_iter_ = at_iter;
}

void Trainer::stop_if_diverged() {
  const std::string diverged = finite_watch_.first_non_finite();
  if (diverged.empty()) return;
  throw NumericalError(fmt::format(
      "{}; the run stopped without saving after it{}. Lower learning_rate or set grad_clip.", diverged,
      saved_iter_ >= 0 ? fmt::format(" ({} holds iteration {})", ckpt_path_, saved_iter_) : ""));
}

// rank 0 alone evaluates and writes checkpoints; the other ranks wait for it
void Trainer::on_master(const std::string& what, const std::function<void()>& work) {
  if (process_group_) {
    process_group_->run_on_rank0(what, work);
  } else {
    work();
  }
}

}  // namespace detail

}  // namespace nanogpt
