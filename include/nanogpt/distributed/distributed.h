#pragma once
// Data-parallel training over PyTorch's c10d, as nanoGPT's train.py does with DDP under
// torchrun: the rank and world from torchrun's environment, a TCPStore and a Gloo (CPU) or
// NCCL (CUDA) process group, rank 0's parameters broadcast at the start, and gradients
// averaged over all ranks in flattened buckets, once per optimizer step, on the last
// micro-step's backward pass. The c10d headers stay in src/ (process_group_impl.h).
#include <ATen/ATen.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace nanogpt {

// A bad launch environment, a failed collective or a peer that went away; the message
// names the variable, the rank or the operation.
struct DistributedError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// What torchrun (or any launcher that sets the same variables) tells each process.
struct DistributedEnv {
  int rank = 0;              // RANK
  int local_rank = 0;        // LOCAL_RANK: the process's index on its machine (its GPU)
  int world_size = 1;        // WORLD_SIZE
  int local_world_size = 1;  // LOCAL_WORLD_SIZE: processes on this machine (1 when unset)
  std::string master_addr;   // MASTER_ADDR: where the TCPStore listens
  int master_port = 0;       // MASTER_PORT
  // TORCHELASTIC_USE_AGENT_STORE=True: torchrun's agent hosts the store and every rank is a
  // client of it; otherwise rank 0 hosts it (torchrun --standalone, or plain variables).
  bool use_agent_store = false;
  int restart_count = 0;  // TORCHELASTIC_RESTART_COUNT: the store's key prefix with the agent store

  bool is_distributed() const { return world_size > 1; }
};

// Reads the variables through `getenv`. Without WORLD_SIZE, or with WORLD_SIZE=1, the run is
// one process and nothing else is read; otherwise RANK, LOCAL_RANK, MASTER_ADDR and
// MASTER_PORT must be set and valid, or a DistributedError names the variable and its value.
DistributedEnv read_distributed_env(const std::function<const char*(const char*)>& getenv);
DistributedEnv read_distributed_env();  // from this process's environment

// The device a rank trains on: cuda:LOCAL_RANK when the config asks for cuda in a
// multi-process run (nanoGPT's `device = f'cuda:{ddp_local_rank}'`), else the config's.
at::Device device_for_rank(const at::Device& configured, const DistributedEnv& env);

// Whether this build has the c10d backend "gloo" or "nccl" (the latter: CUDA builds with NCCL).
bool distributed_backend_available(const std::string& backend);

// The process group of a multi-process run (torch.distributed.init_process_group).
class ProcessGroup {
 public:
  // Connects to the store and builds the group; `backend` is "gloo" or "nccl" (CUDA builds
  // with NCCL). Collectives and waits on peers fail after `timeout`.
  ProcessGroup(const DistributedEnv& env, const std::string& backend, const at::Device& device,
               std::chrono::milliseconds timeout);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const;
  int world_size() const;

  // Rank 0's values of `tensors` on every rank, in place (flattened, in buckets).
  void broadcast(const std::vector<at::Tensor>& tensors, int64_t bucket_bytes);

  // True on every rank when `flag` is true on any rank: one small all-reduce.
  bool any(bool flag);

  // Returns once every rank has called it.
  void barrier();

  // Runs `work` on rank 0 while the other ranks wait for it, for as long as it takes: rank 0
  // beats a heartbeat in the store, and a waiting rank gives up only when the heartbeat stops
  // for `timeout` (rank 0 hung or died). An exception on rank 0 reaches every rank, as an
  // exception naming `what`. Every rank must call it at the same point of the run.
  void run_on_rank0(const std::string& what, const std::function<void()>& work);

  struct Impl;  // the c10d objects, in src/distributed/process_group_impl.h

 private:
  friend class DistributedDataParallel;
  std::unique_ptr<Impl> impl_;
};

// Gradient averaging over a process group, the part of PyTorch's DistributedDataParallel
// that nanoGPT relies on. The parameters are laid out, in reverse order (the order backward
// produces their gradients), in flat buckets of about `bucket_bytes`. On a backward pass with
// `require_backward_grad_sync` set, a hook on each parameter copies its accumulated gradient
// into its bucket as soon as backward has computed it; a complete bucket is divided by the
// world size and all-reduced (summed) in the background while backward goes on, buckets
// always in the same order on every rank. finish_gradient_sync() then waits for them and makes
// the averaged buckets the parameters' .grad (views into the buckets): the same gradients on
// every rank. (DDP does that last part in an autograd-engine callback at the end of backward;
// here it is an explicit call, because activation checkpointing runs nested backward passes,
// and a callback queued from a hook would fire at the end of the first nested one.)
class DistributedDataParallel {
 public:
  // Broadcasts rank 0's parameters to every rank (the DDP constructor does the same).
  DistributedDataParallel(ProcessGroup& group, std::vector<at::Tensor> parameters, int64_t bucket_bytes);
  ~DistributedDataParallel();
  DistributedDataParallel(const DistributedDataParallel&) = delete;
  DistributedDataParallel& operator=(const DistributedDataParallel&) = delete;

  // nanoGPT's `model.require_backward_grad_sync`: set it for the last micro-step only.
  bool require_backward_grad_sync = true;

  // After the synchronised backward pass: every rank's .grad holds the average over all
  // ranks. Throws DistributedError when a peer is gone or the timeout passes.
  void finish_gradient_sync();

  int64_t num_buckets() const;

  // The last synchronised backward pass: from the first bucket's all-reduce launch to the
  // last bucket's completion, and how much of that the backward pass waited for at its end
  // (the part not hidden behind the computation of other gradients).
  struct SyncTimes {
    double allreduce_ms = 0;
    double exposed_ms = 0;
  };
  SyncTimes last_sync_times() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace nanogpt
