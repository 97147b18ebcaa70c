#pragma once
// The same model's logits on two paths: the config's device and dtype (say cuda, bfloat16
// autocast) against the CPU in float32, on a seeded batch of random tokens. A bug in a
// device kernel or in the autocast path shows as an error far above the dtype's rounding.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "nanogpt/base/config.h"

namespace nanogpt {

struct LogitsCheckOptions {
  int64_t batch_size = 2;             // sequences of block_size tokens
  int64_t vocab_size = 50304;         // without a checkpoint; nanoGPT's padded GPT-2 vocabulary
  std::string checkpoint_path;        // weights from this ckpt.pt; empty: the config's seeded init
  std::optional<double> tolerance;    // on the relative error; default: default_logits_tolerance
};

struct LogitsCheckResult {
  std::string checked;     // "cuda bfloat16"
  std::string reference;   // "cpu float32"
  int64_t positions = 0;   // batch_size * block_size
  double relative_error = 0;    // ||checked - reference||_2 / ||reference||_2 over all logits
  double max_abs_error = 0;
  double reference_max_abs = 0;  // largest |logit| of the reference, for scale
  double argmax_agreement = 0;   // share of positions whose most likely token is the same
  double checked_loss = 0;       // cross-entropy against the next tokens
  double reference_loss = 0;
  double tolerance = 0;
  bool passed = false;
};

// Relative error allowed for a dtype: bfloat16 keeps 8 significant bits (rounding 2^-9 per
// operation) and a dozen layers add up to about 1e-2, so 5e-2; float16 1e-2; float32 1e-3.
double default_logits_tolerance(at::ScalarType compute_type);

LogitsCheckResult check_logits(const TrainConfig& config, const LogitsCheckOptions& options,
                               const std::function<void(const std::string&)>& print);

}  // namespace nanogpt
