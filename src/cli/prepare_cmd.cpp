#include <unistd.h>

#include <filesystem>
#include <iostream>

#include <fmt/format.h>

#include "commands.h"
#include "nanogpt/base/fileio.h"
#include "nanogpt/data/prepare.h"

namespace nanogpt::cli {

namespace {

// --doc-separator as typed on a shell: \n, \r, \t and \\ stand for the characters.
std::string unescape(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\' || i + 1 == text.size()) {
      out += text[i];
      continue;
    }
    const char c = text[++i];
    if (c == 'n') out += '\n';
    else if (c == 'r') out += '\r';
    else if (c == 't') out += '\t';
    else if (c == '\\') out += '\\';
    else throw UsageError(fmt::format("--doc-separator: unknown escape '\\{}' (known: \\n \\r \\t \\\\)", c));
  }
  return out;
}

void add_gpt2_command(CLI::App* cmd) {
  auto* gpt2 = cmd->add_subcommand(
      "gpt2", "GPT-2 BPE dataset: one text like nanoGPT's data/shakespeare/prepare.py, or documents like "
              "data/openwebtext/prepare.py (each followed by <|endoftext|>)");
  auto options = std::make_shared<Gpt2PrepareOptions>();
  auto separator = std::make_shared<std::string>();
  gpt2->add_option("--input", options->inputs, "UTF-8 text files: one text, or one document each")->required();
  gpt2->add_option("--out-dir", options->out_dir, "dataset folder to write")->required();
  gpt2->add_option("--val-fraction", options->val_fraction,
                   "share of characters (one text, default 0.1) or documents (default 0.0005) for val.bin")
      ->check(number_in(0, false, 1));
  gpt2->add_option("--doc-separator", *separator,
                   "split each file into documents at this text (\\n, \\t escapes), e.g. '\\n\\n\\n'");
  gpt2->add_option("--seed", options->seed, "seed of the document split")->capture_default_str();
  gpt2->add_option("--threads", options->threads, "encoding threads (0: all cores)")
      ->capture_default_str()
      ->check(number_in(0, true));
  gpt2->add_option("--vocab-dir", options->vocab_dir,
                   "folder with encoder.json and vocab.bpe (default: $NANOGPT_GPT2_VOCAB_DIR, else "
                   "~/.cache/nanogpt-cpp/gpt2, downloaded when missing)");
  gpt2->callback([options, separator] {
    options->doc_separator = unescape(*separator);
    if (!separator->empty() && options->doc_separator.empty()) throw UsageError("--doc-separator must not be empty");
    options->progress = ::isatty(STDERR_FILENO) != 0;
    const PreparedGpt2Dataset result = prepare_gpt2_dataset(*options);
    if (result.val_documents > 0) {
      std::cout << fmt::format("{} documents: {} to train.bin, {} to val.bin\n", result.documents,
                               result.documents - result.val_documents, result.val_documents);
    }
    std::cout << fmt::format("train has {} tokens\nval has {} tokens\nwrote {}/train.bin, val.bin, meta.json\n",
                             result.train_tokens, result.val_tokens, options->out_dir);
  });
}

}  // namespace

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
      create_folder(*out_dir, "--out-dir");
      path = (std::filesystem::path(*out_dir) / "input.txt").string();
      if (!std::filesystem::exists(path)) {
        std::cout << "downloading " << kTinyShakespeareUrl << std::endl;
        try {
          download_file(kTinyShakespeareUrl, path);
        } catch (const IoError& e) {
          throw IoError(fmt::format("{}; download it by hand and pass --input FILE", e.what()));
        }
      }
    } else if (!std::filesystem::is_regular_file(path)) {
      throw UsageError(fmt::format("--input '{}' does not exist or is not a file", path));
    }
    const PreparedDataset result = prepare_char_dataset(path, *out_dir);
    std::cout << fmt::format("vocab size: {}\ntrain has {} tokens\nval has {} tokens\nwrote {}/train.bin, val.bin, meta.json, meta.pkl\n",
                             result.vocab_size, result.train_tokens, result.val_tokens, *out_dir);
  });
  add_gpt2_command(cmd);
}

}  // namespace nanogpt::cli
