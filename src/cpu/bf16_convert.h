#pragma once
// bfloat16 <-> float32 over plain arrays, in loops the compiler vectorizes (for AVX2 where the
// CPU has it): the conversions of the bf16 paths that compute in float32 (bf16_linear_in_float.h,
// cpu/attention.h).
#include <c10/util/BFloat16.h>

#include <cstdint>

namespace nanogpt::bf16_convert {

// out[i] = in[i] as float (exact), for i < n.
void widen(const c10::BFloat16* in, float* out, int64_t n);

// out[i] = in[i] rounded to the nearest bf16, ties to even, NaN to NaN: c10::BFloat16(in[i]).
void narrow(const float* in, c10::BFloat16* out, int64_t n);

// The same loops compiled for the baseline x86-64, which widen and narrow use on CPUs
// without AVX2 and FMA; named so that the tests compare both builds.
void widen_baseline(const c10::BFloat16* in, float* out, int64_t n);
void narrow_baseline(const float* in, c10::BFloat16* out, int64_t n);

}  // namespace nanogpt::bf16_convert
