#include "nanogpt/train/finite_watch.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace nanogpt {

void FiniteWatch::observe(const at::Tensor& value, int64_t iter, const std::string& what) {
  at::Tensor v = value.detach().reshape({}).to(at::kDouble);
  if (first_bad_iter_.defined()) {
    v = v.to(first_bad_iter_.device());  // an evaluation's host-side loss next to the device's
  } else {
    first_bad_iter_ = at::full({}, -1, v.options().dtype(at::kLong));
    first_bad_what_ = at::full({}, -1, v.options().dtype(at::kLong));
    first_bad_value_ = at::zeros({}, v.options());
  }
  auto known = std::find(whats_.begin(), whats_.end(), what);
  if (known == whats_.end()) known = whats_.insert(whats_.end(), what);
  const at::Tensor first_bad = at::logical_and(at::logical_not(at::isfinite(v)), first_bad_iter_.lt(0));
  first_bad_iter_.masked_fill_(first_bad, iter);
  first_bad_what_.masked_fill_(first_bad, static_cast<int64_t>(known - whats_.begin()));
  first_bad_value_.masked_fill_(first_bad, v);
}

std::string FiniteWatch::first_non_finite() const {
  if (!first_bad_iter_.defined()) return "";
  const int64_t iter = first_bad_iter_.item<int64_t>();
  if (iter < 0) return "";
  const double value = first_bad_value_.item<double>();
  return fmt::format("iteration {}: the {} is {}", iter, whats_.at(static_cast<size_t>(first_bad_what_.item<int64_t>())),
                     std::isnan(value) ? "NaN" : (value > 0 ? "inf" : "-inf"));
}

}  // namespace nanogpt
