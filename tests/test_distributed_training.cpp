// Data-parallel training over c10d with Gloo: real processes on loopback (tests/dist_worker.cpp),
// started directly with torchrun's variables or through torchrun itself when it is installed.
// Two ranks with accumulation k/2 each must train like one rank with accumulation k: same
// losses, same final weights (to 1e-5), the two ranks' weights bit-identical; checkpoints move
// between world sizes; a long evaluation on rank 0 times out no other rank.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "nanogpt/interop/checkpoint.h"
#include "nanogpt/train/train.h"
#include "test_distributed_util.h"
#include "test_util.h"

using namespace nanogpt;
using namespace nanogpt::testing::distributed;
using nanogpt::testing::TempDir;

namespace {

// Why torchrun (the build's Python's torch.distributed.run) cannot run here, or empty. Debian 13's
// torch 2.6 is built without libuv while its Python asks TCPStore for libuv, so its torchrun fails
// before it starts any rank.
std::string torchrun_defect() {
  FILE* pipe = ::popen(NANOGPT_PYTHON " -c \"from torch.distributed import TCPStore; TCPStore('127.0.0.1', 0, 1, True)\" 2>&1",
                       "r");
  if (pipe == nullptr) return "cannot run " NANOGPT_PYTHON;
  std::string output;
  char buffer[256];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) output += buffer;
  if (::pclose(pipe) == 0) return {};
  return NANOGPT_PYTHON " cannot create a TCPStore, so torchrun starts no rank: " +
         output.substr(output.rfind('\n', output.size() - 2) + 1);
}

enum class Launcher { processes, torchrun };
void PrintTo(Launcher launcher, std::ostream* out) {
  *out << (launcher == Launcher::processes ? "processes" : "torchrun");
}

// Runs `command` as two ranks to the end; each rank's output is in <log_dir>/rank<r>.log (or
// torchrun.log). Fails the test when a rank fails.
void run_two_ranks(Launcher launcher, const std::vector<std::string>& command, const std::string& log_dir,
                   const std::map<std::string, std::string>& extra_env = {}) {
  const int port = free_port();
  std::vector<std::pair<pid_t, std::string>> started;
  if (launcher == Launcher::processes) {
    for (int rank = 0; rank < 2; ++rank) {
      auto env = rank_env(rank, 2, port);
      env.insert(extra_env.begin(), extra_env.end());
      const std::string log = log_dir + "/rank" + std::to_string(rank) + ".log";
      started.emplace_back(spawn(command, env, log), log);
    }
  } else {
    // static rendezvous: torchrun's agent hosts the store (TORCHELASTIC_USE_AGENT_STORE=True)
    std::vector<std::string> argv = {NANOGPT_PYTHON, "-m", "torch.distributed.run", "--nnodes=1", "--node_rank=0",
                                     "--nproc_per_node=2",
                                     "--master_addr=127.0.0.1", "--master_port=" + std::to_string(port),
                                     "--no_python", "-r", "1", "-t", "1"};
    argv.insert(argv.end(), command.begin(), command.end());
    const std::string log = log_dir + "/torchrun.log";
    started.emplace_back(spawn(argv, extra_env, log), log);
  }
  for (const auto& [pid, log] : started) {
    const std::optional<int> code = wait_exit(pid, 300);
    if (!code) kill_and_reap(pid);
    ASSERT_EQ(code, std::optional<int>(0)) << log << ":\n" << read_text(log);
  }
}

using Params = std::map<std::string, at::Tensor>;

Params params_of(GPT& model) {
  Params out;
  for (const auto& item : model->named_parameters()) out[item.key()] = item.value().detach().clone();
  return out;
}

Params params_in(const std::string& path) {
  GPT model = load_model(path);
  return params_of(model);
}

// One process, in this process: WORLD_SIZE is unset.
Params train_one_rank(const TrainConfig& c) {
  ScopedEnv no_launcher({{"WORLD_SIZE", nullptr}, {"RANK", nullptr}});
  Params params;
  TrainHooks hooks;
  hooks.print = [](const std::string&) {};
  hooks.on_finish = [&](GPT& model) { params = params_of(model); };
  train(c, hooks);
  return params;
}

// Two ranks through tests/dist_worker.cpp; returns each rank's final parameters.
std::vector<Params> train_two_ranks(const TrainConfig& c, Launcher launcher,
                                    const std::map<std::string, std::string>& extra_env = {}) {
  std::filesystem::create_directories(c.out_dir);
  const std::string config_path = c.out_dir + "/worker_config.json";
  std::ofstream(config_path) << to_json(c).dump();
  run_two_ranks(launcher, {NANOGPT_DIST_WORKER, config_path}, c.out_dir, extra_env);
  return {params_in(c.out_dir + "/params_rank0.pt"), params_in(c.out_dir + "/params_rank1.pt")};
}

void expect_close(const Params& got, const Params& expected, double tolerance, const std::string& what) {
  ASSERT_EQ(got.size(), expected.size());
  for (const auto& [name, value] : expected) {
    const double diff = (got.at(name) - value).abs().max().item<double>();
    EXPECT_LE(diff, tolerance) << what << ": " << name;
  }
}

void expect_identical(const Params& a, const Params& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, value] : a) EXPECT_TRUE(torch::equal(value, b.at(name))) << name << " differs between ranks";
}

// The losses of iterations from..to (those that have one) agree to 1e-5, and no more or fewer.
void expect_losses_close(const std::map<int64_t, double>& got, const std::map<int64_t, double>& expected,
                         int64_t from, int64_t to, const std::string& what) {
  std::vector<int64_t> got_iters, expected_iters;
  for (const auto& [it, loss] : got) if (it >= from && it <= to) got_iters.push_back(it);
  for (const auto& [it, loss] : expected) if (it >= from && it <= to) expected_iters.push_back(it);
  ASSERT_EQ(got_iters, expected_iters) << what << ": not the same iterations";
  ASSERT_FALSE(expected_iters.empty()) << what;
  for (int64_t it : expected_iters) EXPECT_NEAR(got.at(it), expected.at(it), 1e-5) << what << ", iteration " << it;
}

}  // namespace

// --- two processes on loopback ------------------------------------------------------------------

class TwoRanks : public ::testing::TestWithParam<Launcher> {};

// (a) the same losses and final weights as one rank over the same data; (b) the ranks' weights
// stay bit-identical.
TEST_P(TwoRanks, TrainLikeOneRankWithTwiceTheAccumulation) {
  SKIP_WITHOUT_GLOO();
  if (GetParam() == Launcher::torchrun) {
    const std::string defect = torchrun_defect();
    if (!defect.empty()) GTEST_SKIP() << defect;
  }
  TempDir dir;
  nanogpt::testing::make_char_dataset(dir / "data");
  const TrainConfig one = ddp_config(dir, "one");
  const Params expected = train_one_rank(one);
  TrainConfig two = ddp_config(dir, "two");
  const std::vector<Params> ranks = train_two_ranks(two, GetParam());

  const Metrics m1 = metrics_of(one.out_dir), m2 = metrics_of(two.out_dir);
  EXPECT_EQ(m2.losses.size(), 13u);  // rank 0 alone logs
  expect_losses_close(m2.losses, m1.losses, 0, 12, "training loss");
  expect_losses_close(m2.val_losses, m1.val_losses, 0, 12, "val loss");
  EXPECT_EQ(m2.val_losses.size(), 3u);  // evaluations at 0, 6 and 12
  expect_close(ranks[0], expected, 1e-5, "rank 0 against one rank");
  expect_identical(ranks[0], ranks[1]);
  EXPECT_EQ(read_checkpoint_info(two.out_dir + "/ckpt.pt").iter_num, 12);
}

INSTANTIATE_TEST_SUITE_P(Distributed, TwoRanks, ::testing::Values(Launcher::processes, Launcher::torchrun),
                         [](const ::testing::TestParamInfo<Launcher>& info) {
                           return info.param == Launcher::processes ? std::string("StartedDirectly")
                                                                    : std::string("UnderTorchrun");
                         });

// Activation checkpointing runs nested backward passes inside the outer one, and the
// chunked loss returns the head's gradient from a custom backward: the hooks see them all.
TEST(Distributed, TwoRanksWithTheMemorySaversTrainLikeOneRank) {
  SKIP_WITHOUT_GLOO();
  TempDir dir;
  nanogpt::testing::make_char_dataset(dir / "data");
  auto savers = [&](const std::string& out) {
    TrainConfig c = ddp_config(dir, out);
    c.activation_checkpointing = "blocks";
    c.loss_chunk_size = 24;
    c.max_iters = 6;
    c.lr_decay_iters = 6;
    return c;
  };
  const TrainConfig one = savers("one");
  const Params expected = train_one_rank(one);
  const std::vector<Params> ranks = train_two_ranks(savers("two"), Launcher::processes);
  expect_losses_close(metrics_of(dir / "two").losses, metrics_of(one.out_dir).losses, 0, 6, "training loss");
  expect_close(ranks[0], expected, 1e-5, "rank 0 against one rank");
  expect_identical(ranks[0], ranks[1]);
}

// (d) a checkpoint of two ranks resumes in one and the other way round, as a straight run.
TEST(Distributed, CheckpointsResumeAcrossWorldSizes) {
  SKIP_WITHOUT_GLOO();
  TempDir dir;
  nanogpt::testing::make_char_dataset(dir / "data");
  const TrainConfig straight = ddp_config(dir, "straight");
  const Params expected = train_one_rank(straight);  // iterations 0..12
  const Metrics reference = metrics_of(straight.out_dir);

  // two ranks to the checkpoint at iteration 6, then one rank to the end
  TrainConfig first = ddp_config(dir, "two_then_one");
  first.max_iters = 6;
  train_two_ranks(first, Launcher::processes);
  TrainConfig second = first;
  second.max_iters = 12;
  second.init_from = "resume";
  const Params two_then_one = train_one_rank(second);
  expect_losses_close(metrics_of(second.out_dir).losses, reference.losses, 0, 12, "2 ranks, then 1");
  expect_close(two_then_one, expected, 1e-5, "2 ranks, then 1");

  // one rank to the checkpoint, then two ranks
  first.out_dir = dir / "one_then_two";
  train_one_rank(first);
  second.out_dir = first.out_dir;
  const std::vector<Params> one_then_two = train_two_ranks(second, Launcher::processes);
  expect_losses_close(metrics_of(second.out_dir).losses, reference.losses, 0, 12, "1 rank, then 2");
  expect_close(one_then_two[0], expected, 1e-5, "1 rank, then 2");
  expect_identical(one_then_two[0], one_then_two[1]);
}

// Rank 0 evaluating for longer than ddp_timeout_s: the other rank waits for it, no timeout.
TEST(Distributed, ALongEvaluationOnRankZeroDoesNotTimeOutTheOthers) {
  SKIP_WITHOUT_GLOO();
  TempDir dir;
  nanogpt::testing::make_char_dataset(dir / "data");
  TrainConfig c = ddp_config(dir, "out");
  c.max_iters = 2;
  c.eval_interval = 2;
  c.ddp_timeout_s = 4;
  const auto start = Clock::now();
  train_two_ranks(c, Launcher::processes, {{"NANOGPT_TEST_EVAL_SLEEP_S", "6"}});  // each evaluation sleeps 6 s
  EXPECT_GE(std::chrono::duration<double>(Clock::now() - start).count(), 12.0);
  EXPECT_EQ(metrics_of(c.out_dir).val_losses.size(), 2u);
}
