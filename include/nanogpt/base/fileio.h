#pragma once
// Files written so that a crash or a full disk never leaves a partial file in place.
#include <functional>
#include <ostream>
#include <stdexcept>
#include <string>

namespace nanogpt {

struct IoError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Writes `path + ".tmp"` through `write`, flushes it to disk, then renames it over `path`.
void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& write);

// fsync a written file and rename it over `path`; removes the temporary file on failure.
void commit_file(const std::string& tmp_path, const std::string& path);

std::string read_file(const std::string& path);

// create_directories, with an IoError naming the folder as `what` ("out_dir") and the reason.
void create_folder(const std::string& path, const std::string& what);

// Downloads `url` to `path` with curl or wget; throws with a clear message when offline.
void download_file(const std::string& url, const std::string& path);

}  // namespace nanogpt
