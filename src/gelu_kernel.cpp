#include "gelu_kernel.h"

#include <algorithm>
#include <cstdint>

#include "cpu_features.h"

// Eight floats at a time. erf is Abramowitz and Stegun's 7.1.26 (absolute error under 1.5e-7),
// the approximation oneDNN's GELU (ATen's on the CPU) uses too, but in the form
// Phi(x) = 1 - Phi(-x) with Phi(-|x|) computed directly, so the negative tail does not lose
// its digits to 1 + erf(x) cancelling; exp is Cephes' expf. The exp(-x^2 / 2) inside erf is
// also the normal density that the slope needs.
namespace nanogpt::gelu_kernel {

namespace {

typedef float Vec8 __attribute__((vector_size(32)));
typedef int32_t Int8 __attribute__((vector_size(32)));
typedef float UnalignedVec8 __attribute__((vector_size(32), aligned(4), may_alias));
constexpr int64_t kLanes = 8;

NANOGPT_ALWAYS_INLINE Vec8 load(const float* p) { return *reinterpret_cast<const UnalignedVec8*>(p); }
NANOGPT_ALWAYS_INLINE void store(float* p, Vec8 v) { *reinterpret_cast<UnalignedVec8*>(p) = v; }
NANOGPT_ALWAYS_INLINE Vec8 splat(float x) { return Vec8{} + x; }  // constants only: folded at compile time

// e^x for x <= 0 (within 1-2 units in the last place): 2^n e^r with n = round(x / ln 2),
// r = x - n ln 2 (ln 2 in two parts), e^r from Cephes' degree-5 polynomial; x below -87
// gives e^-87 (about 1.6e-38) instead of less.
NANOGPT_ALWAYS_INLINE Vec8 exp_of_nonpositive(Vec8 x) {
  x = x < splat(-87.0f) ? splat(-87.0f) : x;
  const float kRound = 12582912.0f;  // 1.5 * 2^23: adding and subtracting it rounds to an integer
  const Vec8 n = (x * 1.44269504088896341f + kRound) - kRound;
  const Vec8 r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  Vec8 p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const Int8 two_to_n = (__builtin_convertvector(n, Int8) + 127) << 23;
  return p * reinterpret_cast<const Vec8&>(two_to_n);
}

// What gelu(x) = x Phi(x) and gelu'(x) = Phi(x) + x phi(x) need, for eight floats.
struct CdfAndDensity {
  Vec8 cdf;      // Phi(x)
  Vec8 density;  // exp(-x^2 / 2), that is sqrt(2 pi) phi(x)
};

NANOGPT_ALWAYS_INLINE CdfAndDensity normal_cdf(Vec8 x) {
  const Int8 magnitude_bits = reinterpret_cast<const Int8&>(x) & 0x7fffffff;
  const Vec8 z = reinterpret_cast<const Vec8&>(magnitude_bits) * 0.70710678118654752f;  // |x| / sqrt 2
  const Vec8 t = 1.0f / (1.0f + 0.3275911f * z);
  Vec8 poly = splat(1.061405429f);
  poly = poly * t - 1.453152027f;
  poly = poly * t + 1.421413741f;
  poly = poly * t - 0.284496736f;
  poly = poly * t + 0.254829592f;
  const Vec8 density = exp_of_nonpositive(-z * z);
  const Vec8 half_tail = (0.5f * t) * poly * density;  // Phi(-|x|) = erfc(|x| / sqrt 2) / 2
  return {x >= splat(0.0f) ? 1.0f - half_tail : half_tail, density};
}

NANOGPT_ALWAYS_INLINE void forward8(const float* x, float* y, float*) {
  const Vec8 v = load(x);
  store(y, v * normal_cdf(v).cdf);
}

NANOGPT_ALWAYS_INLINE void forward_with_slope8(const float* x, float* y, float* slope) {
  const Vec8 v = load(x);
  const CdfAndDensity g = normal_cdf(v);
  store(y, v * g.cdf);
  store(slope, g.cdf + v * g.density * 0.39894228040143268f);  // phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
}

// kOp(x + i, y + i, slope + i) for i < n, eight at a time; the last n % 8 through padded copies.
template <void (*kOp)(const float*, float*, float*)>
NANOGPT_ALWAYS_INLINE void eight_at_a_time(const float* x, float* y, float* slope, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) kOp(x + i, y + i, slope != nullptr ? slope + i : nullptr);
  if (i == n) return;
  float x_tail[kLanes] = {}, y_tail[kLanes], slope_tail[kLanes];
  std::copy(x + i, x + n, x_tail);
  kOp(x_tail, y_tail, slope_tail);
  std::copy(y_tail, y_tail + (n - i), y + i);
  if (slope != nullptr) std::copy(slope_tail, slope_tail + (n - i), slope + i);
}

NANOGPT_ALWAYS_INLINE void forward_any(const float* x, float* y, float* slope, int64_t n) {
  if (slope != nullptr) {
    eight_at_a_time<forward_with_slope8>(x, y, slope, n);
  } else {
    eight_at_a_time<forward8>(x, y, nullptr, n);
  }
}

NANOGPT_AVX2_FMA void forward_avx2(const float* x, float* y, float* slope, int64_t n) { forward_any(x, y, slope, n); }

}  // namespace

void forward_baseline(const float* x, float* y, float* slope, int64_t n) { forward_any(x, y, slope, n); }

void forward(const float* x, float* y, float* slope, int64_t n) {
  (cpu_has_avx2_fma() ? forward_avx2 : forward_baseline)(x, y, slope, n);
}

}  // namespace nanogpt::gelu_kernel
