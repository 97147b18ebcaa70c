#pragma once
// Internal to prepare gpt2: documents encoded on worker threads, handed back in input order.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "nanogpt/tokenizer/bpe.h"

namespace nanogpt::detail {

// A run of consecutive documents; the workers fill the ids.
struct DocumentBatch {
  std::vector<std::string> documents;
  std::vector<bool> is_val;
  size_t text_bytes = 0;
  std::vector<uint32_t> train_ids, val_ids;  // each document's ids, then <|endoftext|>
  std::exception_ptr error;
  bool done = false;
};

// submit() hands batches to the workers; `write` is called on the submitting thread with
// each finished batch, strictly in submission order. At most `max_in_flight` batches (and
// their texts) are held at once, so memory does not grow with the corpus.
class EncodePipeline {
 public:
  using Write = std::function<void(DocumentBatch&)>;
  EncodePipeline(const Gpt2Bpe& bpe, int threads, Write write);
  ~EncodePipeline();
  void submit(std::unique_ptr<DocumentBatch> batch);
  // Writes every batch left; rethrows the first error of a batch, in document order.
  void finish();

 private:
  void work();
  void write_finished(std::unique_lock<std::mutex>& lock, bool all);
  void stop_workers();

  const Gpt2Bpe& bpe_;
  Write write_;
  size_t max_in_flight_;
  std::mutex mutex_;
  std::condition_variable work_ready_, batch_done_;
  std::deque<std::unique_ptr<DocumentBatch>> in_flight_;  // in submission order
  size_t claimed_ = 0;                                    // batches of in_flight_ taken by workers
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace nanogpt::detail
