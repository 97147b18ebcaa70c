#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdint>

#include "nanogpt/memory/memory_stats.h"

#include "memory/large_cpu_blocks.h"  // src/: what the counting allocator keeps

using namespace nanogpt;

namespace {

constexpr int64_t kMiB = int64_t{1} << 20;

// The binary's setting for a test, whatever an earlier test left.
struct KeptFreedMemory {
  KeptFreedMemory() {
    install_counting_cpu_allocator();
    release_freed_cpu_memory();  // starts with nothing kept
    keep_freed_cpu_memory();
  }
  ~KeptFreedMemory() { keep_freed_cpu_memory(); }
};

}  // namespace

TEST(LargeCpuBlocks, AFreedLargeTensorsBlockServesTheNextOfItsSize) {
  KeptFreedMemory kept_memory;
  void* first = nullptr;
  {
    const auto t = torch::ones({40 * kMiB / 4});
    first = t.data_ptr();
    EXPECT_EQ(reinterpret_cast<uintptr_t>(first) % 64, 0u);
    EXPECT_EQ(large_cpu_blocks::kept_bytes(), 0);
  }
  EXPECT_EQ(large_cpu_blocks::kept_bytes(), 40 * kMiB);
  {
    const auto again = torch::empty({41 * kMiB / 4});  // rounds to the same 2 MiB multiple
    EXPECT_EQ(again.data_ptr(), first);
    EXPECT_EQ(large_cpu_blocks::kept_bytes(), 0);
  }
  EXPECT_EQ(large_cpu_blocks::kept_bytes(), 41 * kMiB);
}

TEST(LargeCpuBlocks, KeptBlocksStayUnderTheMostTensorsEverHeld) {
  KeptFreedMemory kept_memory;
  const auto held = [] {
    const MemoryPeaks now = memory_peaks(at::Device(at::kCPU));
    return std::make_pair(now.cpu_tensor_bytes_now, now.cpu_tensor_bytes_most);
  };
  // Tensors past the most ever held (by earlier tests too), so that the mark is theirs.
  const int64_t most_before = held().second, chunk = std::max<int64_t>(40 * kMiB, most_before / 2 + kMiB) / 64 * 64;
  {
    auto a = torch::empty({chunk / 4}), b = torch::empty({chunk / 4});
  }
  EXPECT_EQ(large_cpu_blocks::kept_bytes(), 2 * chunk);
  // A size that no kept block fits: the kept ones must leave it room under the mark.
  const auto c = torch::empty({(chunk + 4 * kMiB) / 4});
  const auto [live, most] = held();
  EXPECT_LE(live + large_cpu_blocks::kept_bytes(), most);
  EXPECT_LT(large_cpu_blocks::kept_bytes(), 2 * chunk);
  // small tensors too make kept blocks go
  auto smalls = std::vector<torch::Tensor>();
  for (int i = 0; i < 8; ++i) smalls.push_back(torch::empty({kMiB / 4}));
  const auto [live_now, most_now] = held();
  EXPECT_LE(live_now + large_cpu_blocks::kept_bytes(), most_now);
}

TEST(LargeCpuBlocks, ReleasingFreedMemoryUnmapsKeptBlocks) {
  KeptFreedMemory kept_memory;
  { const auto t = torch::empty({40 * kMiB / 4}); }
  EXPECT_EQ(large_cpu_blocks::kept_bytes(), 40 * kMiB);
  release_freed_cpu_memory();
  EXPECT_EQ(large_cpu_blocks::kept_bytes(), 0);
  { const auto t = torch::empty({40 * kMiB / 4}); }
  EXPECT_EQ(large_cpu_blocks::kept_bytes(), 0);
}
