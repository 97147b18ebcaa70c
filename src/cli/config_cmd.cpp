#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "nanogpt/base/config.h"
#include "nanogpt/interop/config_import.h"
#include "nanogpt/base/fileio.h"

namespace nanogpt::cli {

void add_config_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("config", "Show the resolved config or the list of keys");
  cmd->require_subcommand(1);

  auto* show = cmd->add_subcommand("show", "Print the config that `train` would run: nanogpt config show [CONFIG.yaml] [--key=value ...]");
  show->allow_extras();
  auto config_path = std::make_shared<std::string>();
  auto format = std::make_shared<std::string>("yaml");
  show->add_option("config", *config_path, "YAML config");
  show->add_option("--format", *format, "yaml or json")->check(CLI::IsMember({"yaml", "json"}));
  show->callback([show, config_path, format] {
    const TrainConfig config = load_config(*config_path, show->remaining());
    if (*format == "json") {
      const auto values = to_json(config);
      nlohmann::ordered_json ordered;  // train.py's order rather than alphabetical
      for (const auto& key : config_keys()) ordered[key] = values.at(key);
      std::cout << ordered.dump(2) << std::endl;
    } else {
      std::cout << to_yaml(config);
    }
  });

  auto* import = cmd->add_subcommand(
      "import", "Print the YAML twin of a nanoGPT Python config: nanogpt config import config/train_gpt2.py > x.yaml");
  auto python_path = std::make_shared<std::string>();
  import->add_option("file", *python_path, "nanoGPT config file (Python)")->required();
  import->callback([python_path] {
    std::string text;
    try {
      text = read_file(*python_path);
    } catch (const IoError& e) {
      throw ConfigError(e.what());
    }
    std::cout << import_python_config(text, *python_path);
  });

  auto* keys = cmd->add_subcommand("keys", "List every config key with its default");
  keys->callback([] {
    const auto defaults = to_json(default_config());
    for (const auto& key : config_keys()) std::cout << key << ": " << defaults.at(key).dump() << "\n";
  });
}

}  // namespace nanogpt::cli
