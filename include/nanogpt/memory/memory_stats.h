#pragma once
// Measured memory: bytes held by CPU tensors (a counting allocator the binary installs),
// the process's peak resident set, and the CUDA caching allocator's peaks.
#include <ATen/ATen.h>

#include <cstdint>
#include <string>

namespace nanogpt {

// Replaces LibTorch's CPU allocator by one that counts the bytes of live tensors.
// Idempotent; tensors allocated before keep their own deleters and are not counted.
void install_counting_cpu_allocator();
bool counting_cpu_allocator_installed();

// Tells glibc's malloc to keep freed tensor memory for the next step instead of giving it
// back to the kernel: a fixed mmap threshold of 32 MiB (its maximum; by default it adapts
// and 1-32 MiB tensors move between mmap and the heap) and a trim threshold of 1 GiB. Each
// step then reuses the pages of the last one instead of faulting in and zeroing fresh pages.
// Process-wide, so the binary calls it once; a no-op without glibc.
void keep_freed_cpu_memory();

// The opposite, for runs that trade speed for a lower peak RSS: allocations of 1 MiB and more
// get their own mapping, given back to the kernel when freed, so memory freed between two
// peaks does not stay resident in holes of the heap. Steps get slower (every large tensor
// faults in fresh pages); docs/memory.md has the figures.
void release_freed_cpu_memory();

// The config key cpu_memory: "release" calls release_freed_cpu_memory(); "keep" leaves the
// binary's setting.
void apply_cpu_memory_mode(const std::string& mode);

// Caps the bytes that tensors may hold on `device` (0: no cap), the way a smaller GPU
// would: on the CPU the counting allocator refuses allocations past it with
// c10::OutOfMemoryError; on CUDA the caching allocator's memory fraction is set.
void limit_device_memory(const at::Device& device, int64_t bytes);

// limit_device_memory for a scope: the cap is process-wide, so it is lifted at the end.
class ScopedDeviceMemoryLimit {
 public:
  ScopedDeviceMemoryLimit(const at::Device& device, int64_t bytes) : device_(device), active_(bytes > 0) {
    if (active_) limit_device_memory(device_, bytes);
  }
  ~ScopedDeviceMemoryLimit() {
    if (active_) limit_device_memory(device_, 0);
  }
  ScopedDeviceMemoryLimit(const ScopedDeviceMemoryLimit&) = delete;
  ScopedDeviceMemoryLimit& operator=(const ScopedDeviceMemoryLimit&) = delete;

 private:
  at::Device device_;
  bool active_;
};

// True for the out-of-memory errors of either allocator.
bool is_out_of_memory(const std::exception& error);

// Gives cached blocks back to the device (CUDA), after an out-of-memory error.
void release_cached_memory(const at::Device& device);

struct MemoryPeaks {
  int64_t cpu_tensor_bytes = -1;      // peak bytes held by CPU tensors (-1: not counted)
  int64_t cpu_tensor_bytes_now = -1;  // bytes held now
  int64_t cpu_tensor_bytes_most = -1;  // the most ever held (never reset)
  int64_t peak_rss_bytes = -1;        // peak resident set of the process (VmHWM)
  int64_t cuda_allocated_bytes = -1;  // CUDA caching allocator peak allocated (-1: no CUDA)
  int64_t cuda_reserved_bytes = -1;   // CUDA caching allocator peak reserved
};

// The peaks since the last reset_memory_peaks(), for `device`.
MemoryPeaks memory_peaks(const at::Device& device);

// Starts a new measuring window: tensor and CUDA peaks drop to the current usage, and the
// kernel's peak-RSS mark is reset (/proc/self/clear_refs) where the kernel allows it.
void reset_memory_peaks(const at::Device& device);

// "1.23 GiB", "512.0 MiB".
std::string format_bytes(int64_t bytes);

}  // namespace nanogpt
