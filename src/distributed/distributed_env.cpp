// torchrun's variables read and checked, and the device each rank trains on.
#include "nanogpt/distributed/distributed.h"

#include <cerrno>
#include <climits>
#include <cstdlib>

#include <fmt/format.h>

namespace nanogpt {

namespace {

using Getenv = std::function<const char*(const char*)>;

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

}  // namespace

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

}  // namespace nanogpt
