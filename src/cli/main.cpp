// nanogpt: a thin command line over the nanogpt_core library.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <set>
#include <string>

#include <c10/util/Exception.h>

#include "commands.h"
#include "nanogpt/base/config.h"
#include "nanogpt/memory/memory_stats.h"
#include "nanogpt/base/device.h"

namespace {

// LibTorch's threads are OpenMP's (libgomp), whose idle workers spin for a while after each
// parallel region, on cores that other work then needs (OpenBLAS's own pool, with an OpenBLAS
// LibTorch). On 2 cores with LibTorch 1.13 a small model ran 3x slower on 2 threads than on 1;
// with passive (sleeping) workers it did not, and larger models lost nothing
// (docs/performance.md, "Idle OpenMP workers sleep"). libgomp reads OMP_WAIT_POLICY once,
// while it loads, before main; so a computing command without the variable sets it and runs
// itself again. A policy the user set is kept.
bool computes(int argc, char** argv) {
  static const std::set<std::string> computing = {"train", "bench", "sample", "check-logits"};
  if (argc < 2) return false;
  if (computing.count(argv[1]) > 0) return true;
  // `memory` is the planner's arithmetic unless --measure runs a real step
  return std::string(argv[1]) == "memory" && std::find(argv + 2, argv + argc, std::string("--measure")) != argv + argc;
}

void run_again_with_passive_openmp_workers(int argc, char** argv) {
  if (!computes(argc, argv) || std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  if (nanogpt::hardware_threads() < 2) return;
  if (setenv("OMP_WAIT_POLICY", "PASSIVE", /*overwrite=*/0) != 0) return;  // else it would run again and again
  execv("/proc/self/exe", argv);  // returns only when it failed: go on with libgomp's policy
}

}  // namespace

int main(int argc, char** argv) {
  run_again_with_passive_openmp_workers(argc, argv);
  nanogpt::install_counting_cpu_allocator();  // peak tensor bytes in the training logs
  nanogpt::keep_freed_cpu_memory();
  CLI::App app{"nanogpt: train GPT models from YAML configs and sample from checkpoints (a LibTorch port of nanoGPT)"};
  app.set_version_flag("--version", "nanogpt (" + nanogpt::torch_build_summary() + ")");
  app.require_subcommand(0, 1);
  nanogpt::cli::add_train_command(app);
  nanogpt::cli::add_sample_command(app);
  nanogpt::cli::add_prepare_command(app);
  nanogpt::cli::add_config_command(app);
  nanogpt::cli::add_memory_command(app);
  nanogpt::cli::add_export_command(app);
  nanogpt::cli::add_bench_command(app);
  nanogpt::cli::add_tokenize_command(app);
  nanogpt::cli::add_check_logits_command(app);
  nanogpt::cli::add_check_adamw_command(app);
  const std::string first = argc >= 2 ? argv[1] : "";
  if (!first.empty() && first[0] != '-' &&
      app.get_subcommands([&](const CLI::App* sub) { return sub->check_name(first); }).empty()) {
    std::cerr << "error: unknown subcommand '" << argv[1] << "' (see nanogpt --help)" << std::endl;
    return 2;
  }
  try {
    app.parse(argc, argv);
    if (app.get_subcommands().empty()) {
      std::cerr << "error: a subcommand is required (see nanogpt --help)" << std::endl;
      return 2;
    }
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const nanogpt::ConfigError& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 2;
  } catch (const nanogpt::cli::UsageError& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 2;
  } catch (const std::invalid_argument& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 2;
  } catch (const c10::Error& e) {  // LibTorch's own: its message without the C++ backtrace
    std::cerr << "error: " << e.what_without_backtrace() << std::endl;
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
