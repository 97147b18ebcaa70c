#include "nanogpt/fileio.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace nanogpt {

void commit_file(const std::string& tmp_path, const std::string& path) {
  const int fd = ::open(tmp_path.c_str(), O_RDONLY);
  const bool synced = fd >= 0 && ::fsync(fd) == 0;
  const int sync_errno = errno;
  if (fd >= 0) ::close(fd);
  std::error_code ec;
  if (!synced) {
    std::filesystem::remove(tmp_path, ec);
    throw IoError(fmt::format("cannot write '{}': {}", path, std::strerror(sync_errno)));
  }
  std::filesystem::rename(tmp_path, path, ec);
  if (ec) {
    std::filesystem::remove(tmp_path, ec);
    throw IoError(fmt::format("cannot move '{}' into place: {}", path, ec.message()));
  }
}

void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& write) {
  const std::string tmp_path = path + ".tmp";
  {
    std::ofstream out(tmp_path, std::ios::binary | std::ios::trunc);
    if (!out) throw IoError(fmt::format("cannot create '{}': {}", tmp_path, std::strerror(errno)));
    write(out);
    out.flush();
    if (!out) {
      out.close();
      std::error_code ec;
      std::filesystem::remove(tmp_path, ec);
      throw IoError(fmt::format("cannot write '{}' (disk full?)", path));
    }
  }
  commit_file(tmp_path, path);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(fmt::format("cannot read '{}': {}", path, std::strerror(errno)));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace nanogpt
