// nanogpt memory: the memory table of a config, a setting that fits a budget, and the
// measured peak of one real step.
#include <filesystem>
#include <fstream>
#include <iostream>

#include <fmt/format.h>

#include "commands.h"
#include "nanogpt/base/fileio.h"
#include "nanogpt/base/config.h"
#include "nanogpt/train/memory_plan.h"
#include "nanogpt/memory/memory_stats.h"
#include "nanogpt/tokenizer/char_tokenizer.h"

namespace nanogpt::cli {

namespace {

struct MemoryOptions {
  std::string config_path;
  std::string budget;
  std::string device;
  std::string write_path;
  int64_t vocab_size = 0;
  bool measure = false;
};

// The dataset's vocab_size (meta.json) as `train` finds it, else GPT-2's padded 50304.
int64_t resolve_vocab_size(const TrainConfig& config, int64_t requested) {
  if (requested > 0) return requested;
  const auto meta = std::filesystem::path(config.resolved_data_dir()) / "meta.json";
  if (std::filesystem::exists(meta)) {
    const DatasetMeta dataset = read_meta_json(meta.string());
    if (dataset.tokenizer != "gpt2") return dataset.vocab_size;  // GPT-2 BPE: padded, as train does
  }
  return 50304;
}

// The config's device key, or --device when given: the device whose memory is modelled.
// The config itself is validated as a CPU config, so that a CUDA config can be planned on
// a machine (or a build) without a GPU.
std::pair<TrainConfig, std::string> load_for_device(const MemoryOptions& o, std::vector<std::string> overrides) {
  std::string device = o.device;
  for (const auto& arg : overrides) {
    if (arg.rfind("--device=", 0) == 0) device = device.empty() ? arg.substr(9) : device;
  }
  if (device.empty()) {
    TrainConfig file_only = default_config();
    if (!o.config_path.empty()) apply_yaml_file(file_only, o.config_path);
    device = file_only.device;
  }
  memory_device_from_name(device);  // names the bad value
  std::vector<std::string> args;
  for (auto& arg : overrides) {
    if (arg.rfind("--device=", 0) != 0) args.push_back(std::move(arg));
  }
  // float16 is checked against the device: keep that check meaningful for cuda
  const bool cuda = device.rfind("cuda", 0) == 0;
  TrainConfig config = load_config(o.config_path, [&] {
    auto a = args;
    a.push_back("--device=cpu");
    if (cuda) a.push_back("--dtype=float32");  // validated below against the real dtype
    return a;
  }());
  if (cuda) {
    // dtype and backend as the config gives them on a GPU machine: nanoGPT's defaults under
    // the file and overrides (default_config() would put this machine's gloo for nccl)
    TrainConfig as_given;
    if (!o.config_path.empty()) apply_yaml_file(as_given, o.config_path);
    apply_overrides(as_given, args);
    config.dtype = as_given.dtype;
    config.backend = as_given.backend;
  }
  config.device = device;
  return {config, device};
}

void print_estimate(const TrainConfig& c, int64_t vocab, MemoryDevice device, const MemoryEstimate& e) {
  std::cout << fmt::format(
      "memory of one training step on {}: n_layer {}, n_head {}, n_embd {}, block_size {}, vocab_size {}, "
      "micro-batch {} x {} accumulation steps, dtype {}, activation_checkpointing {}{}, loss_chunk_size {}\n",
      memory_device_name(device), c.n_layer, c.n_head, c.n_embd, c.block_size, vocab, c.batch_size,
      c.gradient_accumulation_steps, c.dtype, c.activation_checkpointing,
      c.activation_checkpointing == "blocks" ? fmt::format(" (every {})", c.checkpoint_every) : "", c.loss_chunk_size);
  std::cout << "B=" << c.batch_size << " T=" << c.block_size << " C=" << c.n_embd << " L=" << c.n_layer
            << " nh=" << c.n_head << " V=" << vocab << " P=" << e.parameter_count << "\n";
  std::cout << format_memory_table(e);
}

}  // namespace

void add_memory_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "memory",
      "Estimate the peak memory of a training step, term by term; fit it into a budget; measure it: "
      "nanogpt memory CONFIG.yaml [--key=value ...] [--budget 12GiB] [--device cuda|cpu] [--write FILE.yaml] [--measure]");
  cmd->allow_extras();
  auto o = std::make_shared<MemoryOptions>();
  cmd->add_option("config", o->config_path, "YAML config (keys of nanoGPT's train.py); optional");
  cmd->add_option("--budget", o->budget, "memory budget, e.g. 12GiB: recommend a setting that fits it");
  cmd->add_option("--device", o->device,
                  "device whose memory to model (cpu, cuda); overrides the config's device key, which is not "
                  "checked against this build");
  cmd->add_option("--write", o->write_path, "with --budget: write the config with the recommended setting here");
  cmd->add_option("--vocab-size", o->vocab_size, "vocabulary size (default: the dataset's meta.json, else 50304)")
      ->check(number_in(1, true));
  cmd->add_flag("--measure", o->measure, "run one real optimizer step on the CPU and print its measured peak");
  cmd->footer("Any config key can be overridden with --key=value. See docs/memory.md.");
  cmd->callback([cmd, o] {
    if (!o->write_path.empty() && o->budget.empty()) throw UsageError("--write needs --budget");
    if (!o->budget.empty()) parse_byte_size(o->budget, "--budget");  // before the table, not after it
    auto [config, device_name] = load_for_device(*o, cmd->remaining());
    const MemoryDevice device = memory_device_from_name(device_name);
    const int64_t vocab = resolve_vocab_size(config, o->vocab_size);
    const MemoryEstimate estimate = estimate_memory(config, vocab, device);
    print_estimate(config, vocab, device, estimate);

    if (!o->budget.empty()) {
      const int64_t budget = parse_byte_size(o->budget, "--budget");
      std::cout << "\nbudget " << format_bytes(budget) << ": ";
      MemoryPlan plan;
      try {
        plan = plan_memory(config, vocab, device, budget);
      } catch (const MemoryPlanError& e) {
        std::cout << "does not fit\n";
        throw std::runtime_error(e.what());
      }
      const bool unchanged = !plan.changed_micro_batch && !plan.needed_chunked_loss && !plan.needed_checkpointing;
      std::cout << (unchanged ? "fits as configured" : "fits with changes") << "\n";
      std::vector<std::string> needed;
      if (plan.changed_micro_batch) needed.push_back("a smaller micro-batch");
      if (plan.needed_chunked_loss) needed.push_back("chunked loss");
      if (plan.needed_checkpointing) needed.push_back("activation checkpointing");
      if (!needed.empty()) std::cout << "needed: " << fmt::format("{}", fmt::join(needed, ", ")) << "\n";
      const TrainConfig& r = plan.config;
      std::cout << fmt::format(
          "recommended: batch_size {}, gradient_accumulation_steps {}, activation_checkpointing {}{}, "
          "loss_chunk_size {}\n",
          r.batch_size, r.gradient_accumulation_steps, r.activation_checkpointing,
          r.activation_checkpointing == "blocks" ? fmt::format(" (checkpoint_every {})", r.checkpoint_every) : "",
          r.loss_chunk_size);
      std::cout << fmt::format("estimated peak {} of budget {} (effective batch {} unchanged)\n",
                               format_bytes(plan.estimate.total_bytes), format_bytes(budget),
                               r.batch_size * r.gradient_accumulation_steps);
      if (!o->write_path.empty()) {
        write_file_atomically(o->write_path, [&](std::ostream& out) {
          out << "# written by: nanogpt memory --budget " << o->budget << " --device " << device_name << "\n"
              << to_yaml(r);
        });
        std::cout << "wrote " << o->write_path << "\n";
      }
    }

    if (o->measure) {
      if (device != MemoryDevice::cpu) throw UsageError("--measure runs on the CPU only; use --device cpu");
      const MeasuredMemory measured = measure_training_step(config, vocab);
      const double error = 100.0 * static_cast<double>(estimate.total_bytes - measured.peak_tensor_bytes) /
                           static_cast<double>(measured.peak_tensor_bytes);
      std::cout << fmt::format("\nmeasured (one optimizer step after a warm-up step, {:.2f} s):\n", measured.step_seconds)
                << fmt::format("estimated peak tensor bytes  {:>14}  {}\n", estimate.total_bytes,
                               format_bytes(estimate.total_bytes))
                << fmt::format("measured peak tensor bytes   {:>14}  {}  (estimate {:+.1f}%)\n",
                               measured.peak_tensor_bytes, format_bytes(measured.peak_tensor_bytes), error)
                << fmt::format("measured peak RSS            {:>14}  {}  (cpu_memory: {})\n", measured.peak_rss_bytes,
                               format_bytes(measured.peak_rss_bytes), config.cpu_memory);
    }
  });
}

}  // namespace nanogpt::cli
