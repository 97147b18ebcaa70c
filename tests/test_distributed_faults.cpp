// Data-parallel training over c10d with Gloo, `nanogpt train` as two processes on loopback: a
// dead or hung peer ends the run with an error within ddp_timeout_s; Ctrl-C on one rank stops
// all of them.
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>

#include "nanogpt/interop/checkpoint.h"
#include "test_distributed_util.h"
#include "test_util.h"

using namespace nanogpt;
using namespace nanogpt::testing::distributed;
using nanogpt::testing::TempDir;

namespace {

// The yaml for the CLI runs below; the data folder is <dir>/data.
std::string write_cli_config(const TempDir& dir, const std::string& extra) {
  const std::string path = dir / "ddp.yaml";
  nanogpt::testing::write_text(path, "data_dir: " + (dir / "data") + "\nout_dir: " + (dir / "out") +
                                         "\ndevice: cpu\nbackend: gloo\nn_layer: 2\nn_head: 2\nn_embd: 32\n"
                                         "block_size: 16\nbatch_size: 4\ngradient_accumulation_steps: 2\n"
                                         "num_threads: 1\nwarmup_iters: 2\nlr_decay_iters: 100000\n"
                                         "max_iters: 100000\neval_interval: 100000\neval_iters: 2\n" +
                                         extra);
  return path;
}

// Waits until rank 0 has logged iteration `it`.
bool wait_for_iteration(const std::string& out_dir, int64_t it, double seconds) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < deadline) {
    if (std::filesystem::exists(out_dir + "/metrics.jsonl") && metrics_of(out_dir).losses.count(it)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

}  // namespace

// (c) a peer that dies: the other rank ends with an error long before ddp_timeout_s.
TEST(Distributed, APeerThatDiesEndsTheOtherRankWithAnError) {
  SKIP_WITHOUT_GLOO();
  TempDir dir;
  nanogpt::testing::make_char_dataset(dir / "data");
  const std::string config = write_cli_config(dir, "ddp_timeout_s: 20\n");
  const int port = free_port();
  const pid_t rank0 = spawn({NANOGPT_BINARY, "train", config}, rank_env(0, 2, port), dir / "rank0.log");
  const pid_t rank1 = spawn({NANOGPT_BINARY, "train", config}, rank_env(1, 2, port), dir / "rank1.log");
  const bool training = wait_for_iteration(dir / "out", 3, 120);
  ::kill(rank1, SIGKILL);
  wait_exit(rank1, 30);
  const auto killed = Clock::now();
  const std::optional<int> code = wait_exit(rank0, 60);
  const double seconds = std::chrono::duration<double>(Clock::now() - killed).count();
  if (!code) kill_and_reap(rank0);
  ASSERT_TRUE(training) << read_text(dir / "rank0.log");
  EXPECT_EQ(code, std::optional<int>(1)) << read_text(dir / "rank0.log");
  EXPECT_LT(seconds, 20.0);
  const std::string log = read_text(dir / "rank0.log");
  EXPECT_NE(log.find("error: rank 0: "), std::string::npos) << log;
  EXPECT_NE(log.find("A peer process has probably exited or hung (ddp_timeout_s is 20 s)"), std::string::npos) << log;
}

// (c) a peer that hangs (stopped): the other rank ends with an error once ddp_timeout_s passes.
TEST(Distributed, APeerThatHangsEndsTheOtherRankAfterTheTimeout) {
  SKIP_WITHOUT_GLOO();
  TempDir dir;
  nanogpt::testing::make_char_dataset(dir / "data");
  const std::string config = write_cli_config(dir, "ddp_timeout_s: 5\n");
  const int port = free_port();
  const pid_t rank0 = spawn({NANOGPT_BINARY, "train", config}, rank_env(0, 2, port), dir / "rank0.log");
  const pid_t rank1 = spawn({NANOGPT_BINARY, "train", config}, rank_env(1, 2, port), dir / "rank1.log");
  const bool training = wait_for_iteration(dir / "out", 3, 120);
  ::kill(rank1, SIGSTOP);
  const auto stopped = Clock::now();
  const std::optional<int> code = wait_exit(rank0, 60);
  const double seconds = std::chrono::duration<double>(Clock::now() - stopped).count();
  kill_and_reap(rank1);
  if (!code) kill_and_reap(rank0);
  ASSERT_TRUE(training) << read_text(dir / "rank0.log");
  EXPECT_EQ(code, std::optional<int>(1)) << read_text(dir / "rank0.log");
  EXPECT_GE(seconds, 4.0);
  EXPECT_LT(seconds, 5.0 + 15.0);
  EXPECT_NE(read_text(dir / "rank0.log").find("A peer process has probably exited or hung (ddp_timeout_s is 5 s)"),
            std::string::npos)
      << read_text(dir / "rank0.log");
}

// Ctrl-C on one rank: every rank stops at the same iteration, rank 0 saves, both exit 0.
TEST(Distributed, CtrlCOnOneRankStopsEveryRankWithACheckpoint) {
  SKIP_WITHOUT_GLOO();
  TempDir dir;
  nanogpt::testing::make_char_dataset(dir / "data");
  const std::string config = write_cli_config(dir, "ddp_timeout_s: 30\n");
  const int port = free_port();
  const pid_t rank0 = spawn({NANOGPT_BINARY, "train", config}, rank_env(0, 2, port), dir / "rank0.log");
  const pid_t rank1 = spawn({NANOGPT_BINARY, "train", config}, rank_env(1, 2, port), dir / "rank1.log");
  const bool training = wait_for_iteration(dir / "out", 3, 120);
  ::kill(rank1, SIGINT);
  const std::optional<int> code1 = wait_exit(rank1, 60);
  const std::optional<int> code0 = wait_exit(rank0, 60);
  if (!code0) kill_and_reap(rank0);
  if (!code1) kill_and_reap(rank1);
  ASSERT_TRUE(training) << read_text(dir / "rank0.log");
  EXPECT_EQ(code0, std::optional<int>(0)) << read_text(dir / "rank0.log");
  EXPECT_EQ(code1, std::optional<int>(0)) << read_text(dir / "rank1.log");
  const std::string log = read_text(dir / "rank0.log");
  const auto at = log.find("interrupted at iteration ");
  ASSERT_NE(at, std::string::npos) << log;
  const int64_t stopped_at = std::stoll(log.substr(at + 25));
  EXPECT_EQ(read_checkpoint_info(dir / "out/ckpt.pt").iter_num, stopped_at);
  EXPECT_EQ(metrics_of(dir / "out").losses.rbegin()->first, stopped_at - 1);
}
