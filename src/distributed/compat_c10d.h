#pragma once
// The c10d headers with the backends this build has, beside compat.h but kept out of it so
// that only the distributed component's c10d sources (src/distributed/process_group.cpp,
// src/distributed/data_parallel.cpp, through src/distributed/process_group_impl.h) compile the c10d headers. For
// them CMake defines NANOGPT_WITH_GLOO when Gloo's headers are found and NANOGPT_WITH_NCCL
// when a CUDA LibTorch and nccl.h are;
// LibTorch's headers hide each backend behind USE_C10D_GLOO / USE_C10D_NCCL.
#include <string>

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

#ifdef NANOGPT_WITH_GLOO
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif

#ifdef NANOGPT_WITH_NCCL
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace nanogpt::c10d_compat {

// The TCPStore. It defaults to the libuv backend, which a LibTorch built without libuv (Debian's)
// refuses at construction, server and client alike; the classic backend speaks the same
// protocol, so the store falls back to it there.
inline c10::intrusive_ptr<c10d::TCPStore> make_tcp_store(const std::string& host, c10d::TCPStoreOptions options) {
  if (options.useLibUV) {
    try {
      return c10::make_intrusive<c10d::TCPStore>(host, options);
    } catch (const c10::Error& e) {
      if (std::string(e.what()).find("without libuv") == std::string::npos) throw;
      options.useLibUV = false;
    }
  }
  return c10::make_intrusive<c10d::TCPStore>(host, options);
}

}  // namespace nanogpt::c10d_compat
