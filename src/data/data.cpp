#include "nanogpt/data/data.h"

#include <ATen/CPUGeneratorImpl.h>

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

#include "nanogpt/base/fileio.h"
#include "nanogpt/base/compat.h"

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
    if (i < 0 || i >= data.size() || block_size >= data.size() - i) {  // i + block_size + 1 may overflow
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

at::Tensor draw_batch_offsets(const TokenFile& data, int64_t batch_size, int64_t block_size,
                              c10::optional<at::Generator> generator) {
  if (data.size() <= block_size) {
    throw DataError(fmt::format("token file '{}' has {} tokens, fewer than block_size + 1 = {}", data.path(),
                                data.size(), block_size + 1));
  }
  return at::randint(data.size() - block_size, {batch_size}, generator, at::kLong);
}

std::pair<at::Tensor, at::Tensor> load_batch(const TokenFile& data, const at::Tensor& offsets, int64_t block_size,
                                             const at::Device& device) {
  auto [x, y] = batch_at(data, offsets, block_size);
  if (device.is_cuda()) {
    return {x.pin_memory().to(device, /*non_blocking=*/true), y.pin_memory().to(device, /*non_blocking=*/true)};
  }
  return {x, y};
}

std::pair<at::Tensor, at::Tensor> get_batch(const TokenFile& data, int64_t batch_size, int64_t block_size,
                                            const at::Device& device) {
  return load_batch(data, draw_batch_offsets(data, batch_size, block_size), block_size, device);
}

ShardedBatches::ShardedBatches(const TokenFile& train, const TokenFile& val, const Options& options,
                               const at::Device& device, const at::Tensor& rng_state,
                               std::function<bool(int64_t)> evaluates, int64_t first_iter)
    : train_(train),
      val_(val),
      options_(options),
      device_(device),
      generator_(at::detail::createCPUGenerator()),
      evaluates_(std::move(evaluates)),
      next_iter_(first_iter) {
  if (options.world_size < 1 || options.rank < 0 || options.rank >= options.world_size ||
      options.micro_steps % options.world_size != 0) {
    throw std::invalid_argument(fmt::format("ShardedBatches: rank {} of {} ranks with {} micro-steps", options.rank,
                                            options.world_size, options.micro_steps));
  }
  generator_.set_state(rng_state);
}

void ShardedBatches::draw_iteration() {
  const int64_t per_rank = options_.micro_steps / options_.world_size;
  const int64_t first_own = (options_.world_size - 1 - options_.rank) * per_rank;
  auto draw = [&](const TokenFile& data) {
    return draw_batch_offsets(data, options_.batch_size, options_.block_size, generator_);
  };
  pending_rng_state_ = generator_.get_state();
  std::vector<at::Tensor> train_offsets{draw(train_)};
  eval_offsets_.clear();
  if (evaluates_(next_iter_)) {
    for (const std::string split : {"train", "val"}) {
      for (int64_t k = 0; k < options_.eval_iters; ++k) eval_offsets_[split].push_back(draw(split == "train" ? train_ : val_));
    }
  }
  for (int64_t j = 1; j < options_.micro_steps; ++j) train_offsets.push_back(draw(train_));
  for (int64_t j = first_own; j < first_own + per_rank; ++j) own_offsets_.push_back(train_offsets[j]);
  next_iter_ += 1;
}

std::pair<at::Tensor, at::Tensor> ShardedBatches::next_train() {
  if (own_offsets_.empty()) draw_iteration();
  const at::Tensor offsets = own_offsets_.front();
  own_offsets_.pop_front();
  return load_batch(train_, offsets, options_.block_size, device_);
}

std::pair<at::Tensor, at::Tensor> ShardedBatches::next_eval(const std::string& split) {
  auto& queue = eval_offsets_[split];
  if (queue.empty()) {
    throw std::logic_error(fmt::format("ShardedBatches: no {} evaluation batch left in this iteration", split));
  }
  const at::Tensor offsets = queue.front();
  queue.pop_front();
  return load_batch(split == "train" ? train_ : val_, offsets, options_.block_size, device_);
}

void write_token_file(const std::string& path, const std::vector<uint16_t>& tokens) {
  write_file_atomically(path, [&](std::ostream& out) {
    out.write(reinterpret_cast<const char*>(tokens.data()), static_cast<std::streamsize>(tokens.size() * 2));
  });
}

}  // namespace nanogpt
