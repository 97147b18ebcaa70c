#include "nanogpt/distributed.h"

#include <ATen/core/grad_mode.h>

#include <atomic>
#include <climits>
#include <csignal>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "compat_c10d.h"
#include "nanogpt/memory_stats.h"

#ifdef NANOGPT_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace nanogpt {

namespace {

using Clock = std::chrono::steady_clock;
using Getenv = std::function<const char*(const char*)>;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// The first line of a c10d/Gloo message: the rest is a C++ stack trace.
std::string first_line(const std::exception& e) {
  const std::string text = e.what();
  return text.substr(0, text.find('\n'));
}

const char* required_env(const Getenv& getenv, const char* name) {
  const char* text = getenv(name);
  if (text == nullptr || *text == '\0') {
    throw DistributedError(fmt::format("environment variable {} is not set; a multi-process run needs RANK, "
                                       "LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT (torchrun sets them)",
                                       name));
  }
  return text;
}

int env_int(const Getenv& getenv, const char* name, int min, int max, const std::string& expected) {
  const char* text = required_env(getenv, name);
  errno = 0;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (*end != '\0' || errno == ERANGE || value < min || value > max) {
    throw DistributedError(fmt::format("environment variable {} is '{}'; expected {}", name, text, expected));
  }
  return static_cast<int>(value);
}

// --- buckets: parameters in reverse order, grouped by dtype and device, about `bytes` each ---

std::vector<std::vector<size_t>> bucket_layout(const std::vector<at::Tensor>& tensors, int64_t bytes) {
  std::vector<std::vector<size_t>> buckets;
  int64_t filled = 0;
  for (size_t n = tensors.size(); n-- > 0;) {
    const at::Tensor& t = tensors[n];
    const bool fits = !buckets.empty() && filled + t.nbytes() <= static_cast<size_t>(bytes) &&
                      tensors[buckets.back().front()].scalar_type() == t.scalar_type() &&
                      tensors[buckets.back().front()].device() == t.device();
    if (!fits) {
      buckets.emplace_back();
      filled = 0;
    }
    buckets.back().push_back(n);
    filled += static_cast<int64_t>(t.nbytes());
  }
  return buckets;
}

at::Tensor flat_buffer_for(const std::vector<at::Tensor>& tensors, const std::vector<size_t>& members) {
  int64_t numel = 0;
  for (size_t i : members) numel += tensors[i].numel();
  return at::empty({numel}, tensors[members.front()].options().requires_grad(false));
}

// Rank 0 keeps beating a counter in the store while it works alone, so that the ranks
// waiting for it can tell a long evaluation from a dead or hung rank 0.
class Heartbeat {
 public:
  Heartbeat(c10d::Store& store, std::string key) : store_(store), key_(std::move(key)) {
    thread_ = std::thread([this] {
      std::unique_lock<std::mutex> lock(mutex_);
      while (!stopped_) {
        try {
          store_.add(key_, 1);
        } catch (const std::exception&) {  // the waiting ranks time out and say so
        }
        wake_.wait_for(lock, std::chrono::milliseconds(500), [this] { return stopped_; });
      }
    });
  }
  ~Heartbeat() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopped_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

 private:
  c10d::Store& store_;
  std::string key_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopped_ = false;
  std::thread thread_;
};

#ifdef NANOGPT_WITH_GLOO
// Python's choice: the interfaces in GLOO_SOCKET_IFNAME (comma-separated), else the
// address this machine's hostname resolves to (the loopback device when it resolves to none).
std::vector<std::shared_ptr<::gloo::transport::Device>> gloo_devices() {
  std::vector<std::shared_ptr<::gloo::transport::Device>> devices;
  const char* names = std::getenv("GLOO_SOCKET_IFNAME");
  if (names != nullptr && *names != '\0') {
    std::string list = names;
    for (size_t start = 0; start <= list.size();) {
      const size_t comma = std::min(list.find(',', start), list.size());
      const std::string name = list.substr(start, comma - start);
      if (!name.empty()) {
        try {
          devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(name));
        } catch (const std::exception& e) {
          throw DistributedError(fmt::format("GLOO_SOCKET_IFNAME names '{}', which Gloo cannot use: {}", name,
                                             first_line(e)));
        }
      }
      start = comma + 1;
    }
  }
  if (devices.empty()) devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  return devices;
}
#endif

}  // namespace

// --- the environment ------------------------------------------------------------------------

DistributedEnv read_distributed_env(const Getenv& getenv) {
  DistributedEnv env;
  const char* world = getenv("WORLD_SIZE");
  if (world == nullptr || *world == '\0') return env;
  env.world_size = env_int(getenv, "WORLD_SIZE", 1, INT_MAX, "a positive integer");
  if (env.world_size == 1) return env;
  env.rank = env_int(getenv, "RANK", 0, env.world_size - 1,
                     fmt::format("an integer in [0, {}] (WORLD_SIZE is {})", env.world_size - 1, env.world_size));
  const char* local_world = getenv("LOCAL_WORLD_SIZE");
  if (local_world != nullptr && *local_world != '\0') {
    env.local_world_size = env_int(getenv, "LOCAL_WORLD_SIZE", 1, env.world_size,
                                   fmt::format("an integer in [1, {}] (WORLD_SIZE)", env.world_size));
  }
  const int local_max = local_world != nullptr && *local_world != '\0' ? env.local_world_size - 1 : env.world_size - 1;
  env.local_rank = env_int(getenv, "LOCAL_RANK", 0, local_max, fmt::format("an integer in [0, {}]", local_max));
  env.master_addr = required_env(getenv, "MASTER_ADDR");
  env.master_port = env_int(getenv, "MASTER_PORT", 1, 65535, "a port number in [1, 65535]");
  const char* agent = getenv("TORCHELASTIC_USE_AGENT_STORE");
  env.use_agent_store = agent != nullptr && std::string(agent) == "True";  // Python compares with str(True)
  const char* restarts = getenv("TORCHELASTIC_RESTART_COUNT");
  if (restarts != nullptr && *restarts != '\0') {
    env.restart_count = env_int(getenv, "TORCHELASTIC_RESTART_COUNT", 0, INT_MAX, "a non-negative integer");
  }
  return env;
}

DistributedEnv read_distributed_env() {
  return read_distributed_env([](const char* name) { return std::getenv(name); });
}

at::Device device_for_rank(const at::Device& configured, const DistributedEnv& env) {
  if (!env.is_distributed() || !configured.is_cuda()) return configured;
  return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank));
}

// --- the process group --------------------------------------------------------------------------

bool distributed_backend_available(const std::string& backend) {
#ifdef NANOGPT_WITH_GLOO
  if (backend == "gloo") return true;
#endif
#ifdef NANOGPT_WITH_NCCL
  if (backend == "nccl") return true;
#endif
  (void)backend;
  return false;
}

struct ProcessGroup::Impl {
  DistributedEnv env;
  std::string backend;
  at::Device device;
  std::chrono::milliseconds timeout;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d_compat::Collectives> collectives;
  int64_t rank0_sections = 0;  // run_on_rank0 calls so far: each has its own key in the store

  // Waits for a collective; a failure names the operation and what probably happened.
  void wait(const c10::intrusive_ptr<c10d::Work>& work, const std::string& what) const {
    try {
      work->wait();
    } catch (const std::exception& e) {
      throw DistributedError(fmt::format(
          "rank {}: {} failed: {}. A peer process has probably exited or hung (ddp_timeout_s is {} s); see its log",
          env.rank, what, first_line(e), timeout.count() / 1000));
    }
  }
};

ProcessGroup::ProcessGroup(const DistributedEnv& env, const std::string& backend, const at::Device& device,
                           std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>(Impl{env, backend, device, timeout, {}, {}})) {
  if (backend != "gloo" && backend != "nccl") {
    throw DistributedError(fmt::format("config key 'backend' must be 'gloo' or 'nccl', got '{}'", backend));
  }
  if (backend == "nccl" && !device.is_cuda()) {
    throw DistributedError(fmt::format("config key 'backend' is 'nccl', which runs on CUDA devices only, but device "
                                       "is '{}'; set backend: gloo for CPU training",
                                       device.str()));
  }
  // A peer's closed socket must become an error message here, not a silent death by
  // SIGPIPE (Python, which torch.distributed runs in, ignores SIGPIPE too).
  std::signal(SIGPIPE, SIG_IGN);
  // The store: torchrun's agent hosts it (every rank a client), or rank 0 does.
  c10d::TCPStoreOptions options;
  options.port = static_cast<std::uint16_t>(env.master_port);
  options.isServer = !env.use_agent_store && env.rank == 0;
  options.numWorkers = static_cast<std::size_t>(env.world_size);
  options.waitWorkers = true;
  options.timeout = timeout;
  options.multiTenant = !env.use_agent_store;
  try {
    impl_->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
  } catch (const std::exception& e) {
    throw DistributedError(fmt::format(
        "rank {}: cannot {} the TCPStore at MASTER_ADDR={} MASTER_PORT={} (waited up to {} s for all {} ranks): {}",
        env.rank, options.isServer ? "start" : "reach", env.master_addr, env.master_port, timeout.count() / 1000,
        env.world_size, first_line(e)));
  }
  if (env.use_agent_store) {  // torch.distributed's prefix, so that a restarted group starts afresh
    impl_->store = c10::make_intrusive<c10d::PrefixStore>(fmt::format("/worker/attempt_{}", env.restart_count),
                                                          impl_->store);
  }
  impl_->store = c10::make_intrusive<c10d::PrefixStore>("nanogpt", impl_->store);

  try {
    if (backend == "gloo") {
#ifdef NANOGPT_WITH_GLOO
      auto gloo_options = c10d::ProcessGroupGloo::Options::create(timeout);
      gloo_options->devices = gloo_devices();
      gloo_options->threads = static_cast<int>(gloo_options->devices.size() * 2);  // as torch.distributed does
      impl_->collectives =
          c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, env.rank, env.world_size, gloo_options);
#else
      throw DistributedError("backend 'gloo' is not in this build: CMake found no Gloo headers (gloo/algorithm.h)");
#endif
    } else {
#ifdef NANOGPT_WITH_NCCL
      c10::cuda::set_device(device.index());
      auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
      nccl_options->timeout = timeout;
      impl_->collectives =
          c10::make_intrusive<c10d::ProcessGroupNCCL>(impl_->store, env.rank, env.world_size, nccl_options);
#else
      throw DistributedError(
          "backend 'nccl' is not in this build (it needs a LibTorch with CUDA and NCCL's nccl.h at build time); "
          "use backend: gloo");
#endif
    }
  } catch (const DistributedError&) {
    throw;
  } catch (const std::exception& e) {
    throw DistributedError(fmt::format("rank {}: creating the {} process group of {} ranks failed: {}", env.rank,
                                       backend, env.world_size, first_line(e)));
  }
}

ProcessGroup::~ProcessGroup() = default;

int ProcessGroup::rank() const { return impl_->env.rank; }
int ProcessGroup::world_size() const { return impl_->env.world_size; }

void ProcessGroup::broadcast(const std::vector<at::Tensor>& tensors, int64_t bucket_bytes) {
  at::NoGradGuard no_grad;
  for (const auto& members : bucket_layout(tensors, bucket_bytes)) {
    at::Tensor flat = flat_buffer_for(tensors, members);
    int64_t offset = 0;
    for (size_t i : members) {
      flat.narrow(0, offset, tensors[i].numel()).copy_(tensors[i].reshape({-1}));
      offset += tensors[i].numel();
    }
    std::vector<at::Tensor> buffers{flat};
    c10d::BroadcastOptions options;
    options.rootRank = 0;
    impl_->wait(impl_->collectives->broadcast(buffers, options), "the broadcast of rank 0's parameters");
    offset = 0;
    for (size_t i : members) {
      at::Tensor target = tensors[i];
      target.copy_(flat.narrow(0, offset, target.numel()).view_as(target));
      offset += target.numel();
    }
  }
}

bool ProcessGroup::any(bool flag) {
  std::vector<at::Tensor> buffers{at::full({1}, flag ? 1.0f : 0.0f, at::TensorOptions(impl_->device))};
  impl_->wait(impl_->collectives->allreduce(buffers), "the all-reduce of the stop flag");
  return buffers[0].item<float>() > 0.0f;
}

void ProcessGroup::barrier() { impl_->wait(impl_->collectives->barrier(), "the barrier"); }

void ProcessGroup::run_on_rank0(const std::string& what, const std::function<void()>& work) {
  // Signalled through counters (TCPStore's add): Store::get costs about 200 ms a call on
  // LibTorch 1.13 (a delayed ACK), too slow to poll, while add answers in well under 1 ms.
  Impl& s = *impl_;
  const int64_t section = s.rank0_sections++;
  const std::string done_key = fmt::format("rank0_done/{}", section);  // 1: finished, 2: failed
  const std::string failure_key = fmt::format("rank0_failure/{}", section);
  const std::string heartbeat_key = "rank0_heartbeat";
  if (s.env.rank == 0) {
    try {
      Heartbeat heartbeat(*s.store, heartbeat_key);
      work();
    } catch (const std::exception& e) {
      const std::string failure = e.what();
      try {
        s.store->set(failure_key, std::vector<uint8_t>(failure.begin(), failure.end()));
        s.store->add(done_key, 2);
      } catch (const std::exception&) {  // the others then time out and say so
      }
      throw;
    }
    s.store->add(done_key, 1);
    return;
  }
  try {
    int64_t last_beat = s.store->add(heartbeat_key, 0);
    Clock::time_point last_sign_of_life = Clock::now();
    int64_t done = 0;
    while ((done = s.store->add(done_key, 0)) == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      const int64_t beat = s.store->add(heartbeat_key, 0);
      if (beat != last_beat) {
        last_beat = beat;
        last_sign_of_life = Clock::now();
      } else if (Clock::now() - last_sign_of_life > s.timeout) {
        throw DistributedError(fmt::format("rank {}: rank 0 gave no sign of life for {} s during the {} (ddp_timeout_s); "
                                           "it has probably hung or died",
                                           s.env.rank, s.timeout.count() / 1000, what));
      }
    }
    if (done != 1) {
      const std::vector<uint8_t> failure = s.store->get(failure_key);
      throw DistributedError(fmt::format("rank {}: rank 0 failed during the {}: {}", s.env.rank, what,
                                         std::string(failure.begin(), failure.end())));
    }
  } catch (const DistributedError&) {
    throw;
  } catch (const std::exception& e) {
    throw DistributedError(fmt::format("rank {}: lost the store at {}:{} while waiting for rank 0's {}: {}", s.env.rank,
                                       s.env.master_addr, s.env.master_port, what, first_line(e)));
  }
}

// --- gradient averaging -------------------------------------------------------------------------

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
  for (const auto& members : bucket_layout(s.parameters, bucket_bytes)) {
    auto bucket = std::make_unique<Impl::Bucket>();
    bucket->members = members;
    bucket->flat = flat_buffer_for(s.parameters, members);
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
