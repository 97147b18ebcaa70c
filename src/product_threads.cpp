#include "nanogpt/product_threads.h"

#include <dlfcn.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "blas_gemm.h"

namespace nanogpt {

namespace {

// A helper that has had no work for this long sleeps until the next run (a futex wake, tens
// of microseconds); until then it polls, yielding its core to anything else that wants it.
constexpr auto kPollFor = std::chrono::milliseconds(5);
constexpr int kPausePolls = 2000;
constexpr int64_t kMinRowsPerBlock = 32;
constexpr int64_t kRowAlign = 16;

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace

struct ProductThreads::State {
  std::mutex wake_mutex;
  std::condition_variable wake;
  std::atomic<uint64_t> generation{0};  // one per run; helpers wait for it to change
  std::atomic<int> unfinished{0};       // helpers still inside the current run
  std::atomic<bool> stopping{false};
  const std::function<void(int)>* part = nullptr;
  int parts = 0;
  std::mutex error_mutex;
  std::exception_ptr error;
  std::mutex running;  // one run at a time
  std::function<void(int)> set_blas_threads;
  int blas_threads = 1;
  std::vector<std::thread> helpers;

  void record(std::exception_ptr e) {
    const std::lock_guard<std::mutex> lock(error_mutex);
    if (!error) error = std::move(e);
  }

  uint64_t wait_for_run(uint64_t seen) {
    const auto since = std::chrono::steady_clock::now();
    for (int polls = 0;; ++polls) {
      const uint64_t now = generation.load(std::memory_order_acquire);
      if (now != seen || stopping.load(std::memory_order_relaxed)) return now;
      if (polls < kPausePolls) {
        cpu_relax();
      } else if (polls % 64 == 0 && std::chrono::steady_clock::now() - since > kPollFor) {
        break;
      } else {
        std::this_thread::yield();
      }
    }
    std::unique_lock<std::mutex> lock(wake_mutex);
    wake.wait(lock, [&] { return generation.load() != seen || stopping.load(); });
    return generation.load(std::memory_order_acquire);
  }

  void helper(int index) {
    uint64_t seen = 0;
    for (;;) {
      seen = wait_for_run(seen);
      if (stopping.load()) return;
      if (index < parts) {
        try {
          (*part)(index);
        } catch (...) {
          record(std::current_exception());
        }
      }
      unfinished.fetch_sub(1, std::memory_order_release);
    }
  }
};

ProductThreads::ProductThreads(int threads, std::function<void(int)> set_blas_threads, int blas_threads)
    : threads_(threads), state_(std::make_unique<State>()) {
  if (threads < 2) throw std::invalid_argument("ProductThreads needs at least 2 threads, got " + std::to_string(threads));
  state_->set_blas_threads = std::move(set_blas_threads);
  state_->blas_threads = blas_threads;
  for (int index = 1; index < threads; ++index) state_->helpers.emplace_back([this, index] { state_->helper(index); });
}

ProductThreads::~ProductThreads() {
  {
    const std::lock_guard<std::mutex> lock(state_->wake_mutex);
    state_->stopping = true;
  }
  state_->wake.notify_all();
  for (std::thread& helper : state_->helpers) helper.join();
}

void ProductThreads::run(int parts, const std::function<void(int)>& part) {
  if (parts > threads_) throw std::invalid_argument("ProductThreads::run: more parts than threads");
  std::unique_lock<std::mutex> running(state_->running, std::try_to_lock);
  if (parts <= 1 || !running.owns_lock()) {
    for (int index = 0; index < parts; ++index) part(index);
    return;
  }
  State& s = *state_;
  s.part = &part;
  s.parts = parts;
  s.error = nullptr;
  s.unfinished.store(threads_ - 1, std::memory_order_relaxed);
  // each block is one single-threaded BLAS call; the BLAS's own threads would fight over the cores
  if (s.set_blas_threads) s.set_blas_threads(1);
  {
    const std::lock_guard<std::mutex> lock(s.wake_mutex);  // a helper going to sleep sees the new run
    s.generation.fetch_add(1, std::memory_order_release);
  }
  s.wake.notify_all();
  try {
    part(0);
  } catch (...) {
    s.record(std::current_exception());
  }
  for (int polls = 0; s.unfinished.load(std::memory_order_acquire) != 0; ++polls) {
    if (polls < kPausePolls) {
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
  if (s.set_blas_threads) s.set_blas_threads(s.blas_threads);
  if (s.error) std::rethrow_exception(s.error);
}

RowBlocks::RowBlocks(int64_t rows, int threads) : rows(rows) {
  const int64_t most = std::max<int64_t>(1, std::min<int64_t>(threads, rows / kMinRowsPerBlock));
  per_block = std::max<int64_t>(1, (rows + most - 1) / most);
  if (most > 1) per_block = (per_block + kRowAlign - 1) / kRowAlign * kRowAlign;
  count = static_cast<int>(std::max<int64_t>(1, (rows + per_block - 1) / per_block));
}

namespace {

// ProductThreads for the process's OpenBLAS, or null with the reason in `why_not`.
std::shared_ptr<ProductThreads> product_threads_for_blas(std::string* why_not) {
  auto refuse = [&](const std::string& reason) {
    *why_not = reason;
    return std::shared_ptr<ProductThreads>();
  };
  using GetThreads = int (*)();
  using SetThreads = void (*)(int);
  // the BLAS LibTorch itself calls: resolved in the process, not linked by this library
  const auto get_threads = reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  const auto set_threads = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (!get_threads || !set_threads || !blas_gemm::available()) {
    return refuse("the BLAS is not OpenBLAS; its own threading is kept");
  }
  const int blas_threads = get_threads();
  if (blas_threads < 2) return refuse("OpenBLAS has 1 thread");
  return std::make_shared<ProductThreads>(blas_threads, set_threads, blas_threads);
}

}  // namespace

std::shared_ptr<ProductThreads> product_threads_for_run(bool split_products, bool on_cpu, bool bf16_on_libtorch,
                                                        std::string* summary) {
  summary->clear();
  if (!on_cpu) return nullptr;
  const std::string unsplit = bf16_on_libtorch ? "LibTorch's bf16 kernels (this CPU has bf16 instructions)"
                                                : "the BLAS's own threading";
  if (!split_products) {
    *summary = "matrix products: " + unsplit + " (split_products: false)";
    return nullptr;
  }
  std::string why_not;
  std::shared_ptr<ProductThreads> threads = product_threads_for_blas(&why_not);
  if (!threads) {
    *summary = "matrix products: " + unsplit + " (" + why_not + ")";
  } else if (bf16_on_libtorch) {
    *summary = "matrix products: " + unsplit + "; the fused attention across " +
               std::to_string(threads->threads()) + " threads (split_products)";
  } else {
    *summary = "matrix products: split into blocks of rows across " + std::to_string(threads->threads()) +
               " threads, one single-threaded OpenBLAS call each (split_products)";
  }
  return threads;
}

}  // namespace nanogpt
