#include "memory/large_cpu_blocks.h"

#ifdef __linux__
#include <sys/mman.h>
#endif

#include <atomic>
#include <cstdint>
#include <mutex>
#include <unordered_map>

namespace nanogpt::large_cpu_blocks {

namespace {

constexpr size_t kHugePageBytes = size_t{2} << 20;

size_t round_up(size_t bytes, size_t multiple) { return (bytes + multiple - 1) / multiple * multiple; }

void* map_block(size_t length) {
#ifdef __linux__
  // One huge page more than needed, then the ends cut off so that the block starts on a boundary.
  void* mapping = mmap(nullptr, length + kHugePageBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapping == MAP_FAILED) return nullptr;
  const auto start = reinterpret_cast<uintptr_t>(mapping);
  const uintptr_t aligned = round_up(start, kHugePageBytes);
  if (aligned > start) munmap(mapping, aligned - start);
  munmap(reinterpret_cast<void*>(aligned + length), start + kHugePageBytes - aligned);
  madvise(reinterpret_cast<void*>(aligned), length, MADV_HUGEPAGE);
  return reinterpret_cast<void*>(aligned);
#else
  (void)length;
  return nullptr;
#endif
}

void unmap_block(void* block, size_t length) {
#ifdef __linux__
  munmap(block, length);
#else
  (void)block;
  (void)length;
#endif
}

struct Block {
  void* start;
  int64_t counted_bytes;
};

struct Kept {
  std::mutex mutex;
  std::unordered_multimap<size_t, Block> blocks;  // by mapped size
  std::atomic<int64_t> bytes{0};                  // counted
  bool keep_freed = false;

  void trim_locked(int64_t max_bytes) {
    while (!blocks.empty() && bytes.load() > max_bytes) {
      const auto one = blocks.begin();
      unmap_block(one->second.start, one->first);
      bytes -= one->second.counted_bytes;
      blocks.erase(one);
    }
  }
};

Kept& kept() {
  static auto* all = new Kept();  // never destroyed: tensors may be freed during exit
  return *all;
}

}  // namespace

void* take(size_t bytes, size_t* mapped_bytes) {
  const size_t length = round_up(bytes, kHugePageBytes);
  Kept& k = kept();
  if (k.bytes.load() > 0) {
    std::lock_guard<std::mutex> lock(k.mutex);
    const auto found = k.blocks.find(length);
    if (found != k.blocks.end()) {
      void* block = found->second.start;
      k.bytes -= found->second.counted_bytes;
      k.blocks.erase(found);
      *mapped_bytes = length;
      return block;
    }
  }
  void* block = map_block(length);
  if (block != nullptr) *mapped_bytes = length;
  return block;
}

void give_back(void* block, size_t mapped_bytes, int64_t counted_bytes, int64_t max_kept_bytes) {
  Kept& k = kept();
  {
    std::lock_guard<std::mutex> lock(k.mutex);
    if (k.keep_freed && k.bytes.load() + counted_bytes <= max_kept_bytes) {
      k.blocks.emplace(mapped_bytes, Block{block, counted_bytes});
      k.bytes += counted_bytes;
      return;
    }
  }
  unmap_block(block, mapped_bytes);
}

void trim(int64_t max_kept_bytes) {
  Kept& k = kept();
  std::lock_guard<std::mutex> lock(k.mutex);
  k.trim_locked(max_kept_bytes);
}

int64_t kept_bytes() { return kept().bytes.load(); }

void set_keep_freed(bool keep) {
  Kept& k = kept();
  std::lock_guard<std::mutex> lock(k.mutex);
  k.keep_freed = keep;
  if (!keep) k.trim_locked(0);
}

}  // namespace nanogpt::large_cpu_blocks
