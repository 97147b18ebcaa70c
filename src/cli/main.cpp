// nanogpt: a thin command line over the nanogpt_core library.
#include <iostream>

#include "commands.h"
#include "nanogpt/config.h"
#include "nanogpt/memory_stats.h"

int main(int argc, char** argv) {
  nanogpt::install_counting_cpu_allocator();  // peak tensor bytes in the training logs
  nanogpt::keep_freed_cpu_memory();
  CLI::App app{"nanogpt: train GPT models from YAML configs and sample from checkpoints (a LibTorch port of nanoGPT)"};
  app.require_subcommand(1);
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
  try {
    app.parse(argc, argv);
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
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
