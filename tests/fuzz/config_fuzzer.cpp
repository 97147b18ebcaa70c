// libFuzzer target for the YAML config loader: any file either loads and validates or
// raises ConfigError naming the problem; never crash or hang. Run by tools/fuzz_pickle.sh.
#include <unistd.h>

#include <fstream>
#include <string>

#include "nanogpt/base/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/nanogpt-config-fuzz-" + std::to_string(::getpid()) + ".yaml";
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), size);
  try {
    nanogpt::TrainConfig config = nanogpt::default_config();
    nanogpt::apply_yaml_file(config, path);
    nanogpt::validate(config);
    (void)nanogpt::to_yaml(config);
  } catch (const nanogpt::ConfigError&) {
  }
  return 0;
}
