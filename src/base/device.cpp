#include "nanogpt/base/device.h"

#include <ATen/Parallel.h>
#include <torch/version.h>

#include <cstdlib>
#include <stdexcept>
#include <thread>

#ifdef NANOGPT_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAFunctions.h>
#include <torch/cuda.h>
#endif

namespace nanogpt {

bool cuda_available() {
#ifdef NANOGPT_WITH_CUDA
  return torch::cuda::is_available();
#else
  return false;
#endif
}

std::string cuda_unusable_reason() {
#ifdef NANOGPT_WITH_CUDA
  if (torch::cuda::is_available()) return "";
  try {
    c10::cuda::device_count_ensure_non_zero();
  } catch (const c10::Error& e) {
    const std::string message = e.what_without_backtrace();
    return message.substr(0, message.find('\n'));
  }
  return "no CUDA device is visible";
#else
  return "this nanogpt is a CPU build (LibTorch without CUDA, or NANOGPT_WITH_CUDA off)";
#endif
}

void check_device_name(const std::string& name) {
  if (name == "cpu" || name == "cuda" || name == "auto") return;
  if (name.rfind("cuda:", 0) == 0 && name.size() > 5 &&
      name.find_first_not_of("0123456789", 5) == std::string::npos) {
    return;
  }
  throw std::invalid_argument("device '" + name + "' is not supported; expected cpu, cuda, cuda:N or auto");
}

std::string resolved_device_name(const std::string& name) {
  if (name != "auto") return name;
  return cuda_available() ? "cuda" : "cpu";
}

at::Device parse_device(const std::string& name) {
  check_device_name(name);
  const std::string resolved = resolved_device_name(name);
  if (resolved != "cpu" && !cuda_available()) {
    throw std::runtime_error("device '" + name + "': no CUDA device is usable (" + cuda_unusable_reason() +
                             "); use device: cpu, or auto to take a GPU when there is one");
  }
  return at::Device(resolved);
}

std::string device_choice(const std::string& name, const at::Device& device) {
  if (name != "auto") return device.str();
  if (device.is_cuda()) return device.str() + " (device auto: a CUDA device is usable)";
  return device.str() + " (device auto: no CUDA device is usable: " + cuda_unusable_reason() + ")";
}

int hardware_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

std::string cpu_threads_summary() {
  const int threads = at::get_num_threads();
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  return std::to_string(threads) + (threads == 1 ? " thread" : " threads") +
         (policy != nullptr ? std::string(" (OMP_WAIT_POLICY=") + policy + ")"
                            : std::string(" (OMP_WAIT_POLICY unset: idle OpenMP workers spin)"));
}

std::string device_name(const at::Device& device) {
#ifdef NANOGPT_WITH_CUDA
  if (device.is_cuda()) return at::cuda::getDeviceProperties(device.index() < 0 ? 0 : device.index())->name;
#endif
  (void)device;
  return "";
}

void synchronize(const at::Device& device) {
#ifdef NANOGPT_WITH_CUDA
  if (device.is_cuda()) c10::cuda::device_synchronize();
#endif
  (void)device;
}

std::string torch_build_summary() {
#ifdef NANOGPT_WITH_CUDA
  return "LibTorch " TORCH_VERSION ", CUDA build";
#else
  return "LibTorch " TORCH_VERSION ", CPU build";
#endif
}

}  // namespace nanogpt
