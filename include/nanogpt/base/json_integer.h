#pragma once
// An integer read out of JSON without nlohmann's get<int64_t> of a float or of a number past
// int64, which has undefined behaviour.
#include <cstdint>
#include <optional>

#include <nlohmann/json.hpp>

namespace nanogpt {

// The largest n_layer, n_head, n_embd, block_size or vocab_size read from a checkpoint or a
// config.json: it keeps the model's arithmetic (4 * n_embd, the block_size x block_size
// mask) inside int64.
constexpr int64_t kMaxModelSize = 2147483647;

// `value` if it is a JSON integer in [lo, hi], else nothing.
inline std::optional<int64_t> json_integer_in(const nlohmann::json& value, int64_t lo, int64_t hi) {
  if (!value.is_number_integer()) return std::nullopt;
  if (value.is_number_unsigned() && value.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
  const int64_t integer = value.get<int64_t>();
  if (integer < lo || integer > hi) return std::nullopt;
  return integer;
}

}  // namespace nanogpt
