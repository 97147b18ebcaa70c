#include "nanogpt/cpu/features.h"

#include <fstream>
#include <sstream>

namespace nanogpt {

bool cpuinfo_has_native_bf16(const std::string& cpuinfo) {
  std::istringstream lines(cpuinfo);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream flags(line.substr(line.find(':') + 1));
    for (std::string flag; flags >> flag;) {
      if (flag == "avx512_bf16" || flag == "amx_bf16") return true;
    }
    return false;
  }
  return false;
}

bool cpu_has_native_bf16() {
  // read once: the model's every linear layer and the planner's every estimate ask
  static const bool native = [] {
    std::ifstream in("/proc/cpuinfo");
    if (!in) return true;
    std::ostringstream text;
    text << in.rdbuf();
    return cpuinfo_has_native_bf16(text.str());
  }();
  return native;
}

}  // namespace nanogpt
