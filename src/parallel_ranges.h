#pragma once
// A parallel loop over [0, n) for the port's kernels: on the model's ProductThreads when it has
// them (LibTorch then has one thread, and the kernels would run one range after another), else
// at::parallel_for's.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

#include "nanogpt/product_threads.h"

namespace nanogpt {

// body(begin, end) over [0, n): in at most threads->threads() even ranges of at least `grain`
// items on `threads`, or, where `threads` is null or that makes one range, as at::parallel_for.
template <typename Body>
void parallel_ranges(ProductThreads* threads, int64_t n, int64_t grain, const Body& body) {
  const int parts = threads == nullptr ? 1 : static_cast<int>(std::min<int64_t>(threads->threads(), n / grain));
  if (parts < 2) {
    at::parallel_for(0, n, grain, body);
    return;
  }
  threads->run(parts, [&](int part) { body(n * part / parts, n * (part + 1) / parts); });
}

}  // namespace nanogpt
