// Data-parallel training over c10d with Gloo, the parts that need no second process: torchrun's
// environment, the batch sequence the ranks share, and the settings a multi-process run refuses.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "nanogpt/base/compat.h"
#include "nanogpt/data/data.h"
#include "nanogpt/distributed/distributed.h"
#include "nanogpt/train/train.h"
#include "test_distributed_util.h"
#include "test_util.h"

using namespace nanogpt;
using namespace nanogpt::testing::distributed;
using nanogpt::testing::TempDir;

// --- the environment and the batches --------------------------------------------------------------

TEST(Distributed, EnvironmentIsReadLikeTorchrun) {
  auto env_of = [](std::map<std::string, std::string> vars) {
    return read_distributed_env([vars](const char* name) -> const char* {
      auto it = vars.find(name);
      return it == vars.end() ? nullptr : it->second.c_str();
    });
  };
  auto error_of = [&](std::map<std::string, std::string> vars) {
    try {
      env_of(vars);
    } catch (const DistributedError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_FALSE(env_of({}).is_distributed());
  EXPECT_FALSE(env_of({{"WORLD_SIZE", "1"}, {"RANK", "0"}}).is_distributed());  // one process: nothing else read

  std::map<std::string, std::string> vars = {{"RANK", "3"},       {"LOCAL_RANK", "1"},         {"WORLD_SIZE", "4"},
                                             {"LOCAL_WORLD_SIZE", "2"}, {"MASTER_ADDR", "node0"}, {"MASTER_PORT", "29500"},
                                             {"TORCHELASTIC_USE_AGENT_STORE", "True"}, {"TORCHELASTIC_RESTART_COUNT", "2"}};
  const DistributedEnv env = env_of(vars);
  EXPECT_TRUE(env.is_distributed());
  EXPECT_EQ(env.rank, 3);
  EXPECT_EQ(env.local_rank, 1);
  EXPECT_EQ(env.world_size, 4);
  EXPECT_EQ(env.local_world_size, 2);
  EXPECT_EQ(env.master_addr, "node0");
  EXPECT_EQ(env.master_port, 29500);
  EXPECT_TRUE(env.use_agent_store);
  EXPECT_EQ(env.restart_count, 2);
  vars["TORCHELASTIC_USE_AGENT_STORE"] = "False";
  EXPECT_FALSE(env_of(vars).use_agent_store);

  auto with = [&](const std::string& name, const char* value) {
    auto changed = vars;
    if (value == nullptr) {
      changed.erase(name);
    } else {
      changed[name] = value;
    }
    return changed;
  };
  EXPECT_EQ(error_of(with("RANK", nullptr)),
            "environment variable RANK is not set; a multi-process run needs RANK, LOCAL_RANK, WORLD_SIZE, "
            "MASTER_ADDR and MASTER_PORT (torchrun sets them)");
  EXPECT_EQ(error_of(with("RANK", "4")), "environment variable RANK is '4'; expected an integer in [0, 3] (WORLD_SIZE is 4)");
  EXPECT_EQ(error_of(with("WORLD_SIZE", "two")), "environment variable WORLD_SIZE is 'two'; expected a positive integer");
  EXPECT_EQ(error_of(with("LOCAL_RANK", "2")), "environment variable LOCAL_RANK is '2'; expected an integer in [0, 1]");
  EXPECT_EQ(error_of(with("MASTER_PORT", "70000")),
            "environment variable MASTER_PORT is '70000'; expected a port number in [1, 65535]");
  EXPECT_NE(error_of(with("MASTER_ADDR", nullptr)).find("environment variable MASTER_ADDR is not set"), std::string::npos);
}

TEST(Distributed, RanksShareOutTheBatchesOfAOneProcessRun) {
  TempDir dir;
  nanogpt::testing::make_char_dataset(dir / "data");
  const TokenFile train(dir / "data/train.bin");
  const TokenFile val(dir / "data/val.bin");
  const int64_t k = 4, batch = 3, block = 8, eval_iters = 2;
  auto evaluates = [](int64_t it) { return it % 2 == 0; };

  // A one-process run's draws from the default generator: for each iteration the first
  // training batch, the evaluation batches when it evaluates, then the other k - 1.
  torch::manual_seed(5);
  const at::Tensor start_state = rng_state(at::kCPU);
  std::vector<std::vector<at::Tensor>> train_windows(3), eval_windows(3);
  std::vector<at::Tensor> states;
  for (int64_t it = 0; it < 3; ++it) {
    states.push_back(rng_state(at::kCPU));
    train_windows[it].push_back(get_batch(train, batch, block, at::kCPU).first);
    if (evaluates(it)) {
      for (int64_t e = 0; e < eval_iters; ++e) eval_windows[it].push_back(get_batch(train, batch, block, at::kCPU).first);
      for (int64_t e = 0; e < eval_iters; ++e) eval_windows[it].push_back(get_batch(val, batch, block, at::kCPU).first);
    }
    for (int64_t j = 1; j < k; ++j) train_windows[it].push_back(get_batch(train, batch, block, at::kCPU).first);
  }

  for (int world = 1; world <= 4; world *= 2) {
    for (int rank = 0; rank < world; ++rank) {
      ShardedBatches::Options options;
      options.batch_size = batch;
      options.block_size = block;
      options.micro_steps = k;
      options.eval_iters = eval_iters;
      options.rank = rank;
      options.world_size = world;
      ShardedBatches shards(train, val, options, at::kCPU, start_state, evaluates, 0);
      const int64_t per_rank = k / world, first = (world - 1 - rank) * per_rank;
      for (int64_t it = 0; it < 3; ++it) {
        for (int64_t j = first; j < first + per_rank; ++j) {
          EXPECT_TRUE(torch::equal(shards.next_train().first, train_windows[it][j]))
              << "world " << world << " rank " << rank << " iteration " << it << " micro-batch " << j;
          if (j == first) EXPECT_TRUE(torch::equal(shards.pending_rng_state(), states[it]));
          if (j == first && rank == 0 && evaluates(it)) {
            for (int64_t e = 0; e < 2 * eval_iters; ++e) {
              EXPECT_TRUE(torch::equal(shards.next_eval(e < eval_iters ? "train" : "val").first, eval_windows[it][e]));
            }
          }
        }
      }
    }
  }
}

TEST(Distributed, SettingsThatCannotWorkAreClearErrors) {
  TempDir dir;
  nanogpt::testing::make_char_dataset(dir / "data");
  ScopedEnv env({{"WORLD_SIZE", "2"}, {"RANK", "1"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "127.0.0.1"},
                 {"MASTER_PORT", "1"}});  // the checks come before any connection
  auto error_of = [&](const TrainConfig& c) {
    try {
      TrainHooks hooks;
      hooks.print = [](const std::string&) {};
      train(c, hooks);
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  TrainConfig c = ddp_config(dir, "out");
  c.gradient_accumulation_steps = 5;
  EXPECT_EQ(error_of(c), "config key 'gradient_accumulation_steps' (5) must be divisible by WORLD_SIZE (2): each rank "
                         "runs gradient_accumulation_steps / WORLD_SIZE micro-steps");
  c.gradient_accumulation_steps = 4;
  c.backend = "nccl";
  EXPECT_EQ(error_of(c), "config key 'backend' is 'nccl', which runs on CUDA devices only, but device is 'cpu'; set "
                         "backend: gloo for CPU training");
  c.backend = "gloo";
  c.auto_fit = true;
  EXPECT_NE(error_of(c).find("config key 'auto_fit' is for one process only (WORLD_SIZE is 2)"), std::string::npos);
}
