#pragma once
// The autocast state a custom autograd function's forward ran under, kept in its context so
// that backward recomputes under the same state.
#include <torch/torch.h>

#include "nanogpt/base/compat.h"

namespace nanogpt {

inline void save_autocast(torch::autograd::AutogradContext* ctx, const AutocastState& state) {
  ctx->saved_data["autocast_enabled"] = state.enabled;
  ctx->saved_data["autocast_dtype"] = static_cast<int64_t>(state.dtype);
}

inline AutocastState saved_autocast(torch::autograd::AutogradContext* ctx) {
  return {ctx->saved_data["autocast_enabled"].toBool(),
          static_cast<at::ScalarType>(ctx->saved_data["autocast_dtype"].toInt())};
}

}  // namespace nanogpt
