#pragma once
// Stops a diverged run: remembers, on the device and without a host sync, the first
// iteration whose loss or gradient norm was inf or NaN; the trainer reads it (one sync)
// before it evaluates, logs or writes a checkpoint, so no NaN weights ever reach the disk.
#include <ATen/ATen.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace nanogpt {

// A run stopped on an inf/NaN loss or gradient norm; the message names the iteration.
class NumericalError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class FiniteWatch {
 public:
  // Notes `value` (a scalar tensor on any device) of iteration `iter`; `what` says what it is.
  void observe(const at::Tensor& value, int64_t iter, const std::string& what);
  // "iteration N: the loss is NaN" for the first non-finite value seen, else "" (a host sync).
  std::string first_non_finite() const;

 private:
  // scalars on the values' device: the first iteration with a non-finite value (-1 while
  // all were finite), which value it was (an index into whats_) and what it held
  at::Tensor first_bad_iter_, first_bad_what_, first_bad_value_;
  std::vector<std::string> whats_;
};

}  // namespace nanogpt
