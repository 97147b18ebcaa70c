#include "nanogpt/data/prepare.h"

#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>

#include "nanogpt/data/data.h"
#include "nanogpt/base/fileio.h"
#include "nanogpt/tokenizer/char_tokenizer.h"

namespace nanogpt {

const char* const kTinyShakespeareUrl =
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt";

std::string universal_newlines(std::string text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r') {
      out += '\n';
      if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
    } else {
      out += text[i];
    }
  }
  return out;
}

PreparedDataset prepare_char_dataset(const std::string& input_path, const std::string& out_dir) {
  const std::vector<char32_t> text = decode_utf8(universal_newlines(read_file(input_path)), input_path);
  if (text.empty()) throw DataError(fmt::format("input '{}' is empty", input_path));
  const CharTokenizer tokenizer = CharTokenizer::from_text(text);

  const size_t n = text.size();
  const size_t split = static_cast<size_t>(static_cast<double>(n) * 0.9);  // int(n*0.9)
  const std::vector<char32_t> train_text(text.begin(), text.begin() + split);
  const std::vector<char32_t> val_text(text.begin() + split, text.end());

  create_folder(out_dir, "--out-dir");
  const auto train_ids = tokenizer.encode(train_text);
  const auto val_ids = tokenizer.encode(val_text);
  write_token_file((std::filesystem::path(out_dir) / "train.bin").string(), train_ids);
  write_token_file((std::filesystem::path(out_dir) / "val.bin").string(), val_ids);
  DatasetMeta meta;
  meta.vocab_size = tokenizer.vocab_size();
  meta.tokenizer = "char";
  meta.itos = tokenizer.itos();
  write_meta_json((std::filesystem::path(out_dir) / "meta.json").string(), meta);
  write_meta_pkl((std::filesystem::path(out_dir) / "meta.pkl").string(), meta);  // for Python nanoGPT
  return {tokenizer.vocab_size(), static_cast<int64_t>(train_ids.size()), static_cast<int64_t>(val_ids.size())};
}
}  // namespace nanogpt
