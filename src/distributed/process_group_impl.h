#pragma once
// Internal to the distributed component: the c10d objects behind ProcessGroup, which
// DistributedDataParallel all-reduces over, and the bucket layout that the broadcast of the
// parameters and the gradient averaging share.
#include <chrono>
#include <string>
#include <vector>

#include "distributed/compat_c10d.h"
#include "nanogpt/distributed/distributed.h"

namespace nanogpt {

struct ProcessGroup::Impl {
  DistributedEnv env;
  std::string backend;
  at::Device device;
  std::chrono::milliseconds timeout;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> collectives;
  int64_t rank0_sections = 0;  // run_on_rank0 calls so far: each has its own key in the store

  // Waits for a collective; a failure names the operation and what probably happened.
  void wait(const c10::intrusive_ptr<c10d::Work>& work, const std::string& what) const;
};

namespace detail {

// Parameters in reverse order, grouped by dtype and device, about `bytes` each: indices into `tensors`.
std::vector<std::vector<size_t>> bucket_layout(const std::vector<at::Tensor>& tensors, int64_t bytes);

// An uninitialised flat buffer for the members of one bucket.
at::Tensor flat_buffer_for(const std::vector<at::Tensor>& tensors, const std::vector<size_t>& members);

}  // namespace detail

}  // namespace nanogpt
