#pragma once
// The attention kernel (src/cpu/attention_kernel_*.cpp) is compiled twice: once for AVX2 with FMA, used when the
// CPU has both, and once for the baseline x86-64 (or whatever the build targets).
#if defined(__GNUC__) && defined(__x86_64__)
#define NANOGPT_AVX2_FMA __attribute__((target("avx2,fma")))
#define NANOGPT_HAVE_AVX2_FMA_BUILD 1
#else
#define NANOGPT_AVX2_FMA
#define NANOGPT_HAVE_AVX2_FMA_BUILD 0
#endif
#define NANOGPT_ALWAYS_INLINE inline __attribute__((always_inline))

namespace nanogpt {

inline bool cpu_has_avx2_fma() {
#if NANOGPT_HAVE_AVX2_FMA_BUILD
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
#else
  return false;
#endif
}

}  // namespace nanogpt
