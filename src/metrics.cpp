#include "nanogpt/metrics.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "nanogpt/fileio.h"

namespace nanogpt {

MetricsLog::MetricsLog(const std::string& path, bool append)
    : path_(path), out_(path, append ? std::ios::app : std::ios::trunc) {
  if (!out_) throw IoError(fmt::format("cannot open metrics file '{}' for writing", path));
}

void MetricsLog::write(const nlohmann::json& record) {
  out_ << record.dump() << '\n';
  out_.flush();
  if (!out_) throw IoError(fmt::format("cannot write metrics file '{}' (disk full?)", path_));
}

}  // namespace nanogpt
