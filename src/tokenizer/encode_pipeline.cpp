#include "nanogpt/tokenizer/encode_pipeline.h"

#include <algorithm>

namespace nanogpt::detail {

EncodePipeline::EncodePipeline(const Gpt2Bpe& bpe, int threads, Write write)
    : bpe_(bpe), write_(std::move(write)), max_in_flight_(static_cast<size_t>(std::max(1, threads)) * 4) {
  for (int t = 0; t < std::max(1, threads); ++t) workers_.emplace_back([this] { work(); });
}

EncodePipeline::~EncodePipeline() { stop_workers(); }

void EncodePipeline::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  work_ready_.notify_all();
  for (auto& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
}

void EncodePipeline::work() {
  BpeCache cache;  // one per thread: it is not shared
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    work_ready_.wait(lock, [&] { return stopping_ || claimed_ < in_flight_.size(); });
    if (stopping_) return;
    DocumentBatch& batch = *in_flight_[claimed_++];  // deque elements stay put while others come and go
    lock.unlock();
    try {
      for (size_t d = 0; d < batch.documents.size(); ++d) {
        std::vector<uint32_t>& ids = batch.is_val[d] ? batch.val_ids : batch.train_ids;
        bpe_.encode_ordinary(batch.documents[d], cache, ids);
        ids.push_back(Gpt2Bpe::kEndOfText);
        std::string().swap(batch.documents[d]);  // the text is no longer needed
      }
    } catch (...) {
      batch.error = std::current_exception();
    }
    lock.lock();
    batch.done = true;
    batch_done_.notify_all();
  }
}

// Writes the finished batches at the front; with `all`, waits until every batch is written.
void EncodePipeline::write_finished(std::unique_lock<std::mutex>& lock, bool all) {
  while (!in_flight_.empty()) {
    if (!in_flight_.front()->done) {
      if (!all && in_flight_.size() < max_in_flight_) return;
      batch_done_.wait(lock, [&] { return in_flight_.front()->done; });
    }
    std::unique_ptr<DocumentBatch> batch = std::move(in_flight_.front());
    in_flight_.pop_front();
    --claimed_;
    if (batch->error) std::rethrow_exception(batch->error);
    lock.unlock();
    write_(*batch);
    lock.lock();
  }
}

void EncodePipeline::submit(std::unique_ptr<DocumentBatch> batch) {
  std::unique_lock<std::mutex> lock(mutex_);
  write_finished(lock, false);
  in_flight_.push_back(std::move(batch));
  work_ready_.notify_one();
}

void EncodePipeline::finish() {
  std::unique_lock<std::mutex> lock(mutex_);
  write_finished(lock, true);
  lock.unlock();
  stop_workers();
}

}  // namespace nanogpt::detail
