#include "nanogpt/data.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "nanogpt/fileio.h"

namespace nanogpt {

TokenFile::TokenFile(const std::string& path, int64_t vocab_size) : path_(path), vocab_size_(vocab_size) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw DataError(fmt::format("token file '{}': cannot open: {}", path, std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw DataError(fmt::format("token file '{}': not a regular file", path));
  }
  const auto bytes = static_cast<size_t>(st.st_size);
  if (bytes == 0) {
    ::close(fd);
    throw DataError(fmt::format("token file '{}' is empty; expected uint16 token ids", path));
  }
  if (bytes % 2 != 0) {
    ::close(fd);
    throw DataError(fmt::format("token file '{}' has an odd size ({} bytes); expected uint16 token ids", path, bytes));
  }
  void* map = ::mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) throw DataError(fmt::format("token file '{}': mmap failed: {}", path, std::strerror(errno)));
  ::madvise(map, bytes, MADV_RANDOM);
  tokens_ = static_cast<const uint16_t*>(map);
  num_tokens_ = static_cast<int64_t>(bytes / 2);
  mapped_bytes_ = bytes;
}

TokenFile::~TokenFile() {
  if (tokens_ != nullptr) ::munmap(const_cast<uint16_t*>(tokens_), mapped_bytes_);
}

TokenFile::TokenFile(TokenFile&& other) noexcept
    : path_(std::move(other.path_)), tokens_(other.tokens_), num_tokens_(other.num_tokens_),
      mapped_bytes_(other.mapped_bytes_), vocab_size_(other.vocab_size_) {
  other.tokens_ = nullptr;
}

std::pair<at::Tensor, at::Tensor> batch_at(const TokenFile& data, const at::Tensor& offsets, int64_t block_size) {
  const int64_t batch_size = offsets.size(0);
  at::Tensor x = at::empty({batch_size, block_size}, at::kLong);
  at::Tensor y = at::empty({batch_size, block_size}, at::kLong);
  auto offset = offsets.accessor<int64_t, 1>();
  int64_t* xs = x.data_ptr<int64_t>();
  int64_t* ys = y.data_ptr<int64_t>();
  for (int64_t b = 0; b < batch_size; ++b) {
    const int64_t i = offset[b];
    if (i < 0 || i + block_size + 1 > data.size()) {
      throw DataError(fmt::format("token file '{}': window at {} of {} tokens runs past its end ({} tokens)",
                                  data.path(), i, block_size + 1, data.size()));
    }
    const uint16_t* window = data.tokens() + i;
    uint16_t largest = 0;
    for (int64_t t = 0; t < block_size; ++t) {
      xs[b * block_size + t] = window[t];  // widened as unsigned: ids >= 32768 stay positive
      ys[b * block_size + t] = window[t + 1];
      largest = std::max(largest, window[t]);
    }
    largest = std::max(largest, window[block_size]);
    if (data.vocab_size() > 0 && largest >= data.vocab_size()) {
      const int64_t at = i + (std::find(window, window + block_size + 1, largest) - window);
      throw DataError(fmt::format("token file '{}' holds id {} at token {}, but the model's vocabulary has {} ids "
                                  "(0..{}); was it prepared with another tokenizer or meta file?",
                                  data.path(), largest, at, data.vocab_size(), data.vocab_size() - 1));
    }
  }
  return {x, y};
}

std::pair<at::Tensor, at::Tensor> get_batch(const TokenFile& data, int64_t batch_size, int64_t block_size,
                                            const at::Device& device) {
  if (data.size() <= block_size) {
    throw DataError(fmt::format("token file '{}' has {} tokens, fewer than block_size + 1 = {}", data.path(),
                                data.size(), block_size + 1));
  }
  at::Tensor offsets = at::randint(data.size() - block_size, {batch_size}, at::kLong);
  auto [x, y] = batch_at(data, offsets, block_size);
  if (device.is_cuda()) {
    return {x.pin_memory().to(device, /*non_blocking=*/true), y.pin_memory().to(device, /*non_blocking=*/true)};
  }
  return {x, y};
}

void write_token_file(const std::string& path, const std::vector<uint16_t>& tokens) {
  write_file_atomically(path, [&](std::ostream& out) {
    out.write(reinterpret_cast<const char*>(tokens.data()), static_cast<std::streamsize>(tokens.size() * 2));
  });
}

}  // namespace nanogpt
