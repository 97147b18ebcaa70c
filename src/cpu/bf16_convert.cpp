#include "cpu/bf16_convert.h"

#include <cstring>

#include "cpu/cpu_features.h"

// Each loop is compiled twice, as the kernels are (cpu_features.h): the AVX2 build converts
// twice as many values per instruction, and rounding is 2x faster with it on this machine's
// EPYC. Both builds compute the same bits.
namespace nanogpt::bf16_convert {

namespace {

// On the raw bits: a bf16 is the upper half of a float.
NANOGPT_ALWAYS_INLINE void widen_any(const c10::BFloat16* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t bits = static_cast<uint32_t>(in[i].x) << 16;
    std::memcpy(out + i, &bits, sizeof bits);
  }
}

NANOGPT_ALWAYS_INLINE void narrow_any(const float* in, c10::BFloat16* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, in + i, sizeof bits);
    const uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
    out[i].x = static_cast<uint16_t>((bits & 0x7fffffffu) > 0x7f800000u ? 0x7fc0u : rounded);
  }
}

NANOGPT_AVX2_FMA void widen_avx2(const c10::BFloat16* in, float* out, int64_t n) { widen_any(in, out, n); }
NANOGPT_AVX2_FMA void narrow_avx2(const float* in, c10::BFloat16* out, int64_t n) { narrow_any(in, out, n); }

}  // namespace

void widen_baseline(const c10::BFloat16* in, float* out, int64_t n) { widen_any(in, out, n); }
void narrow_baseline(const float* in, c10::BFloat16* out, int64_t n) { narrow_any(in, out, n); }

void widen(const c10::BFloat16* in, float* out, int64_t n) {
  (cpu_has_avx2_fma() ? widen_avx2 : widen_baseline)(in, out, n);
}

void narrow(const float* in, c10::BFloat16* out, int64_t n) {
  (cpu_has_avx2_fma() ? narrow_avx2 : narrow_baseline)(in, out, n);
}

}  // namespace nanogpt::bf16_convert
