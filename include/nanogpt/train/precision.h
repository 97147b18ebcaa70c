#pragma once
// The config's dtype, parsed once: what the forward runs in under autocast, whether gradients
// are scaled, and whether bf16 products on this CPU go through float32. Weights, gradients and
// optimizer state stay float32 in every case (nanoGPT's train.py).
#include <optional>
#include <string>

#include <ATen/ATen.h>

#include "nanogpt/base/compat.h"

namespace nanogpt {

struct Precision {
  // `dtype` is the config key's value (float32, bfloat16 or float16, as validate() accepts);
  // `device_type` is where the step runs.
  Precision(const std::string& dtype, at::DeviceType device_type);

  std::string name;                        // the config's dtype
  at::ScalarType compute_type = at::kFloat;  // what matrix products run in
  std::optional<AutocastState> autocast;   // none for float32
  bool scales_gradients = false;           // float16: a GradScaler guards the step
  bool bf16_products_in_float = false;     // bfloat16 on a CPU without bf16 instructions

  // The line train and bench print when bf16_products_in_float; "" otherwise.
  std::string cpu_note() const;
};

}  // namespace nanogpt
