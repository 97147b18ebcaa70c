#include <fstream>
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "nanogpt/base/fileio.h"
#include "nanogpt/train/bench.h"
#include "nanogpt/base/config.h"

namespace nanogpt::cli {

void add_bench_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "bench", "Time training steps of a config (nanoGPT's bench.py): nanogpt bench CONFIG.yaml [--key=value ...]");
  cmd->allow_extras();
  auto config_path = std::make_shared<std::string>();
  auto options = std::make_shared<BenchOptions>();
  auto peak_flops = std::make_shared<double>(0.0);
  auto json_path = std::make_shared<std::string>();
  cmd->add_option("config", *config_path, "YAML config (keys of nanoGPT's train.py); optional");
  cmd->add_option("--burn-in", options->burn_in_steps, "untimed steps first")->capture_default_str();
  cmd->add_option("--steps", options->timed_steps, "timed steps")->capture_default_str();
  cmd->add_flag("--synthetic", options->synthetic_data, "random tokens instead of the dataset's train.bin");
  cmd->add_option("--peak-flops", *peak_flops, "MFU denominator in FLOP/s (default: A100/H100/H200 table, or a CPU matmul probe)")
      ->check(number_in(0, false));
  cmd->add_option("--profile", options->profile_path, "write a Chrome trace of the timed steps to this file");
  cmd->add_option("--json", *json_path, "also write the results to this JSON file");
  cmd->footer("Any config key can be overridden with --key=value, e.g. --batch_size=4 --gradient_accumulation_steps=1.\n"
              "Each step is gradient_accumulation_steps micro-steps; bench.py's is one. See docs/performance.md.");
  cmd->callback([cmd, config_path, options, peak_flops, json_path] {
    const TrainConfig config = load_config(*config_path, cmd->remaining());
    if (*peak_flops > 0) options->peak_flops = *peak_flops;
    const BenchResult r = bench(config, *options, [](const std::string& line) { std::cout << line << std::endl; });
    if (!json_path->empty()) {
      const nlohmann::json j = {{"config", *config_path},           {"ms_per_iter", r.ms_per_iter},
                                {"tokens_per_s", r.tokens_per_s},   {"mfu", r.mfu},
                                {"peak_flops", r.peak_flops},       {"peak_flops_source", r.peak_flops_source},
                                {"tokens_per_iter", r.tokens_per_iter}, {"last_loss", r.last_loss},
                                {"synthetic_data", r.synthetic_data}, {"peak_tensor_bytes", r.peak_tensor_bytes},
                                {"peak_reserved_bytes", r.peak_reserved_bytes}, {"peak_rss_bytes", r.peak_rss_bytes},
                                {"device", config.device},          {"dtype", config.dtype}};
      write_file_atomically(*json_path, [&](std::ostream& out) { out << j.dump(1) << "\n"; });
    }
  });
}

}  // namespace nanogpt::cli
