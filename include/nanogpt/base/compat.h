#pragma once
// Attention, autocast, random-generator and device calls of LibTorch (2.6 or later, CPU or CUDA)
// behind small functions, so that CUDA-only code stays in one file.
#include <ATen/ATen.h>


namespace nanogpt {

// Causal scaled dot-product attention over (B, nh, T, hs) tensors. `past_length`
// is the number of cached key/value positions that precede the queries.
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            double dropout_p, int64_t past_length);

// LibTorch's own scaled dot-product attention over (B, nh, Tq, hs) queries and (B, nh, Tk, hs)
// keys and values, attending where the bool (Tq, Tk) `mask` is true (scaled_dot_product_attention).
at::Tensor masked_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask,
                            double dropout_p);

// LibTorch's reference (math) attention, the same arguments (a bool mask keeps the true
// positions, a float mask is added to the scores): softmax of the masked scores,
// at::dropout on those (B, nh, Tq, Tk) probabilities, then the product with v
// (_scaled_dot_product_attention_math).
at::Tensor math_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask,
                          double dropout_p);

// The autocast state of one device type: enabled or not, and to which dtype.
struct AutocastState {
  bool enabled = false;
  at::ScalarType dtype = at::kBFloat16;
};
AutocastState autocast_state(at::DeviceType device_type);

// RAII: sets the autocast state of `device_type` for its lifetime (torch.autocast in
// Python) and restores the previous state, clearing the cast cache when the outermost
// guard ends.
class AutocastGuard {
 public:
  AutocastGuard(at::DeviceType device_type, AutocastState state);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  at::DeviceType device_type_;
  AutocastState previous_;
};

// The state of the default random generator of `device` (CPU or one CUDA device).
at::Tensor rng_state(const at::Device& device);
void set_rng_state(const at::Device& device, const at::Tensor& state);

// Set every parameter's gradient to undefined (PyTorch's zero_grad(set_to_none=True)).
void zero_grad_set_to_none(const std::vector<at::Tensor>& parameters);

// True when this binary was built against a LibTorch with CUDA and a GPU is present.
bool cuda_available();
// Why no CUDA device is usable ("this nanogpt is a CPU build ...", or the CUDA runtime's own
// words, such as "Found no NVIDIA driver on your system ..."); "" when one is.
std::string cuda_unusable_reason();

// The name of a CUDA device ("NVIDIA H100 80GB HBM3"); empty for the CPU.
std::string device_name(const at::Device& device);

// Waits for the device's queued work (CUDA); nothing on the CPU.
void synchronize(const at::Device& device);

// The device names of the config key `device`: cpu, cuda, cuda:N, or auto (cuda when a CUDA
// device is usable, else cpu). check_device_name throws a std::invalid_argument naming any
// other value; resolved_device_name says what auto stands for on this machine.
void check_device_name(const std::string& name);
std::string resolved_device_name(const std::string& name);
// The device to run on; throws a std::runtime_error (a machine without a usable GPU, not a
// bad config) when the name asks for CUDA and none is usable.
at::Device parse_device(const std::string& name);
// "cpu", "cuda:0", or for auto the choice and why: "cpu (device auto: no CUDA device is usable: ...)".
std::string device_choice(const std::string& name, const at::Device& device);

// Number of hardware threads of this machine.
int hardware_threads();

// "2 threads (OMP_WAIT_POLICY=PASSIVE)": LibTorch's thread count and how its idle OpenMP
// workers wait, which decides whether they leave OpenBLAS its cores (the nanogpt binary sets
// PASSIVE unless the variable is set; see src/cli/main.cpp).
std::string cpu_threads_summary();

// Whether /proc/cpuinfo text lists avx512_bf16 or amx_bf16, the instructions oneDNN's bf16
// matmul needs; without them LibTorch computes bf16 matmuls in plain code, ~25x slower
// than float32 on an AVX2 EPYC (docs/performance.md). cpu_has_native_bf16() reads this machine's once (true if unreadable).
bool cpuinfo_has_native_bf16(const std::string& cpuinfo);
bool cpu_has_native_bf16();

// The line train and bench print when bfloat16 autocast on this CPU takes bf16_linear_in_float.h's
// path instead of LibTorch's slow bf16 matmul; "" otherwise.
std::string cpu_bf16_note(const at::Device& device, const std::string& dtype);

// "LibTorch 2.15.0, CUDA build" or "..., CPU build" (NANOGPT_WITH_CUDA), for logs and --version.
std::string torch_build_summary();

}  // namespace nanogpt
