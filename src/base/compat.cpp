#include "nanogpt/base/compat.h"

#include "nanogpt/cpu/attention.h"

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <ATen/CPUGeneratorImpl.h>

#ifdef NANOGPT_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAFunctions.h>
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <torch/cuda.h>
#endif

namespace nanogpt {

namespace {

// One lower-triangular mask per (device, size): building it on every call costs more
// than the attention itself at small sizes.
at::Tensor causal_mask(int64_t rows, int64_t cols, int64_t row_offset, const at::Device& device) {
  thread_local at::Tensor cached;
  const int64_t needed = std::max(rows + row_offset, cols);
  if (!cached.defined() || cached.size(0) < needed || cached.device() != device) {
    cached = at::ones({needed, needed}, at::TensorOptions().dtype(at::kBool).device(device)).tril();
  }
  return cached.slice(0, row_offset, row_offset + rows).slice(1, 0, cols);
}

}  // namespace

at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            double dropout_p, int64_t past_length) {
  const int64_t tq = q.size(-2);
  const int64_t tk = k.size(-2);
  // LibTorch's CPU flash kernel has no dropout: with dropout, scaled_dot_product_attention takes the
  // math path, which keeps the (T, T) probabilities and noise. The fused kernel draws the same
  // keep mask from the same generator (CpuAttention.DropoutDrawsLibTorchsMaskAndMatchesAReference)
  // and keeps neither.
  if (dropout_p > 0 && fused_cpu_attention_applies(q, k, v)) {
    return fused_cpu_causal_attention(q, k, v, past_length, dropout_p);
  }
  if (past_length == 0 && tq == tk) {
    return at::scaled_dot_product_attention(q, k, v, {}, dropout_p, /*is_causal=*/true);
  }
  if (tq == 1) return at::scaled_dot_product_attention(q, k, v, {}, dropout_p, false);
  return masked_attention(q, k, v, causal_mask(tq, tk, past_length, q.device()), dropout_p);
}

at::Tensor masked_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask,
                            double dropout_p) {
  return at::scaled_dot_product_attention(q, k, v, mask, dropout_p, /*is_causal=*/false);
}

at::Tensor math_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask,
                          double dropout_p) {
  // the math kernel adds its mask to the scores, so a bool mask becomes 0 / -inf first, as
  // scaled_dot_product_attention does before calling it.
  const at::Tensor additive =
      mask.scalar_type() == at::kBool
          ? at::zeros(mask.sizes(), q.options()).masked_fill(mask.logical_not(), -std::numeric_limits<double>::infinity())
          : mask;
  return std::get<0>(at::_scaled_dot_product_attention_math(q, k, v, additive, dropout_p));
}

AutocastState autocast_state(at::DeviceType device_type) {
  return {at::autocast::is_autocast_enabled(device_type), at::autocast::get_autocast_dtype(device_type)};
}

static void set_autocast_state(at::DeviceType device_type, const AutocastState& state) {
  at::autocast::set_autocast_enabled(device_type, state.enabled);
  at::autocast::set_autocast_dtype(device_type, state.dtype);
}

AutocastGuard::AutocastGuard(at::DeviceType device_type, AutocastState state)
    : device_type_(device_type), previous_(autocast_state(device_type)) {
  set_autocast_state(device_type_, state);
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_autocast_state(device_type_, previous_);
}

static at::Generator default_generator(const at::Device& device) {
#ifdef NANOGPT_WITH_CUDA
  if (device.is_cuda()) return at::cuda::detail::getDefaultCUDAGenerator(device.has_index() ? device.index() : -1);
#endif
  (void)device;
  return at::detail::getDefaultCPUGenerator();
}

at::Tensor rng_state(const at::Device& device) { return default_generator(device).get_state(); }

void set_rng_state(const at::Device& device, const at::Tensor& state) {
  at::Generator generator = default_generator(device);
  generator.set_state(state);
}

void zero_grad_set_to_none(const std::vector<at::Tensor>& parameters) {
  for (const auto& p : parameters) {
    if (p.grad().defined()) const_cast<at::Tensor&>(p).mutable_grad().reset();
  }
}

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

bool cpuinfo_has_native_bf16(const std::string& cpuinfo) {
  std::istringstream lines(cpuinfo);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream flags(line.substr(line.find(':') + 1));
    for (std::string flag; flags >> flag;) {
      if (flag == "avx512_bf16" || flag == "amx_bf16") return true;
    }
    return false;
  }
  return false;
}

bool cpu_has_native_bf16() {
  // read once: the model's every linear layer and the planner's every estimate ask
  static const bool native = [] {
    std::ifstream in("/proc/cpuinfo");
    if (!in) return true;
    std::ostringstream text;
    text << in.rdbuf();
    return cpuinfo_has_native_bf16(text.str());
  }();
  return native;
}

namespace {
bool cpu_bf16_autocast(const at::Device& device, const std::string& dtype) {
  return device.is_cpu() && dtype == "bfloat16";
}
}  // namespace

std::string cpu_bf16_note(const at::Device& device, const std::string& dtype) {
  if (!cpu_bf16_autocast(device, dtype) || cpu_has_native_bf16()) return "";
  return "note: dtype bfloat16 on a CPU without avx512_bf16 or amx_bf16: matrix products are computed by float32 "
         "sgemm from the bf16 operands (LibTorch's own bf16 matmul is about 25x slower here); docs/performance.md";
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
