#pragma once
// Each subcommand registers itself on the app and runs through a callback.
#include <CLI/CLI.hpp>

namespace nanogpt::cli {

// A usage or config problem: the binary exits with code 2 (runtime errors exit with 1).
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void add_train_command(CLI::App& app);
void add_sample_command(CLI::App& app);
void add_prepare_command(CLI::App& app);
void add_config_command(CLI::App& app);
void add_memory_command(CLI::App& app);
void add_export_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_check_logits_command(CLI::App& app);
void add_check_adamw_command(CLI::App& app);

}  // namespace nanogpt::cli
