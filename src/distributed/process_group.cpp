// The process group (torch.distributed.init_process_group): the TCPStore, the Gloo or NCCL
// collectives over it, and rank 0's sections that the other ranks wait out.
#include <csignal>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>

#include <ATen/core/grad_mode.h>
#include <fmt/format.h>

#include "distributed/process_group_impl.h"

#ifdef NANOGPT_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace nanogpt {

namespace detail {

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

}  // namespace detail

namespace {

using Clock = std::chrono::steady_clock;

// The first line of a c10d/Gloo message: the rest is a C++ stack trace.
std::string first_line(const std::exception& e) {
  const std::string text = e.what();
  return text.substr(0, text.find('\n'));
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

void ProcessGroup::Impl::wait(const c10::intrusive_ptr<c10d::Work>& work, const std::string& what) const {
  try {
    work->wait();
  } catch (const std::exception& e) {
    throw DistributedError(fmt::format(
        "rank {}: {} failed: {}. A peer process has probably exited or hung (ddp_timeout_s is {} s); see its log",
        env.rank, what, first_line(e), timeout.count() / 1000));
  }
}

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
    impl_->store = c10d_compat::make_tcp_store(env.master_addr, options);
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
  for (const auto& members : detail::bucket_layout(tensors, bucket_bytes)) {
    at::Tensor flat = detail::flat_buffer_for(tensors, members);
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

}  // namespace nanogpt
