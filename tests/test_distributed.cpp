// Data-parallel training over c10d with Gloo: torchrun's environment, the batch sequence the
// ranks share, and real processes on loopback, started directly with torchrun's variables or
// through torchrun itself when it is installed. Two ranks with accumulation k/2 each must
// train like one rank with accumulation k: same losses, same final weights (to 1e-5), the
// two ranks' weights bit-identical; checkpoints move between world sizes; a dead or hung peer
// ends the run with an error within ddp_timeout_s; Ctrl-C on one rank stops all of them.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "nanogpt/interop/checkpoint.h"
#include "nanogpt/base/compat.h"
#include "nanogpt/data/data.h"
#include "nanogpt/distributed/distributed.h"
#include "nanogpt/train/train.h"
#include "test_util.h"

extern char** environ;

using namespace nanogpt;
using nanogpt::testing::TempDir;
using Clock = std::chrono::steady_clock;

namespace {

// --- processes ----------------------------------------------------------------------------------

const std::vector<std::string> kLaunchVariables = {
    "RANK",        "LOCAL_RANK",  "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
    "GROUP_RANK",  "ROLE_RANK",   "TORCHELASTIC_USE_AGENT_STORE",   "TORCHELASTIC_RESTART_COUNT"};

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
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// Starts `argv` with this environment, less any launcher variables, plus `env`; stdout and
// stderr go to `log`.
pid_t spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
            const std::string& log) {
  std::vector<std::string> entries;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const std::string name = entry.substr(0, entry.find('='));
    if (std::find(kLaunchVariables.begin(), kLaunchVariables.end(), name) == kLaunchVariables.end() &&
        env.count(name) == 0) {
      entries.push_back(entry);
    }
  }
  for (const auto& [name, value] : env) entries.push_back(name + "=" + value);
  std::vector<char*> envp, args;
  for (auto& e : entries) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = argv;
  for (auto& a : argv_copy) args.push_back(a.data());
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  EXPECT_EQ(rc, 0) << "cannot start " << argv[0];
  return pid;
}

// The exit code of `pid` once it ends within `seconds` (128 + N for signal N), else nullopt.
std::optional<int> wait_exit(pid_t pid, double seconds) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  while (true) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (Clock::now() > deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void kill_and_reap(pid_t pid) {
  ::kill(pid, SIGKILL);
  wait_exit(pid, 30);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// torchrun's variables for rank `rank` of `world`, all on this machine.
std::map<std::string, std::string> rank_env(int rank, int world, int port) {
  return {{"RANK", std::to_string(rank)},        {"LOCAL_RANK", std::to_string(rank)},
          {"WORLD_SIZE", std::to_string(world)}, {"LOCAL_WORLD_SIZE", std::to_string(world)},
          {"MASTER_ADDR", "127.0.0.1"},          {"MASTER_PORT", std::to_string(port)},
          {"OMP_NUM_THREADS", "1"}};
}

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

// --- runs -------------------------------------------------------------------------------------

struct Metrics {
  std::map<int64_t, double> losses;      // iter -> training loss
  std::map<int64_t, double> val_losses;  // iter -> val loss of the evaluation
};

Metrics metrics_of(const std::string& out_dir) {
  Metrics m;
  std::ifstream in(out_dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    const auto record = nlohmann::json::parse(line);
    const int64_t it = record["iter"].get<int64_t>();
    if (record["kind"] == "iter") m.losses[it] = record["loss"].get<double>();
    if (record["kind"] == "eval") m.val_losses[it] = record["val_loss"].get<double>();
  }
  return m;
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

// The tiny model of the other tests, accumulating 4 micro-batches of 4, with an evaluation
// (and a checkpoint) every 6 iterations and gradients in many small buckets.
TrainConfig ddp_config(const TempDir& dir, const std::string& out_name) {
  TrainConfig c = nanogpt::testing::tiny_config(dir / "data", dir / out_name);
  c.gradient_accumulation_steps = 4;
  c.max_iters = 12;
  c.lr_decay_iters = 12;
  c.eval_interval = 6;
  c.always_save_checkpoint = true;
  c.backend = "gloo";
  c.bucket_cap_mb = 0.02;  // 20 KiB: the 2-layer model's gradients go in several buckets
  c.ddp_timeout_s = 60;
  return c;
}

void skip_without_gloo() {
  if (!distributed_backend_available("gloo")) GTEST_SKIP() << "this build has no Gloo (libgloo-dev headers)";
}

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

// --- two processes on loopback ------------------------------------------------------------------

class TwoRanks : public ::testing::TestWithParam<Launcher> {};

// (a) the same losses and final weights as one rank over the same data; (b) the ranks' weights
// stay bit-identical.
TEST_P(TwoRanks, TrainLikeOneRankWithTwiceTheAccumulation) {
  skip_without_gloo();
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
  skip_without_gloo();
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
  skip_without_gloo();
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
  skip_without_gloo();
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

// (c) a peer that dies: the other rank ends with an error long before ddp_timeout_s.
TEST(Distributed, APeerThatDiesEndsTheOtherRankWithAnError) {
  skip_without_gloo();
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
  skip_without_gloo();
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
  skip_without_gloo();
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
