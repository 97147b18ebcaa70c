#include <filesystem>
#include <iostream>

#include <fmt/format.h>

#include "commands.h"
#include "nanogpt/interop/checkpoint.h"
#include "nanogpt/interop/pretrained.h"

namespace nanogpt::cli {

void add_export_command(CLI::App& app) {
  auto format = std::make_shared<std::string>("hf");
  auto checkpoint = std::make_shared<std::string>("out/ckpt.pt");
  auto dest = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand(
      "export", "Write a checkpoint as a Hugging Face GPT2LMHeadModel folder (config.json + model.safetensors), "
                "for transformers and llama.cpp's converter: nanogpt export --format hf [--ckpt OUT_DIR/ckpt.pt] DIR");
  cmd->add_option("--format", *format, "output format (hf)")->capture_default_str();
  cmd->add_option("--ckpt", *checkpoint, "the checkpoint to export")->capture_default_str();
  cmd->add_option("dir", *dest, "folder to write")->required();
  cmd->callback([format, checkpoint, dest] {
    if (*format != "hf") throw UsageError(fmt::format("--format must be 'hf', got '{}'", *format));
    GPT model = load_model(*checkpoint);
    export_huggingface(model, *dest);
    std::cout << fmt::format("wrote {} and {} ({:.2f}M parameters)\n", (std::filesystem::path(*dest) / "config.json").string(),
                             (std::filesystem::path(*dest) / "model.safetensors").string(),
                             model->get_num_params(false) / 1e6);
  });
}

}  // namespace nanogpt::cli
