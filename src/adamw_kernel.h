#pragma once
// One AdamW update of a float32 parameter in a single pass, with the roundings of LibTorch's
// AdamW::step (its sequence of mul_, add_, addcmul_, sqrt, div, add_, addcdiv_ kernels).
#include <cstdint>

namespace nanogpt::adamw_kernel {

// The step's scalars, each already rounded to float as ATen rounds a Scalar argument.
struct StepScalars {
  bool decay;                 // weight_decay != 0
  float decay_factor;         // 1 - lr * weight_decay
  float beta1, one_minus_beta1;
  float beta2, one_minus_beta2;
  float bias_correction2_sqrt;  // sqrt(1 - beta2^step)
  float eps;
  float negative_step_size;     // -lr / (1 - beta1^step)
};

// Elements [begin, end) of the parameter, its gradient and its two moments.
void update(const StepScalars& s, float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t begin,
            int64_t end);

}  // namespace nanogpt::adamw_kernel
