#pragma once
// nanoGPT's token files: raw little-endian uint16 `train.bin` / `val.bin`, memory-mapped,
// and get_batch's random windows.
#include <ATen/ATen.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

namespace nanogpt {

// A token file that cannot be used; the message names the file and the problem.
struct DataError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A read-only memory map of a uint16 token file; the file is never read whole.
class TokenFile {
 public:
  // With `vocab_size` > 0, a window holding an id >= vocab_size is a DataError (a dataset
  // prepared with another tokenizer), found as batches are read, at no extra pass.
  explicit TokenFile(const std::string& path, int64_t vocab_size = 0);
  ~TokenFile();
  TokenFile(const TokenFile&) = delete;
  TokenFile& operator=(const TokenFile&) = delete;
  TokenFile(TokenFile&& other) noexcept;

  int64_t size() const { return num_tokens_; }
  uint16_t operator[](int64_t i) const { return tokens_[i]; }
  const uint16_t* tokens() const { return tokens_; }
  const std::string& path() const { return path_; }
  int64_t vocab_size() const { return vocab_size_; }

 private:
  std::string path_;
  const uint16_t* tokens_ = nullptr;
  int64_t num_tokens_ = 0;
  size_t mapped_bytes_ = 0;
  int64_t vocab_size_ = 0;
};

// `batch_size` windows of `block_size` tokens at offsets drawn like nanoGPT's
// `torch.randint(len(data) - block_size, (batch_size,))` from the default generator;
// x and y (shifted by one) as int64, moved to `device` (pinned and non-blocking on CUDA).
std::pair<at::Tensor, at::Tensor> get_batch(const TokenFile& data, int64_t batch_size, int64_t block_size,
                                            const at::Device& device);

// The windows at given offsets, for tests and for get_batch.
std::pair<at::Tensor, at::Tensor> batch_at(const TokenFile& data, const at::Tensor& offsets, int64_t block_size);

// Write tokens as a uint16 file (atomically: temporary file, then rename).
void write_token_file(const std::string& path, const std::vector<uint16_t>& tokens);

}  // namespace nanogpt
