#include <unistd.h>

#include <iostream>

#include <fmt/format.h>

#include "commands.h"
#include "nanogpt/sample/sample.h"
#include "nanogpt/base/utf8.h"
#include "nanogpt/base/device.h"

namespace nanogpt::cli {

void add_sample_command(CLI::App& app) {
  auto options = std::make_shared<SampleOptions>();
  auto top_k = std::make_shared<int64_t>(200);
  options->device = cuda_available() ? "cuda" : "cpu";  // sample.py's default is cuda
  auto* cmd = app.add_subcommand("sample", "Sample text from out_dir/ckpt.pt (nanoGPT's sample.py)");
  cmd->add_option("--out_dir", options->out_dir, "folder with ckpt.pt")->capture_default_str();
  cmd->add_option("--start", options->start, "start text, or FILE:path")->capture_default_str();
  cmd->add_option("--num_samples", options->num_samples, "number of samples")->capture_default_str();
  cmd->add_option("--max_new_tokens", options->max_new_tokens, "tokens generated per sample")->capture_default_str();
  cmd->add_option("--temperature", options->temperature, "1.0 = no change, < 1.0 = less random")->capture_default_str();
  cmd->add_option("--top_k", *top_k, "keep only the top_k most likely tokens (0: all)")->capture_default_str();
  cmd->add_option("--seed", options->seed, "random seed")->capture_default_str();
  cmd->add_option("--device", options->device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--data_dir", options->data_dir, "dataset folder with meta.json (default: from the checkpoint's config)");
  cmd->add_option("--init_from", options->init_from,
                  "resume (out_dir/ckpt.pt) or gpt2, gpt2-medium, gpt2-large, gpt2-xl (Hugging Face weights)")
      ->capture_default_str();
  cmd->add_option("--pretrained_dir", options->pretrained_dir,
                  "with --init_from gpt2*: folder with config.json and model.safetensors or pytorch_model.bin");
  cmd->add_option("--vocab_dir,--vocab-dir", options->vocab_dir,
                  "GPT-2 BPE: folder with encoder.json and vocab.bpe (default: $NANOGPT_GPT2_VOCAB_DIR, else "
                  "~/.cache/nanogpt-cpp/gpt2, downloaded when missing)");
  cmd->add_option("--num_threads", options->num_threads, "CPU threads (0: all)")->capture_default_str();
  cmd->add_flag("!--no_kv_cache", options->use_kv_cache, "recompute the whole context at each step, like nanoGPT");
  cmd->callback([options, top_k] {
    if (*top_k < 0) throw UsageError(fmt::format("--top_k must be >= 0 (0: all tokens), got {}", *top_k));
    options->top_k = *top_k > 0 ? std::optional<int64_t>(*top_k) : std::nullopt;
    const bool terminal = ::isatty(STDOUT_FILENO) != 0;  // a file gets the exact bytes
    sample(*options, [terminal](const std::string& text) {
      std::cout << (terminal ? replace_invalid_utf8(text) : text) << "\n---------------" << std::endl;
    });
  });
}

}  // namespace nanogpt::cli
