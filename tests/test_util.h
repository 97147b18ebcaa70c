#pragma once
// Shared helpers of the test suite: temporary folders, the shared data folder, tiny datasets.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "nanogpt/base/config.h"
#include "nanogpt/data/data.h"
#include "nanogpt/model/model.h"

namespace nanogpt::testing {

// A fresh folder under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "nanogpt-test-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// ../shared/data, from NANOGPT_SHARED_DATA; empty when it is not available.
inline std::string shared_data_dir() {
  const char* dir = std::getenv("NANOGPT_SHARED_DATA");
  if (dir == nullptr || !std::filesystem::is_directory(dir)) return {};
  return dir;
}

// Sets an environment variable for its lifetime, then restores the previous value.
class ScopedEnv {
 public:
  ScopedEnv(std::string name, const std::string& value) : name_(std::move(name)) {
    if (const char* old = std::getenv(name_.c_str())) old_ = old;
    ::setenv(name_.c_str(), value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) ::setenv(name_.c_str(), old_->c_str(), 1);
    else ::unsetenv(name_.c_str());
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

// $NANOGPT_SHARED_DATA/gpt2, where GPT-2's encoder.json and vocab.bpe are; empty when absent.
inline std::string gpt2_vocab_dir() {
  const std::string shared = shared_data_dir();
  if (shared.empty() || !std::filesystem::exists(shared + "/gpt2/encoder.json")) return {};
  return shared + "/gpt2";
}

// The message of the exception `f` throws; "no error" when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "no error";
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// A small config on `data_dir` that trains in well under a second per iteration.
inline TrainConfig tiny_config(const std::string& data_dir, const std::string& out_dir) {
  TrainConfig c = default_config();
  c.device = "cpu";
  c.data_dir = data_dir;
  c.out_dir = out_dir;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 32;
  c.block_size = 16;
  c.batch_size = 4;
  c.gradient_accumulation_steps = 2;
  c.dropout = 0.0;
  c.learning_rate = 1e-2;
  c.max_iters = 20;
  c.lr_decay_iters = 20;
  c.warmup_iters = 2;
  c.min_lr = 1e-3;
  c.eval_interval = 10;
  c.eval_iters = 2;
  c.log_interval = 1;
  c.num_threads = 1;
  return c;
}

// A repetitive character corpus, prepared like `nanogpt prepare char`.
void make_char_dataset(const std::string& dir, int repeats = 200);

// A tensor's raw bytes (made contiguous), as the Python interop scripts read them; and float32
// bytes read back in `shape`.
void write_tensor_bytes(const std::string& path, const at::Tensor& t);
at::Tensor read_float_tensor(const std::string& path, at::IntArrayRef shape);

// The logits at every position of `idx`, in eval mode, without autograd.
at::Tensor eval_logits(GPT& model, const at::Tensor& idx);

// Whether the tests' Python (NANOGPT_PYTHON, the venv's) can import `modules` ("torch", "a, b").
bool python_imports(const std::string& modules);
// Runs tests/python/`script` with `args` under that Python; its exit status.
int run_python_script(const std::string& script, const std::string& args);

}  // namespace nanogpt::testing
