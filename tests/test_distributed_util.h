#pragma once
// Shared helpers of the Distributed tests (test_distributed_env.cpp, test_distributed_training.cpp,
// test_distributed_faults.cpp): processes started with torchrun's variables, environment
// variables for a scope, a run's metrics, and the data-parallel config of the tests.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "nanogpt/base/config.h"
#include "nanogpt/distributed/distributed.h"
#include "test_util.h"

namespace nanogpt::testing::distributed {

using Clock = std::chrono::steady_clock;

// --- processes ----------------------------------------------------------------------------------

// Sets environment variables for a scope (unset: nullptr) and restores them afterwards.
class ScopedEnv {
 public:
  explicit ScopedEnv(const std::map<std::string, const char*>& values) {
    for (const auto& [name, value] : values) {
      const char* old = std::getenv(name.c_str());
      saved_[name] = old ? std::optional<std::string>(old) : std::nullopt;
      value ? ::setenv(name.c_str(), value, 1) : ::unsetenv(name.c_str());
    }
  }
  ~ScopedEnv() {
    for (const auto& [name, value] : saved_) value ? ::setenv(name.c_str(), value->c_str(), 1) : ::unsetenv(name.c_str());
  }

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

// A port that was free a moment ago.
int free_port();

// Starts `argv` with this environment, less any launcher variables, plus `env`; stdout and
// stderr go to `log`.
pid_t spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
            const std::string& log);

// The exit code of `pid` once it ends within `seconds` (128 + N for signal N), else nullopt.
std::optional<int> wait_exit(pid_t pid, double seconds);

void kill_and_reap(pid_t pid);

std::string read_text(const std::string& path);

// torchrun's variables for rank `rank` of `world`, all on this machine.
std::map<std::string, std::string> rank_env(int rank, int world, int port);

// --- runs -------------------------------------------------------------------------------------

struct Metrics {
  std::map<int64_t, double> losses;      // iter -> training loss
  std::map<int64_t, double> val_losses;  // iter -> val loss of the evaluation
};

Metrics metrics_of(const std::string& out_dir);

// The tiny model of the other tests, accumulating 4 micro-batches of 4, with an evaluation
// (and a checkpoint) every 6 iterations and gradients in many small buckets.
TrainConfig ddp_config(const TempDir& dir, const std::string& out_name);


}  // namespace nanogpt::testing::distributed

// GTEST_SKIP returns from the function it is written in, so the skip is a macro: in a helper it
// would return from the helper and the test would go on.
#define SKIP_WITHOUT_GLOO()                                 \
  if (!nanogpt::distributed_backend_available("gloo"))     \
  GTEST_SKIP() << "this build has no Gloo (libgloo-dev headers)"
