#pragma once
// Dataset preparation: nanoGPT's data/shakespeare_char/prepare.py.
#include <cstdint>
#include <string>

namespace nanogpt {

struct PreparedDataset {
  int64_t vocab_size = 0;
  int64_t train_tokens = 0;
  int64_t val_tokens = 0;
};

// Python's text-mode reading: "\r\n" and lone "\r" become "\n".
std::string universal_newlines(std::string text);

// Reads UTF-8 `input_path`, builds the sorted character vocabulary, splits the characters
// 90/10 and writes train.bin, val.bin (uint16) and meta.json into `out_dir`.
PreparedDataset prepare_char_dataset(const std::string& input_path, const std::string& out_dir);

// The public address nanoGPT downloads Tiny Shakespeare from.
extern const char* const kTinyShakespeareUrl;

// Downloads `url` to `path` with curl or wget; throws with a clear message when offline.
void download_file(const std::string& url, const std::string& path);

}  // namespace nanogpt
