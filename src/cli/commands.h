#pragma once
// Each subcommand registers itself on the app and runs through a callback.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <string>

namespace nanogpt::cli {

// A usage or config problem: the binary exits with code 2 (runtime errors exit with 1).
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Option checks that, unlike CLI::PositiveNumber, also refuse NaN and infinity: a number
// above `lowest` (at or above it where `or_equal`), below `below` when that is given.
inline CLI::Validator number_in(double lowest, bool or_equal, double below = HUGE_VAL) {
  const std::string range = fmt::format("{}{}, {})", or_equal ? "[" : "(", lowest, below == HUGE_VAL ? "inf" : fmt::format("{}", below));
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        const bool ok = end != text.c_str() && *end == '\0' && std::isfinite(v) && (or_equal ? v >= lowest : v > lowest) &&
                        v < below;
        return ok ? std::string() : fmt::format("expected a number in {}, got '{}'", range, text);
      },
      "in " + range);
}

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
