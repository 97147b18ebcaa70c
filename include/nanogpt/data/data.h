#pragma once
// nanoGPT's token files: raw little-endian uint16 `train.bin` / `val.bin`, memory-mapped,
// and get_batch's random windows.
#include <ATen/ATen.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

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

// get_batch in two halves: the offsets it draws (from `generator`, or from the default
// generator when none is given), and the windows at them, moved to `device`.
at::Tensor draw_batch_offsets(const TokenFile& data, int64_t batch_size, int64_t block_size,
                              c10::optional<at::Generator> generator = c10::nullopt);
std::pair<at::Tensor, at::Tensor> load_batch(const TokenFile& data, const at::Tensor& offsets, int64_t block_size,
                                             const at::Device& device);

// The batches of one rank in a data-parallel run, so that the run does not depend on the
// number of ranks. Every rank draws the offsets of all `micro_steps` micro-batches of an
// iteration from its own copy of one data generator, in the order in which a one-process run
// draws them from the default generator: the iteration's first training batch, the
// evaluation batches (train, then val) when the iteration evaluates, then the remaining
// training batches. Each rank loads only its share: rank r of W runs micro-batches
// (W-1-r)*k/W .. (W-r)*k/W-1 of the k, so that rank 0 runs the last one, whose loss nanoGPT
// logs. Dropout is left to the default generator, which is no longer shared with the data.
class ShardedBatches {
 public:
  struct Options {
    int64_t batch_size = 12;
    int64_t block_size = 1024;
    int64_t micro_steps = 1;  // gradient_accumulation_steps of all ranks together
    int64_t eval_iters = 200;
    int rank = 0;
    int world_size = 1;
  };
  // `rng_state`: the data generator's state before the first batch of iteration `first_iter`
  // (a one-process run's CPU generator state at that point); `evaluates(it)`: whether
  // iteration `it` runs an evaluation.
  ShardedBatches(const TokenFile& train, const TokenFile& val, const Options& options, const at::Device& device,
                 const at::Tensor& rng_state, std::function<bool(int64_t)> evaluates, int64_t first_iter);

  // This rank's next training micro-batch, drawing the next iteration's offsets when needed.
  std::pair<at::Tensor, at::Tensor> next_train();
  // The next evaluation batch of `split` ("train" or "val") of the current iteration.
  std::pair<at::Tensor, at::Tensor> next_eval(const std::string& split);
  // The data generator's state before the first batch of the latest iteration drawn: what a
  // checkpoint keeps, like a one-process run's state before its pending batch.
  const at::Tensor& pending_rng_state() const { return pending_rng_state_; }

 private:
  void draw_iteration();

  const TokenFile& train_;
  const TokenFile& val_;
  Options options_;
  at::Device device_;
  at::Generator generator_;
  std::function<bool(int64_t)> evaluates_;
  int64_t next_iter_;  // the iteration draw_iteration draws next
  at::Tensor pending_rng_state_;
  std::deque<at::Tensor> own_offsets_;
  std::map<std::string, std::deque<at::Tensor>> eval_offsets_;
};

// Write tokens as a uint16 file (atomically: temporary file, then rename).
void write_token_file(const std::string& path, const std::vector<uint16_t>& tokens);

}  // namespace nanogpt
