#include "nanogpt/base/fileio.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
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
    const std::string reason = ec.message();  // before remove() reuses ec
    std::filesystem::remove(tmp_path, ec);
    throw IoError(fmt::format("cannot move '{}' into place: {}", path, reason));
  }
  // the rename itself survives a power loss only once the folder is synced too
  const std::filesystem::path folder = std::filesystem::path(path).parent_path();
  const int folder_fd = ::open(folder.empty() ? "." : folder.c_str(), O_RDONLY | O_DIRECTORY);
  if (folder_fd >= 0) {
    ::fsync(folder_fd);
    ::close(folder_fd);
  }
}

void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& write) {
  const std::string tmp_path = path + ".tmp";
  {
    std::ofstream out(tmp_path, std::ios::binary | std::ios::trunc);
    if (!out) throw IoError(fmt::format("cannot create '{}': {}", tmp_path, std::strerror(errno)));
    auto remove_tmp = [&] {
      out.close();
      std::error_code ec;
      std::filesystem::remove(tmp_path, ec);
    };
    errno = 0;
    try {
      write(out);
      out.flush();
    } catch (...) {
      remove_tmp();
      throw;
    }
    if (!out) {
      const int write_errno = errno;  // a failed stream makes no further calls, so this is the failed write's
      remove_tmp();
      throw IoError(fmt::format("cannot write '{}': {}", path,
                                write_errno != 0 ? std::strerror(write_errno) : "the write failed (disk full?)"));
    }
  }
  commit_file(tmp_path, path);
}

void create_folder(const std::string& path, const std::string& what) {
  std::error_code error;
  std::filesystem::create_directories(path, error);
  if (error) throw IoError(fmt::format("cannot create {} '{}': {}", what, path, error.message()));
}

std::string read_file(const std::string& path) {
  if (std::filesystem::is_directory(path)) throw IoError(fmt::format("cannot read '{}': it is a folder", path));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(fmt::format("cannot read '{}': {}", path, std::strerror(errno)));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void download_file(const std::string& url, const std::string& path) {
  const std::string tmp = path + ".download";
  std::string command;
  if (std::system("command -v curl >/dev/null 2>&1") == 0) {
    command = fmt::format("curl -fsSL --max-time 60 -o '{}' '{}'", tmp, url);
  } else if (std::system("command -v wget >/dev/null 2>&1") == 0) {
    command = fmt::format("wget -q -T 60 -O '{}' '{}'", tmp, url);
  } else {
    throw IoError(fmt::format("cannot download {}: neither curl nor wget is installed", url));
  }
  if (std::system(command.c_str()) != 0) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw IoError(fmt::format("cannot download {} (offline?)", url));
  }
  commit_file(tmp, path);
}

}  // namespace nanogpt
