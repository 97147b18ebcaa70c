#include <csignal>
#include <iostream>

#include "commands.h"
#include "nanogpt/base/config.h"
#include "nanogpt/train/train.h"

namespace nanogpt::cli {

namespace {

// Set by SIGINT/SIGTERM; the trainer polls it between iterations, saves and stops.
std::atomic<bool> stop_requested{false};

void request_stop(int) { stop_requested.store(true); }

}  // namespace

void add_train_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Train a GPT (nanoGPT's train.py): nanogpt train [CONFIG.yaml] [--key=value ...]");
  cmd->allow_extras();
  cmd->prefix_command(false);
  auto config_path = std::make_shared<std::string>();
  cmd->add_option("config", *config_path, "YAML config (keys of nanoGPT's train.py); optional");
  cmd->footer("Any config key can be overridden with --key=value, e.g. --max_iters=100 --device=cpu.\n"
              "See `nanogpt config keys` for the list.");
  cmd->callback([cmd, config_path] {
    const TrainConfig config = load_config(*config_path, cmd->remaining());
    std::signal(SIGINT, request_stop);
    std::signal(SIGTERM, request_stop);
    TrainHooks hooks;
    hooks.stop_requested = &stop_requested;
    train(config, hooks);
  });
}

}  // namespace nanogpt::cli
