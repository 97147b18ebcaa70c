// Gradient averaging over a process group in flat buckets, all-reduced while backward runs.
#include <algorithm>
#include <atomic>
#include <memory>

#include <ATen/core/grad_mode.h>
#include <fmt/format.h>

#include "nanogpt/memory/memory_stats.h"
#include "distributed/process_group_impl.h"

namespace nanogpt {

namespace {

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace

struct DistributedDataParallel::Impl {
  struct Bucket {
    std::vector<size_t> members;  // parameter indices, in the order of the flat buffer
    at::Tensor flat;
    size_t waiting = 0;  // members whose gradient has not arrived in this backward pass
    c10::intrusive_ptr<c10d::Work> work;
    // when its all-reduce completed, set by a c10d thread (shared: the callback may outlive us)
    std::shared_ptr<std::atomic<int64_t>> done_ns = std::make_shared<std::atomic<int64_t>>(0);
  };
  struct Slot {
    size_t bucket;
    int64_t offset;  // first element in the bucket's flat buffer
  };

  DistributedDataParallel& owner;
  ProcessGroup::Impl& group;
  std::vector<at::Tensor> parameters;
  std::vector<std::unique_ptr<Bucket>> buckets;
  std::vector<Slot> slots;                // per parameter
  std::vector<bool> arrived;              // per parameter, in the current backward pass
  std::vector<unsigned> hook_handles;     // per parameter
  bool syncing = false;                   // a synchronised backward pass is under way
  size_t next_launch = 0;                 // buckets launch strictly in order on every rank
  Clock::time_point first_launch;
  SyncTimes last_times;

  at::Tensor slot_view(size_t i) const {
    const Slot& slot = slots[i];
    return buckets[slot.bucket]->flat.narrow(0, slot.offset, parameters[i].numel()).view(parameters[i].sizes());
  }

  void launch(Bucket& bucket) {
    bucket.flat.div_(group.env.world_size);  // the sum of the averaged parts is the average
    std::vector<at::Tensor> buffers{bucket.flat};
    bucket.work = group.collectives->allreduce(buffers);
    *bucket.done_ns = 0;
    bucket.work->getFuture()->addCallback([done_ns = bucket.done_ns](c10::ivalue::Future&) {
      *done_ns = Clock::now().time_since_epoch().count();
    });
  }

  void launch_ready_buckets() {
    while (next_launch < buckets.size() && buckets[next_launch]->waiting == 0) {
      if (next_launch == 0) first_launch = Clock::now();
      launch(*buckets[next_launch++]);
    }
  }

  // The hook of parameter i: `grad` is this micro-step's gradient, before it is added to .grad.
  void on_gradient(size_t i, const at::Tensor& grad) {
    if (!owner.require_backward_grad_sync) return;
    if (!syncing) begin_sync();
    if (arrived[i]) {
      throw DistributedError(fmt::format("parameter {} received two gradients in one synchronised backward pass", i));
    }
    at::NoGradGuard no_grad;
    at::Tensor target = slot_view(i);
    const at::Tensor& accumulated = parameters[i].grad();  // the earlier micro-steps' sum
    if (accumulated.defined()) {
      at::add_out(target, accumulated, grad);
    } else {
      target.copy_(grad);
    }
    arrived[i] = true;
    buckets[slots[i].bucket]->waiting -= 1;
    launch_ready_buckets();
  }

  void begin_sync() {
    syncing = true;
    next_launch = 0;
    std::fill(arrived.begin(), arrived.end(), false);
    for (auto& bucket : buckets) bucket->waiting = bucket->members.size();
  }

  void finish_sync() {
    if (buckets.empty()) return;  // nothing to train
    if (!syncing) begin_sync();   // a backward pass that reached no parameter
    syncing = false;
    at::NoGradGuard no_grad;
    // parameters that the forward pass did not use: their accumulated gradient, or zeros
    for (size_t i = 0; i < parameters.size(); ++i) {
      if (arrived[i]) continue;
      const at::Tensor& accumulated = parameters[i].grad();
      if (accumulated.defined()) {
        slot_view(i).copy_(accumulated);
      } else {
        slot_view(i).zero_();
      }
      buckets[slots[i].bucket]->waiting -= 1;
    }
    launch_ready_buckets();
    const Clock::time_point wait_start = Clock::now();
    for (size_t b = 0; b < buckets.size(); ++b) {
      group.wait(buckets[b]->work, fmt::format("the all-reduce of gradient bucket {} of {} ({})", b + 1, buckets.size(),
                                               format_bytes(static_cast<int64_t>(buckets[b]->flat.nbytes()))));
    }
    const Clock::time_point wait_end = Clock::now();
    int64_t last_done_ns = 0;
    for (const auto& bucket : buckets) last_done_ns = std::max<int64_t>(last_done_ns, *bucket->done_ns);
    const Clock::time_point done =
        last_done_ns > 0 ? Clock::time_point(Clock::duration(last_done_ns)) : wait_end;
    last_times = {ms_between(first_launch, std::min(done, wait_end)), ms_between(wait_start, wait_end)};
    for (size_t i = 0; i < parameters.size(); ++i) parameters[i].mutable_grad() = slot_view(i);
  }
};

DistributedDataParallel::DistributedDataParallel(ProcessGroup& group, std::vector<at::Tensor> parameters,
                                                 int64_t bucket_bytes)
    : impl_(std::make_unique<Impl>(Impl{*this, *group.impl_, {}, {}, {}, {}, {}})) {
  Impl& s = *impl_;
  for (auto& p : parameters) {
    if (p.requires_grad()) s.parameters.push_back(p);
  }
  group.broadcast(s.parameters, bucket_bytes);
  s.slots.resize(s.parameters.size());
  for (const auto& members : detail::bucket_layout(s.parameters, bucket_bytes)) {
    auto bucket = std::make_unique<Impl::Bucket>();
    bucket->members = members;
    bucket->flat = detail::flat_buffer_for(s.parameters, members);
    int64_t offset = 0;
    for (size_t i : members) {
      s.slots[i] = {s.buckets.size(), offset};
      offset += s.parameters[i].numel();
    }
    s.buckets.push_back(std::move(bucket));
  }
  s.arrived.assign(s.parameters.size(), false);
  for (size_t i = 0; i < s.parameters.size(); ++i) {
    Impl* impl = impl_.get();
    s.hook_handles.push_back(s.parameters[i].register_hook([impl, i](const at::Tensor& grad) { impl->on_gradient(i, grad); }));
  }
}

DistributedDataParallel::~DistributedDataParallel() {
  for (size_t i = 0; i < impl_->parameters.size(); ++i) impl_->parameters[i].remove_hook(impl_->hook_handles[i]);
}

void DistributedDataParallel::finish_gradient_sync() { impl_->finish_sync(); }

int64_t DistributedDataParallel::num_buckets() const { return static_cast<int64_t>(impl_->buckets.size()); }

DistributedDataParallel::SyncTimes DistributedDataParallel::last_sync_times() const { return impl_->last_times; }

}  // namespace nanogpt
