#pragma once
// Threads for the model's matrix products on the CPU. OpenBLAS's own threading splits one
// product among its threads and synchronises them within it; at the small products of the
// CPU recipes (768 x 128 activations) that costs about a tenth of the products' time
// (docs/performance.md, "Split products"). Here each product is instead cut into blocks of
// whole output rows, and each block is one single-threaded sgemm call on its own thread: the
// caller takes the first block, helper threads owned by this object the others.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace nanogpt {

class ProductThreads {
 public:
  // `threads` in all, the caller's included (>= 2). `set_blas_threads` sets the BLAS's own
  // thread count (null: leave it); run() sets it to 1 while the blocks run, then back.
  ProductThreads(int threads, std::function<void(int)> set_blas_threads, int blas_threads);
  ~ProductThreads();
  ProductThreads(const ProductThreads&) = delete;
  ProductThreads& operator=(const ProductThreads&) = delete;

  int threads() const { return threads_; }
  // part(i) for every i in [0, parts), parts <= threads(): part 0 on the calling thread, the
  // others on the helpers; returns when all have finished and rethrows the first exception
  // of any part. A second caller arriving while a run is in progress runs its parts itself.
  void run(int parts, const std::function<void(int)>& part);

 private:
  struct State;
  int threads_;
  std::unique_ptr<State> state_;
};

// `rows` cut into at most `threads` blocks for ProductThreads::run, of at least 32 rows each
// (fewer cost more to hand over than they save), their edges at multiples of 16 rows
// (OpenBLAS's row unrolling: no block runs a tail kernel the whole product would not).
struct RowBlocks {
  RowBlocks(int64_t rows, int threads);
  int64_t begin(int block) const { return std::min(rows, block * per_block); }
  int64_t end(int block) const { return std::min(rows, (block + 1) * per_block); }
  int64_t rows, per_block;
  int count;
};

// What a run on the CPU (`on_cpu`) with config key split_products uses: ProductThreads with one
// thread per thread of the process's OpenBLAS (OPENBLAS_NUM_THREADS, else every core), or null
// where that is off, the BLAS LibTorch calls is not OpenBLAS, or it has one thread; and in
// `summary` a line for the log that says which and why (empty off the CPU). With
// `bf16_on_libtorch` (bf16 autocast on a CPU with bf16 instructions) the products are
// LibTorch's bf16 kernels, never split, and only the fused attention takes the threads.
std::shared_ptr<ProductThreads> product_threads_for_run(bool split_products, bool on_cpu, bool bf16_on_libtorch,
                                                        std::string* summary);

}  // namespace nanogpt
