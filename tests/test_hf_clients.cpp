// Hugging Face folders both ways, checked by clients that no one on this project wrote:
// transformers and safetensors from PyPI (tests/python/hf_clients.py, the venv's Python).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "nanogpt/interop/checkpoint.h"
#include "nanogpt/interop/pretrained.h"
#include "nanogpt/train/train.h"
#include "test_util.h"

using namespace nanogpt;
using nanogpt::testing::TempDir;
using nanogpt::testing::eval_logits;

namespace {

bool python_has_transformers() { return nanogpt::testing::python_imports("transformers, safetensors"); }

int run_clients(const std::string& command, const std::filesystem::path& dir) {
  return nanogpt::testing::run_python_script("hf_clients.py", command + " " + dir.string());
}

// Raw bytes in DIR/NAME.bin, the shape in DIR/NAME.json: what hf_clients.py reads.
void write_array(const std::filesystem::path& dir, const std::string& name, const at::Tensor& t) {
  nanogpt::testing::write_tensor_bytes(dir / (name + ".bin"), t);
  nanogpt::testing::write_text(dir / (name + ".json"), nlohmann::json{{"shape", t.sizes().vec()}}.dump());
}

}  // namespace

TEST(HfClients, TransformersAndSafetensorsReadTheExportOfACheckpointTrainedHere) {
  if (!python_has_transformers()) GTEST_SKIP() << NANOGPT_PYTHON " has no transformers: run tools/setup.sh --tests";
  TempDir dir;
  nanogpt::testing::make_char_dataset(dir / "data");
  TrainConfig config = nanogpt::testing::tiny_config(dir / "data", dir.path().string());
  config.bias = true;
  TrainHooks quiet;
  quiet.print = [](const std::string&) {};
  train(config, quiet);
  GPT model = load_model(dir / "ckpt.pt");
  export_huggingface(model, dir / "hf");

  torch::manual_seed(3);
  const at::Tensor tokens = torch::randint(model->config.vocab_size, {2, model->config.block_size}, torch::kLong);
  write_array(dir.path(), "tokens", tokens);
  write_array(dir.path(), "port_logits", eval_logits(model, tokens));
  const at::Tensor prompt = tokens.slice(0, 0, 1).slice(1, 0, 4);
  torch::NoGradGuard no_grad;
  // greedy: top_k 1, within block_size so that transformers' positions reach
  const at::Tensor greedy = model->generate(prompt, model->config.block_size - 4, 1.0, 1);
  write_array(dir.path(), "prompt", prompt);
  write_array(dir.path(), "port_greedy", greedy);
  EXPECT_EQ(run_clients("check-export", dir.path()), 0);
}

TEST(HfClients, AGpt2SavedByTransformersLoadsAsInitFromGpt2WithItsLogits) {
  if (!python_has_transformers()) GTEST_SKIP() << NANOGPT_PYTHON " has no transformers: run tools/setup.sh --tests";
  TempDir dir;
  torch::manual_seed(4);
  const at::Tensor tokens = torch::randint(50, {2, 16}, torch::kLong);
  write_array(dir.path(), "tokens", tokens);
  ASSERT_EQ(run_clients("write-hf", dir.path()), 0);
  // what `init_from: gpt2` with `pretrained_dir` does (setup.cpp)
  const std::string folder = dir / "hf_saved";
  GPT model(read_pretrained_config(folder, "gpt2", 0.0));
  load_pretrained_weights(folder, model);
  EXPECT_EQ(model->config.vocab_size, 50);
  EXPECT_EQ(model->config.block_size, 16);
  EXPECT_EQ(model->config.n_embd, 32);
  const at::Tensor expected = nanogpt::testing::read_float_tensor(dir / "hf_logits.bin", {2, 16, 50});
  const at::Tensor logits = eval_logits(model, tokens);
  const double relative = ((logits - expected).abs().max() / expected.abs().max()).item<double>();
  EXPECT_LE(relative, 1e-5) << "the port's logits against transformers'";
}
