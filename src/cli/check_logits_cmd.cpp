#include <fstream>
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "nanogpt/base/fileio.h"
#include "nanogpt/base/config.h"
#include "nanogpt/train/logits_check.h"

namespace nanogpt::cli {

void add_check_logits_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "check-logits",
      "Logits on the config's device and dtype against the CPU in float32: nanogpt check-logits [CONFIG.yaml] [--key=value ...]");
  cmd->allow_extras();
  auto config_path = std::make_shared<std::string>();
  auto options = std::make_shared<LogitsCheckOptions>();
  auto tolerance = std::make_shared<double>(0.0);
  auto json_path = std::make_shared<std::string>();
  cmd->add_option("config", *config_path, "YAML config (keys of nanoGPT's train.py); optional");
  cmd->add_option("--ckpt", options->checkpoint_path, "weights from this ckpt.pt (default: the config's seeded initialisation)");
  cmd->add_option("--batch-size", options->batch_size, "sequences of block_size random tokens")->capture_default_str();
  cmd->add_option("--vocab-size", options->vocab_size, "vocabulary without --ckpt")
      ->capture_default_str()
      ->check(number_in(1, true));
  cmd->add_option("--tolerance", *tolerance, "largest relative error that passes (default: 5e-2 bfloat16, 1e-2 float16, 1e-3 float32)")
      ->check(number_in(0, false));
  cmd->add_option("--json", *json_path, "also write the results to this JSON file");
  cmd->footer("Exits 1 when the relative error exceeds the tolerance. Example:\n"
              "  nanogpt check-logits --device=cuda --dtype=bfloat16 --n_layer=6 --n_head=6 --n_embd=384 --block_size=256");
  cmd->callback([cmd, config_path, options, tolerance, json_path] {
    const TrainConfig config = load_config(*config_path, cmd->remaining());
    if (*tolerance > 0) options->tolerance = *tolerance;
    const LogitsCheckResult r =
        check_logits(config, *options, [](const std::string& line) { std::cout << line << std::endl; });
    if (!json_path->empty()) {
      const nlohmann::json j = {{"checked", r.checked},
                                {"reference", r.reference},
                                {"positions", r.positions},
                                {"relative_error", r.relative_error},
                                {"max_abs_error", r.max_abs_error},
                                {"reference_max_abs", r.reference_max_abs},
                                {"argmax_agreement", r.argmax_agreement},
                                {"checked_loss", r.checked_loss},
                                {"reference_loss", r.reference_loss},
                                {"tolerance", r.tolerance},
                                {"passed", r.passed}};
      write_file_atomically(*json_path, [&](std::ostream& out) { out << j.dump(1) << "\n"; });
    }
    if (!r.passed) {
      throw std::runtime_error(fmt::format("relative error {:.3e} of {} exceeds the tolerance {:.1e}", r.relative_error,
                                           r.checked, r.tolerance));
    }
  });
}

}  // namespace nanogpt::cli
