#pragma once
// Devices and CPU threads: which device a config names and whether it is usable, the CUDA
// calls the rest of the library needs, and the summary lines of the logs.
#include <string>

#include <ATen/ATen.h>

namespace nanogpt {

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
// workers wait (the nanogpt binary sets PASSIVE unless the variable is set; src/cli/main.cpp).
std::string cpu_threads_summary();

// "LibTorch 2.15.0, CUDA build" or "..., CPU build" (NANOGPT_WITH_CUDA), for logs and --version.
std::string torch_build_summary();

}  // namespace nanogpt
