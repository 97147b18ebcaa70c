#include "adamw_kernel.h"

#include <cmath>

#include "cpu_features.h"

// Compiled with -ffp-contract=off, so that a fused multiply-add appears only where ATen's
// kernels for the same CPU have one (add_ with alpha, addcmul_'s last step: with AVX2 and
// FMA; none in its baseline kernels): the results are LibTorch's to the bit.
namespace nanogpt::adamw_kernel {

namespace {

template <bool kFused>
NANOGPT_ALWAYS_INLINE float multiply_add(float a, float b, float c) {
  if constexpr (kFused) {
    return std::fma(a, b, c);
  } else {
    return a * b + c;
  }
}

template <bool kFused>
NANOGPT_ALWAYS_INLINE void update_loop(const StepScalars& s, float* param, const float* grad, float* exp_avg,
                                       float* exp_avg_sq, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    const float g = grad[i];
    float p = param[i];
    if (s.decay) p = p * s.decay_factor;                                                // p.mul_(1 - lr * wd)
    const float m = multiply_add<kFused>(g, s.one_minus_beta1, exp_avg[i] * s.beta1);  // exp_avg.mul_(b1).add_(g, 1 - b1)
    const float v = multiply_add<kFused>(s.one_minus_beta2 * g, g, exp_avg_sq[i] * s.beta2);  // .mul_(b2).addcmul_(g, g, 1 - b2)
    const float denom = std::sqrt(v) / s.bias_correction2_sqrt + s.eps;               // (sqrt(v) / sqrt(bc2)).add_(eps)
    param[i] = p + s.negative_step_size * m / denom;                                    // p.addcdiv_(m, denom, -step_size)
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
  }
}

NANOGPT_AVX2_FMA void update_avx2(const StepScalars& s, float* param, const float* grad, float* exp_avg,
                                  float* exp_avg_sq, int64_t begin, int64_t end) {
  update_loop<true>(s, param, grad, exp_avg, exp_avg_sq, begin, end);
}

void update_baseline(const StepScalars& s, float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                     int64_t begin, int64_t end) {
  update_loop<false>(s, param, grad, exp_avg, exp_avg_sq, begin, end);
}

}  // namespace

void update(const StepScalars& s, float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t begin,
            int64_t end) {
  (cpu_has_avx2_fma() ? update_avx2 : update_baseline)(s, param, grad, exp_avg, exp_avg_sq, begin, end);
}

}  // namespace nanogpt::adamw_kernel
