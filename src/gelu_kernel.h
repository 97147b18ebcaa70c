#pragma once
// nanoGPT's GELU, 0.5 x (1 + erf(x / sqrt 2)), and its slope over plain float arrays: the
// loops behind fused_cpu_gelu (include/nanogpt/cpu_gelu.h).
#include <cstdint>

namespace nanogpt::gelu_kernel {

// y[i] = gelu(x[i]) and, where `slope` is not null, slope[i] = gelu'(x[i]) = Phi(x) + x phi(x),
// for i < n. The normal cdf Phi is within about 1e-7 of the exact value (the approximation
// of erf that oneDNN's GELU uses), so y is within 4.5e-7 for |x| <= 10
// (tests/test_cpu_gelu.cpp).
void forward(const float* x, float* y, float* slope, int64_t n);

// forward as compiled for the baseline target (no AVX2, no FMA): the copy other CPUs run,
// for tests.
void forward_baseline(const float* x, float* y, float* slope, int64_t n);

}  // namespace nanogpt::gelu_kernel
