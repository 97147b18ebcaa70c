#include <filesystem>
#include <iostream>

#include <fmt/format.h>

#include "commands.h"
#include "nanogpt/prepare.h"

namespace nanogpt::cli {

void add_prepare_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("prepare", "Prepare a dataset folder (train.bin, val.bin, meta.json)");
  cmd->require_subcommand(1);
  auto* chars = cmd->add_subcommand(
      "char", "Character-level dataset, like nanoGPT's data/shakespeare_char/prepare.py");
  auto input = std::make_shared<std::string>();
  auto out_dir = std::make_shared<std::string>();
  chars->add_option("--input", *input, "UTF-8 text file (default: download Tiny Shakespeare into --out-dir)");
  chars->add_option("--out-dir", *out_dir, "dataset folder to write")->required();
  chars->callback([input, out_dir] {
    std::string path = *input;
    if (path.empty()) {
      std::filesystem::create_directories(*out_dir);
      path = (std::filesystem::path(*out_dir) / "input.txt").string();
      if (!std::filesystem::exists(path)) {
        std::cout << "downloading " << kTinyShakespeareUrl << std::endl;
        download_file(kTinyShakespeareUrl, path);
      }
    } else if (!std::filesystem::is_regular_file(path)) {
      throw UsageError(fmt::format("--input '{}' does not exist or is not a file", path));
    }
    const PreparedDataset result = prepare_char_dataset(path, *out_dir);
    std::cout << fmt::format("vocab size: {}\ntrain has {} tokens\nval has {} tokens\nwrote {}/train.bin, val.bin, meta.json, meta.pkl\n",
                             result.vocab_size, result.train_tokens, result.val_tokens, *out_dir);
  });
}

}  // namespace nanogpt::cli
