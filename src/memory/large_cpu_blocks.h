#pragma once
// Memory for CPU tensors of 32 MiB and more, which glibc would map afresh for each one (its
// mmap threshold cannot go higher), faulting in 4 KiB pages that the kernel zeroes one by
// one. Here such blocks are mapped on 2 MiB boundaries with transparent huge pages (where
// /sys/kernel/mm/transparent_hugepage/enabled allows them) and, while freed memory is kept (keep_freed_cpu_memory), a freed block can wait
// for the next request of its size, so that a training step reuses the last step's pages.
// How much may wait is the caller's choice (the counting CPU allocator: no more than keeps
// tensors and kept blocks together under the most that tensors ever held). Process-wide,
// as LibTorch's CPU allocator is.
#include <cstddef>
#include <cstdint>

namespace nanogpt::large_cpu_blocks {

// Requests from this many bytes on are served here.
constexpr size_t kMinBytes = size_t{32} << 20;

// A block of at least `bytes` at a 2 MiB boundary, a kept one of that size if there is one,
// and its mapped size in *mapped_bytes; nullptr where the kernel refuses the mapping (or on
// systems without mmap and madvise).
void* take(size_t bytes, size_t* mapped_bytes);

// A block from take(), freed, that held `counted_bytes` (what the caller counts it as; its
// mapping is larger by the rounding to 2 MiB): kept if freed memory is kept and the kept
// blocks' counted bytes stay within max_kept_bytes, unmapped otherwise.
void give_back(void* block, size_t mapped_bytes, int64_t counted_bytes, int64_t max_kept_bytes);

// Unmaps kept blocks until their counted bytes are at most max_kept_bytes.
void trim(int64_t max_kept_bytes);

// The counted bytes of the blocks kept now.
int64_t kept_bytes();

// Whether freed blocks are kept; turning it off unmaps the kept ones.
void set_keep_freed(bool keep);

}  // namespace nanogpt::large_cpu_blocks
