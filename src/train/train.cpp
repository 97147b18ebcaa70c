// nanoGPT's train.py as one readable loop: set-up, get_batch, estimate_loss, get_lr, the loop
// (the set-up's helpers are in train_setup.cpp, what it says of memory in train_memory.cpp).
#include "nanogpt/train/train.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "nanogpt/interop/checkpoint.h"
#include "nanogpt/interop/pretrained.h"
#include "nanogpt/train/training_step.h"
#include "nanogpt/base/compat.h"
#include "nanogpt/data/data.h"
#include "nanogpt/distributed/distributed.h"
#include "nanogpt/base/fileio.h"
#include "nanogpt/train/finite_watch.h"
#include "nanogpt/train/grad_scaler.h"
#include "nanogpt/memory/memory_stats.h"
#include "nanogpt/train/metrics.h"
#include "nanogpt/model/model.h"
#include "train/train_memory.h"
#include "train/train_setup.h"

namespace nanogpt {

namespace fs = std::filesystem;

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

namespace {

using detail::apply_memory_plan;
using detail::keep_previous_run;
using detail::meta_vocab_size;
using detail::model_args_for;
using detail::open_split;
using detail::out_of_memory_advice;
using detail::peaks_json;
using detail::peaks_text;
using detail::print_parameter_groups;
using detail::Print;
using detail::with_commas;

void set_learning_rate(torch::optim::AdamW& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) {
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  }
}

}  // namespace

TrainResult train(const TrainConfig& requested, const TrainHooks& hooks) {
  TrainConfig config = requested;  // memory_budget and auto_fit may change its memory setting
  // several processes under torchrun: this one is a rank of a data-parallel run
  const DistributedEnv ddp_env = read_distributed_env();
  const bool ddp = ddp_env.is_distributed();
  const bool master_process = ddp_env.rank == 0;  // this process will do logging, checkpointing etc.
  const Print print = !master_process ? Print([](const std::string&) {})
                      : hooks.print   ? hooks.print
                                      : Print([](const std::string& line) { std::cout << line << std::endl; });
  const at::Device device = device_for_rank(parse_device(config.device), ddp_env);
  // all cores by default, shared among the processes of this machine
  const int threads = config.num_threads > 0 ? static_cast<int>(config.num_threads)
                                             : std::max(1, hardware_threads() / ddp_env.local_world_size);
  at::set_num_threads(threads);
  apply_cpu_memory_mode(config.cpu_memory);
  if (ddp && config.auto_fit) {
    throw ConfigError(fmt::format("config key 'auto_fit' is for one process only (WORLD_SIZE is {}): every rank "
                                  "would have to change its micro-batch at once; set auto_fit: false",
                                  ddp_env.world_size));
  }
  // auto_fit may trade micro-batch for accumulation steps; their product stays fixed
  int64_t batch_size = config.batch_size;
  int64_t gradient_accumulation_steps = config.gradient_accumulation_steps;
  const int64_t tokens_per_iter = gradient_accumulation_steps * batch_size * config.block_size;
  print(fmt::format("tokens per iteration will be: {}", with_commas(tokens_per_iter)));
  print(fmt::format("device: {}, {}, {}", device_choice(config.device, device), cpu_threads_summary(),
                    torch_build_summary()));
  if (const std::string note = cpu_bf16_note(device, config.dtype); !note.empty()) print(note);

  if (master_process) create_folder(config.out_dir, "out_dir");
  // a cap on the device's tensor memory, as a smaller device would have
  const std::string& cap = !config.memory_limit.empty() ? config.memory_limit : config.memory_budget;
  const ScopedDeviceMemoryLimit device_cap(device, cap.empty() ? 0 : parse_byte_size(cap, "memory_limit"));
  if (!cap.empty()) print(fmt::format("device memory capped at {}: tensors beyond it fail as out of memory", cap));
  torch::manual_seed(static_cast<uint64_t>(config.seed));

  int64_t iter_num = 0;
  double best_val_loss = 1e9;
  std::unique_ptr<ProcessGroup> process_group;
  const std::optional<int64_t> meta_vocab = meta_vocab_size(config.resolved_data_dir());
  if (meta_vocab) print(fmt::format("found vocab_size = {} (inside {})", *meta_vocab, config.resolved_data_dir()));

  const std::string ckpt_path = (fs::path(config.out_dir) / "ckpt.pt").string();
  CheckpointInfo resumed;
  if (config.init_from == "resume") resumed = read_checkpoint_info(ckpt_path);
  const std::string pretrained_dir =
      is_pretrained_gpt2(config.init_from) ? find_pretrained_dir(config.init_from, config.pretrained_dir) : "";
  GPTConfig model_args = model_args_for(config, meta_vocab, resumed, pretrained_dir, print);

  // poor man's data loader: memory-mapped token files, random windows (ids checked against the model's vocabulary)
  const TokenFile train_data = open_split(config, "train", model_args.vocab_size);
  const TokenFile val_data = open_split(config, "val", model_args.vocab_size);
  auto get_batch_split = [&](const std::string& split) {
    return get_batch(split == "train" ? train_data : val_data, batch_size, config.block_size, device);
  };
  if (!config.memory_budget.empty()) {
    apply_memory_plan(config, model_args.vocab_size, print);
    batch_size = config.batch_size;
    gradient_accumulation_steps = config.gradient_accumulation_steps;
  }
  if (ddp) {
    // world_size number of processes will be training simultaneously, so we can scale
    // down the desired gradient accumulation iterations per process proportionally
    if (gradient_accumulation_steps % ddp_env.world_size != 0) {
      throw ConfigError(fmt::format("config key 'gradient_accumulation_steps' ({}) must be divisible by WORLD_SIZE "
                                    "({}): each rank runs gradient_accumulation_steps / WORLD_SIZE micro-steps",
                                    gradient_accumulation_steps, ddp_env.world_size));
    }
    gradient_accumulation_steps /= ddp_env.world_size;
    process_group = std::make_unique<ProcessGroup>(ddp_env, config.backend, device,
                                                   std::chrono::seconds(config.ddp_timeout_s));
  }
  GPT model(model_args);
  print(fmt::format("number of parameters: {:.2f}M", model->get_num_params() / 1e6));
  if (!pretrained_dir.empty()) load_pretrained_weights(pretrained_dir, model);
  if (config.block_size < model->config.block_size) {
    model->crop_block_size(config.block_size);
    model_args.block_size = config.block_size;
  }
  model->to(device);
  model->checkpoint_every = config.activation_checkpointing == "blocks" ? config.checkpoint_every : 0;
  model->loss_chunk_size = config.loss_chunk_size;
  // weights and optimizer state stay fp32; the forward runs under autocast
  const std::optional<AutocastState> autocast = autocast_for(config.dtype);
  auto forward_loss = [&](const at::Tensor& x, const at::Tensor& y) {
    std::optional<AutocastGuard> guard;
    if (autocast) guard.emplace(device.type(), *autocast);
    return std::get<1>(model->forward(x, y));
  };
  GradScaler scaler(config.dtype == "float16");
  // a diverged run stops before it writes NaN weights; with float16 the scaler skips such steps
  FiniteWatch finite_watch;
  int64_t saved_iter = config.init_from == "resume" ? resumed.iter_num : -1;  // the iteration ckpt_path holds
  const bool watch_finite = !scaler.enabled();
  auto stop_if_diverged = [&] {
    const std::string diverged = finite_watch.first_non_finite();
    if (diverged.empty()) return;
    throw NumericalError(fmt::format(
        "{}; the run stopped without saving after it{}. Lower learning_rate or set grad_clip.", diverged,
        saved_iter >= 0 ? fmt::format(" ({} holds iteration {})", ckpt_path, saved_iter) : ""));
  };

  auto optimizer = model->configure_optimizers(config.weight_decay, config.learning_rate, {config.beta1, config.beta2});
  print_parameter_groups(*optimizer, print);
  if (config.init_from == "resume") {
    load_checkpoint_state(ckpt_path, model, optimizer.get());
    iter_num = resumed.iter_num;
    best_val_loss = resumed.best_val_loss;
    if (resumed.rng_state.defined() && !ddp) set_rng_state(at::kCPU, resumed.rng_state);
  }

  // data parallel: rank 0's weights everywhere, gradients averaged over the ranks on the last
  // micro-step; the batches of a one-process run, shared out; dropout from a per-rank stream
  std::unique_ptr<DistributedDataParallel> ddp_model;
  std::optional<ShardedBatches> shards;
  if (ddp) {
    const auto bucket_bytes = static_cast<int64_t>(config.bucket_cap_mb * 1024 * 1024);
    ddp_model = std::make_unique<DistributedDataParallel>(*process_group, model->parameters(), bucket_bytes);
    ShardedBatches::Options options;
    options.batch_size = batch_size;
    options.block_size = config.block_size;
    options.micro_steps = gradient_accumulation_steps * ddp_env.world_size;
    options.eval_iters = config.eval_iters;
    options.rank = ddp_env.rank;
    options.world_size = ddp_env.world_size;
    auto evaluates = [&config](int64_t it) { return it % config.eval_interval == 0 || config.eval_only; };
    shards.emplace(train_data, val_data, options, device,
                   resumed.rng_state.defined() ? resumed.rng_state : rng_state(at::kCPU), evaluates, iter_num);
    torch::manual_seed(static_cast<uint64_t>(config.seed + ddp_env.rank));
    print(fmt::format("data parallel: {} ranks ({} on this machine), backend {}, {} micro-steps per rank, gradients "
                      "in {} bucket(s) of up to {} MiB",
                      ddp_env.world_size, ddp_env.local_world_size, config.backend, gradient_accumulation_steps,
                      ddp_model->num_buckets(), config.bucket_cap_mb));
  }
  // rank 0 alone evaluates and writes checkpoints; the other ranks wait for it
  auto on_master = [&](const std::string& what, const std::function<void()>& work) {
    if (process_group) {
      process_group->run_on_rank0(what, work);
    } else {
      work();
    }
  };

  nlohmann::json config_json = to_json(config);
  std::optional<MetricsLog> metrics;
  // an eval_only run writes no checkpoint: it leaves out_dir's as it is and adds to its metrics
  const bool continues = config.init_from == "resume" || config.eval_only;
  if (master_process && !continues) keep_previous_run(config.out_dir, print);
  if (master_process) metrics.emplace((fs::path(config.out_dir) / "metrics.jsonl").string(), continues);

  // The generator state before each training batch is drawn: a checkpoint stores the state
  // before the pending batch, so that a resumed run draws that same batch again.
  at::Tensor pending_batch_rng_state;
  auto next_train_batch = [&] {
    if (shards) return shards->next_train();
    pending_batch_rng_state = rng_state(at::kCPU);
    return get_batch_split("train");
  };
  auto save = [&](int64_t at_iter) {
    CheckpointInfo info{model_args, at_iter, best_val_loss, config_json,
                        shards ? shards->pending_rng_state() : pending_batch_rng_state};
    print(fmt::format("saving checkpoint to {}", config.out_dir));
    save_checkpoint(ckpt_path, model, optimizer.get(), info);
    saved_iter = at_iter;
  };

  // helps estimate an arbitrarily accurate loss over either split using many batches
  auto estimate_loss = [&] {
    torch::NoGradGuard no_grad;
    model->eval();
    std::map<std::string, double> out;
    for (const std::string split : {"train", "val"}) {
      at::Tensor losses = torch::zeros({config.eval_iters});
      for (int64_t k = 0; k < config.eval_iters; ++k) {
        auto [X, Y] = shards ? shards->next_eval(split) : get_batch_split(split);
        losses[k] = forward_loss(X, Y).item<float>();
      }
      out[split] = losses.mean().item<float>();
    }
    model->train();
    return out;
  };

  TrainResult result;
  result.last_val_loss = std::nan("");
  auto [X, Y] = next_train_batch();  // fetch the very first batch
  reset_memory_peaks(device);
  auto t0 = std::chrono::steady_clock::now();
  int64_t local_iter_num = 0;
  double running_mfu = -1.0;
  at::Tensor loss;
  while (true) {
    const double lr = config.decay_lr ? get_lr(config, iter_num) : config.learning_rate;
    set_learning_rate(*optimizer, lr);

    // evaluate the loss on train/val sets and write checkpoints
    if (iter_num % config.eval_interval == 0 || config.eval_only) {
      stop_if_diverged();
      on_master("evaluation", [&] {
        auto losses = estimate_loss();
        for (const auto& [split, value] : losses) finite_watch.observe(at::scalar_tensor(value), iter_num, split + " loss");
        stop_if_diverged();  // before a checkpoint could take the weights
        print(fmt::format("step {}: train loss {:.4f}, val loss {:.4f}", iter_num, losses["train"], losses["val"]));
        metrics->write({{"kind", "eval"}, {"iter", iter_num}, {"train_loss", losses["train"]}, {"val_loss", losses["val"]}, {"lr", lr}});
        result.last_val_loss = losses["val"];
        if (!config.eval_only && (losses["val"] < best_val_loss || config.always_save_checkpoint)) {
          best_val_loss = losses["val"];
          if (iter_num > 0) save(iter_num);
        }
      });
      if (config.eval_only) break;
    }

    // forward backward update, with gradient accumulation to simulate a larger batch
    while (true) {
      try {
        for (int64_t micro_step = 0; micro_step < gradient_accumulation_steps; ++micro_step) {
          // in DDP training we only need to sync gradients at the last micro step
          if (ddp) ddp_model->require_backward_grad_sync = (micro_step == gradient_accumulation_steps - 1);
          loss = forward_loss(X, Y) / static_cast<double>(gradient_accumulation_steps);
          std::tie(X, Y) = next_train_batch();  // prefetch while the device works on the forward pass
          scaler.scale(loss).backward();
        }
        if (ddp) ddp_model->finish_gradient_sync();  // the gradients averaged over all ranks
        if (watch_finite) finite_watch.observe(loss, iter_num, "loss");
        break;
      } catch (const std::exception& error) {
        if (!is_out_of_memory(error)) throw;
        loss = at::Tensor();
        zero_grad_set_to_none(model->parameters());
        release_cached_memory(device);
        if (!config.auto_fit || batch_size % 2 != 0) {
          TrainConfig failed = config;
          failed.batch_size = batch_size;
          failed.gradient_accumulation_steps = gradient_accumulation_steps;
          throw std::runtime_error(out_of_memory_advice(failed, model_args.vocab_size, error));
        }
        batch_size /= 2;
        gradient_accumulation_steps *= 2;
        config_json["batch_size"] = batch_size;
        config_json["gradient_accumulation_steps"] = gradient_accumulation_steps;
        print(fmt::format("out of memory at iteration {}: auto_fit halves the micro-batch to {} and doubles "
                          "gradient_accumulation_steps to {} (tokens per iteration unchanged), then redoes the iteration",
                          iter_num, batch_size, gradient_accumulation_steps));
        std::tie(X, Y) = next_train_batch();
      }
    }
    if (config.grad_clip != 0.0) {
      scaler.unscale(model->parameters());
      const at::Tensor grad_norm = clip_grad_norm(model->parameters(), config.grad_clip);
      if (watch_finite) finite_watch.observe(grad_norm, iter_num, "gradient norm");
    }
    if (!scaler.step(*optimizer, model->parameters())) {
      print(fmt::format("iter {}: inf/NaN gradients at loss scale {}, step skipped", iter_num, scaler.scale()));
    }
    scaler.update();
    zero_grad_set_to_none(model->parameters());  // free the gradients as soon as possible

    // timing and logging
    const auto t1 = std::chrono::steady_clock::now();
    const double dt = std::chrono::duration<double>(t1 - t0).count();
    t0 = t1;
    if (iter_num % config.log_interval == 0) stop_if_diverged();  // a host sync: only at log intervals
    if (iter_num % config.log_interval == 0 && master_process) {
      const double lossf = loss.item<double>() * static_cast<double>(gradient_accumulation_steps);
      if (local_iter_num >= 5) {  // let the training loop settle a bit
        const double mfu = model->estimate_mfu(batch_size * gradient_accumulation_steps, dt, config.mfu_peak_flops);
        running_mfu = running_mfu == -1.0 ? mfu : 0.9 * running_mfu + 0.1 * mfu;
      }
      const MemoryPeaks peaks = memory_peaks(device);
      const DistributedDataParallel::SyncTimes sync = ddp ? ddp_model->last_sync_times() : DistributedDataParallel::SyncTimes{};
      print(fmt::format("iter {}: loss {:.4f}, time {:.2f}ms, mfu {:.2f}%{}{}", iter_num, lossf, dt * 1000,
                        running_mfu * 100, peaks_text(peaks),
                        ddp ? fmt::format(", allreduce {:.2f}ms ({:.2f}ms exposed)", sync.allreduce_ms, sync.exposed_ms)
                            : ""));
      nlohmann::json record = {{"kind", "iter"},
                     {"iter", iter_num},
                     {"loss", lossf},
                     {"lr", lr},
                     {"ms", dt * 1000},
                     {"tokens_per_s", static_cast<double>(tokens_per_iter) / dt},
                     {"mfu", running_mfu < 0 ? nlohmann::json(nullptr) : nlohmann::json(running_mfu)}};
      record.update(peaks_json(peaks));
      if (ddp) record.update({{"allreduce_ms", sync.allreduce_ms}, {"allreduce_exposed_ms", sync.exposed_ms}});
      metrics->write(record);
      reset_memory_peaks(device);  // each log line reports the peak of its own window
      result.last_train_loss = lossf;
    }
    iter_num += 1;
    local_iter_num += 1;

    bool stop = hooks.stop_requested != nullptr && hooks.stop_requested->load();
    if (ddp) stop = process_group->any(stop);  // Ctrl-C reaches the ranks at different iterations
    if (stop) {
      stop_if_diverged();
      print(fmt::format("interrupted at iteration {}", iter_num));
      on_master("checkpoint", [&] { save(iter_num); });
      result.interrupted = true;
      break;
    }
    // termination conditions
    if (iter_num > config.max_iters) break;
  }
  stop_if_diverged();
  if (ddp) process_group->barrier();
  result.iter_num = iter_num;
  result.best_val_loss = best_val_loss;
  if (hooks.on_finish) hooks.on_finish(model);
  return result;
}

}  // namespace nanogpt
