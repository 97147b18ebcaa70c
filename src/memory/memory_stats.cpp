#include "nanogpt/memory/memory_stats.h"

#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <torch/version.h>

#include <atomic>
#include <fstream>
#include <string>

#include <fmt/format.h>

#include "memory/large_cpu_blocks.h"

#ifdef NANOGPT_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAException.h>
#include <cuda_runtime_api.h>
#endif

namespace nanogpt {

namespace {

// Allocates like LibTorch's default CPU allocator (c10::alloc_cpu, 64-byte aligned), or from
// large_cpu_blocks from 32 MiB on, with a 64-byte header in front that records the size (and
// the block's mapping), so that the deleter can count the release and free the block, and
// the data pointer can stay its own context (raw_allocate requires that).
class CountingCpuAllocator final : public c10::Allocator {
 public:
  static constexpr size_t kHeaderBytes = 64;

  c10::DataPtr allocate(size_t bytes) override {
    const int64_t limit = limit_.load();
    if (limit > 0 && live_.load() + static_cast<int64_t>(bytes) > limit) {
      TORCH_CHECK_WITH(OutOfMemoryError, false, "CPU out of memory: tried to allocate ", format_bytes(bytes), " with ",
                       format_bytes(live_.load()), " held by tensors and a limit of ", format_bytes(limit));
    }
    size_t mapped_bytes = 0;
    void* block = bytes + kHeaderBytes >= large_cpu_blocks::kMinBytes
                      ? large_cpu_blocks::take(bytes + kHeaderBytes, &mapped_bytes)
                      : nullptr;
    if (block == nullptr) block = c10::alloc_cpu(bytes + kHeaderBytes);
    auto* header = static_cast<Header*>(block);
    header->bytes = bytes;
    header->mapped_bytes = mapped_bytes;
    void* data = reinterpret_cast<char*>(header) + kHeaderBytes;
    const int64_t now = live_.fetch_add(static_cast<int64_t>(bytes)) + static_cast<int64_t>(bytes);
    raise_to(peak_, now);
    raise_to(most_ever_, now);
    // kept large blocks may fill only what tensors leave free under their high-water mark
    const int64_t room = most_ever_.load() - now;
    if (large_cpu_blocks::kept_bytes() > room) large_cpu_blocks::trim(room);
    return {data, data, &release, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &release; }
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }

  int64_t live() const { return live_.load(); }
  int64_t peak() const { return peak_.load(); }
  int64_t most_ever() const { return most_ever_.load(); }
  void reset_peak() const { peak_.store(live_.load()); }
  void set_limit(int64_t bytes) const { limit_.store(bytes); }

 private:
  struct Header {
    size_t bytes;         // the tensor's
    size_t mapped_bytes;  // of a large_cpu_blocks block; 0 for c10::alloc_cpu's
  };
  static_assert(sizeof(Header) <= kHeaderBytes);

  static void raise_to(std::atomic<int64_t>& mark, int64_t value) {
    int64_t seen = mark.load();
    while (value > seen && !mark.compare_exchange_weak(seen, value)) {
    }
  }

  static void release(void* data) {
    if (data == nullptr) return;
    auto* header = reinterpret_cast<Header*>(static_cast<char*>(data) - kHeaderBytes);
    const int64_t now = live_.fetch_sub(static_cast<int64_t>(header->bytes)) - static_cast<int64_t>(header->bytes);
    if (header->mapped_bytes > 0) {
      large_cpu_blocks::give_back(header, header->mapped_bytes, static_cast<int64_t>(header->bytes),
                                  most_ever_.load() - now);
    } else {
      c10::free_cpu(header);
    }
  }

  static std::atomic<int64_t> live_;
  static std::atomic<int64_t> most_ever_;  // live_'s high-water mark, never reset
  mutable std::atomic<int64_t> peak_{0};
  mutable std::atomic<int64_t> limit_{0};
};

std::atomic<int64_t> CountingCpuAllocator::live_{0};
std::atomic<int64_t> CountingCpuAllocator::most_ever_{0};

// The allocator registry of LibTorch is process-wide, so the counting allocator is too.
CountingCpuAllocator* counting_allocator = nullptr;

int64_t status_kib(const std::string& field) {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1));
  }
  return -1;
}

}  // namespace

void install_counting_cpu_allocator() {
  if (counting_allocator != nullptr) return;
  counting_allocator = new CountingCpuAllocator();
  c10::SetCPUAllocator(counting_allocator, /*priority=*/100);
}

void keep_freed_cpu_memory() {
#ifdef __GLIBC__
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
  large_cpu_blocks::set_keep_freed(true);
}

void release_freed_cpu_memory() {
#ifdef __GLIBC__
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 10);  // glibc's default
#endif
  large_cpu_blocks::set_keep_freed(false);
}

void apply_cpu_memory_mode(const std::string& mode) {
  if (mode == "release") release_freed_cpu_memory();
}

bool counting_cpu_allocator_installed() { return counting_allocator != nullptr; }

void limit_device_memory(const at::Device& device, int64_t bytes) {
#ifdef NANOGPT_WITH_CUDA
  if (device.is_cuda()) {
    const int index = device.has_index() ? device.index() : 0;
    size_t free_bytes = 0, total_bytes = 0;
    C10_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    const double fraction = bytes <= 0 ? 1.0 : std::min(1.0, static_cast<double>(bytes) / static_cast<double>(total_bytes));
    c10::cuda::CUDACachingAllocator::setMemoryFraction(fraction, index);
    return;
  }
#endif
  (void)device;
  install_counting_cpu_allocator();
  counting_allocator->set_limit(bytes);
}

bool is_out_of_memory(const std::exception& error) {
  return dynamic_cast<const c10::OutOfMemoryError*>(&error) != nullptr ||
         std::string(error.what()).find("not enough memory") != std::string::npos ||
         std::string(error.what()).find("can't allocate memory") != std::string::npos;  // c10::alloc_cpu's
}

void release_cached_memory(const at::Device& device) {
#ifdef NANOGPT_WITH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::emptyCache();
#else
  (void)device;
#endif
}

MemoryPeaks memory_peaks(const at::Device& device) {
  MemoryPeaks peaks;
  if (counting_allocator != nullptr) {
    peaks.cpu_tensor_bytes = counting_allocator->peak();
    peaks.cpu_tensor_bytes_now = counting_allocator->live();
    peaks.cpu_tensor_bytes_most = counting_allocator->most_ever();
  }
  const int64_t hwm_kib = status_kib("VmHWM");
  if (hwm_kib >= 0) peaks.peak_rss_bytes = hwm_kib * 1024;
#ifdef NANOGPT_WITH_CUDA
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.has_index() ? device.index() : 0);
    peaks.cuda_allocated_bytes = stats.allocated_bytes[0].peak;
    peaks.cuda_reserved_bytes = stats.reserved_bytes[0].peak;
  }
#else
  (void)device;
#endif
  return peaks;
}

void reset_memory_peaks(const at::Device& device) {
  if (counting_allocator != nullptr) counting_allocator->reset_peak();
  std::ofstream("/proc/self/clear_refs") << "5";  // resets VmHWM to the current RSS
#ifdef NANOGPT_WITH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.has_index() ? device.index() : 0);
#else
  (void)device;
#endif
}

std::string format_bytes(int64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (b >= 1024.0 * 1024 * 1024) return fmt::format("{:.2f} GiB", b / (1024.0 * 1024 * 1024));
  if (b >= 1024.0 * 1024) return fmt::format("{:.1f} MiB", b / (1024.0 * 1024));
  return fmt::format("{:.1f} KiB", b / 1024.0);
}

}  // namespace nanogpt
