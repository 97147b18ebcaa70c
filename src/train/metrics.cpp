#include "nanogpt/train/metrics.h"

#include <fmt/format.h>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "nanogpt/base/fileio.h"

namespace nanogpt {

namespace {

// A run killed in the middle of a line leaves it unfinished; appending would glue the next
// record onto it, so the unfinished line goes.
void drop_unfinished_last_line(const std::string& path) {
  std::error_code ec;
  const uintmax_t size = std::filesystem::file_size(path, ec);
  std::ifstream in(path, std::ios::binary);
  if (ec || !in) return;
  uintmax_t keep = size;
  char last = '\n';
  while (keep > 0 && in.seekg(static_cast<std::streamoff>(keep - 1)) && in.get(last) && last != '\n') --keep;
  in.close();
  if (keep < size) std::filesystem::resize_file(path, keep);
}

}  // namespace

MetricsLog::MetricsLog(const std::string& path, bool append) : path_(path) {
  if (append) drop_unfinished_last_line(path);
  out_.open(path, append ? std::ios::app : std::ios::trunc);
  if (!out_) throw IoError(fmt::format("cannot open metrics file '{}' for writing", path));
}

void MetricsLog::write(const nlohmann::json& record) {
  out_ << record.dump() << '\n';
  out_.flush();
  if (!out_) throw IoError(fmt::format("cannot write metrics file '{}' (disk full?)", path_));
}

}  // namespace nanogpt
