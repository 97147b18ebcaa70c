#include "test_util.h"

#include <torch/torch.h>

#include <cstdlib>

#include "nanogpt/base/fileio.h"
#include "nanogpt/data/prepare.h"

namespace nanogpt::testing {

void make_char_dataset(const std::string& dir, int repeats) {
  std::filesystem::create_directories(dir);
  std::string text;
  for (int i = 0; i < repeats; ++i) text += "to be or not to be, that is the question.\n";
  write_text(dir + "/input.txt", text);
  prepare_char_dataset(dir + "/input.txt", dir);
}

void write_tensor_bytes(const std::string& path, const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  std::ofstream(path, std::ios::binary)
      .write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.nbytes()));
}

at::Tensor read_float_tensor(const std::string& path, at::IntArrayRef shape) {
  const std::string bytes = read_file(path);
  return at::from_blob(const_cast<char*>(bytes.data()), shape, at::kFloat).clone();
}

at::Tensor eval_logits(GPT& model, const at::Tensor& idx) {
  torch::NoGradGuard no_grad;
  model->eval();
  return model->lm_head(model->hidden_states(idx));
}

bool python_imports(const std::string& modules) {
  const std::string command = std::string(NANOGPT_PYTHON) + " -c 'import " + modules + "' > /dev/null 2>&1";
  return std::system(command.c_str()) == 0;
}

int run_python_script(const std::string& script, const std::string& args) {
  const std::string command =
      std::string(NANOGPT_PYTHON) + " " + NANOGPT_SOURCE_DIR + "/tests/python/" + script + " " + args + " 2>&1";
  return std::system(command.c_str());
}

}  // namespace nanogpt::testing
