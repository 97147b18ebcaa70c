#pragma once
// out_dir/metrics.jsonl: one JSON object per log or eval line.
#include <fstream>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace nanogpt {

class MetricsLog {
 public:
  // `append`: keep earlier lines (resume); otherwise start the file anew.
  MetricsLog(const std::string& path, bool append);
  void write(const nlohmann::json& record);

 private:
  std::string path_;
  std::ofstream out_;
};

}  // namespace nanogpt
