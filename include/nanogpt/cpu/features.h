#pragma once
// What this CPU can do that decides a path: bf16 instructions (oneDNN's bf16 matmul needs
// avx512_bf16 or amx_bf16; without them bf16 products go through float32, see
// bf16_linear_in_float.h).
#include <string>

namespace nanogpt {

// Whether /proc/cpuinfo text lists avx512_bf16 or amx_bf16 (whole flags only).
bool cpuinfo_has_native_bf16(const std::string& cpuinfo);
// This machine's answer, read once (true if /proc/cpuinfo is unreadable).
bool cpu_has_native_bf16();

}  // namespace nanogpt
