// One rank of the Distributed tests, started by them (directly or through torchrun) with
// torchrun's variables set: trains the config in argv[1] (JSON, as to_json writes it) and
// writes this rank's final parameters to <out_dir>/params_rank<RANK>.pt, which rank 0 alone
// would not otherwise do. NANOGPT_TEST_EVAL_SLEEP_S=N makes each evaluation N s longer.
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <thread>

#include <nlohmann/json.hpp>

#include "nanogpt/interop/checkpoint.h"
#include "nanogpt/base/config.h"
#include "nanogpt/train/train.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: nanogpt_dist_worker CONFIG.json" << std::endl;
    return 2;
  }
  try {
    std::ifstream in(argv[1]);
    const nanogpt::TrainConfig config = nanogpt::config_from_json(nlohmann::json::parse(in), argv[1]);
    const char* rank = std::getenv("RANK");
    const std::string params_path = config.out_dir + "/params_rank" + (rank != nullptr ? rank : "0") + ".pt";
    const char* eval_sleep = std::getenv("NANOGPT_TEST_EVAL_SLEEP_S");
    nanogpt::TrainHooks hooks;
    hooks.print = [&](const std::string& line) {
      std::cout << line << std::endl;
      if (eval_sleep != nullptr && line.rfind("step ", 0) == 0) {  // rank 0's evaluation line
        std::this_thread::sleep_for(std::chrono::duration<double>(std::stod(eval_sleep)));
      }
    };
    hooks.on_finish = [&](nanogpt::GPT& model) {
      nanogpt::save_checkpoint(params_path, model, nullptr,
                               nanogpt::CheckpointInfo{model->config, 0, 0.0, nlohmann::json::object(), {}});
    };
    nanogpt::train(config, hooks);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
