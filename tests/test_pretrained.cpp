// GPT-2 weights in Hugging Face's layout: safetensors, pytorch_model.bin, the Conv1D
// transposes, export and import round trips.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstring>
#include <tuple>

#include <fmt/format.h>

#include "nanogpt/interop/checkpoint.h"
#include "nanogpt/base/fileio.h"
#include "nanogpt/interop/pretrained.h"
#include "nanogpt/formats/safetensors.h"
#include "nanogpt/formats/torch_file.h"
#include "test_util.h"

using namespace nanogpt;
using nanogpt::testing::TempDir;
using nanogpt::testing::error_of;
using nanogpt::testing::eval_logits;

namespace {

const GPTConfig kShape{16, 50, 2, 2, 16, 0.0, true};  // block, vocab, layers, heads, width

bool conv1d(const std::string& name) {
  for (const char* tail : {"c_attn.weight", "c_proj.weight", "c_fc.weight"}) {
    if (name.size() > std::strlen(tail) && name.compare(name.size() - std::strlen(tail), std::strlen(tail), tail) == 0) return true;
  }
  return false;
}

// The files as the Hugging Face hub has them for gpt2: no "transformer." prefix, Conv1D
// weights stored (in, out), the attention mask buffers saved too.
std::vector<std::pair<std::string, at::Tensor>> hub_tensors(GPT& model) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& item : model->named_parameters()) {
    const std::string name = item.key().substr(std::strlen("transformer."));
    out.emplace_back(name, conv1d(name) ? item.value().detach().t().contiguous() : item.value().detach());
  }
  for (int64_t layer = 0; layer < kShape.n_layer; ++layer) {
    out.emplace_back(fmt::format("h.{}.attn.bias", layer), at::ones({16, 16}).tril().view({1, 1, 16, 16}));
    out.emplace_back(fmt::format("h.{}.attn.masked_bias", layer), at::scalar_tensor(-1e4));
  }
  return out;
}


}  // namespace

TEST(Pretrained, SafetensorsRoundTripAndBadFiles) {
  TempDir dir;
  const at::Tensor a = at::randn({3, 5}), b = at::arange(7, at::kLong), c = at::randn({2}).to(at::kBFloat16);
  write_safetensors(dir / "x.safetensors", {{"a", a}, {"b", b}, {"c", c}});
  const std::string bytes = read_file(dir / "x.safetensors");
  uint64_t header = 0;
  for (int k = 0; k < 8; ++k) header |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[k])) << (8 * k);
  EXPECT_EQ((8 + header) % 8, 0u);
  EXPECT_NE(bytes.find(R"("__metadata__":{"format":"pt"})"), std::string::npos);
  auto tensors = read_safetensors(dir / "x.safetensors");
  EXPECT_TRUE(at::equal(tensors.at("a"), a));
  EXPECT_TRUE(at::equal(tensors.at("b"), b));
  EXPECT_TRUE(at::equal(tensors.at("c"), c));
  nanogpt::testing::write_text(dir / "cut.safetensors", bytes.substr(0, bytes.size() - 4));
  EXPECT_NE(error_of([&] { read_safetensors(dir / "cut.safetensors"); }).find("tensor 'c': data_offsets do not match"),
            std::string::npos);
  nanogpt::testing::write_text(dir / "short.safetensors", bytes.substr(0, 20));
  EXPECT_NE(error_of([&] { read_safetensors(dir / "short.safetensors"); }).find("does not fit in the file (truncated?)"),
            std::string::npos);
}

TEST(Pretrained, HubFilesLoadWithNanoGPTsConversion) {
  for (const std::string format : {"safetensors", "bin"}) {
    TempDir dir;
    torch::manual_seed(11);
    GPT source(kShape);
    if (format == "safetensors") {
      write_safetensors(dir / "model.safetensors", hub_tensors(source));
    } else {  // torch.save of a state_dict, as transformers' pytorch_model.bin
      TorchFileWriter writer;
      std::vector<std::pair<PickleRef, PickleRef>> entries;
      for (const auto& [name, tensor] : hub_tensors(source)) entries.emplace_back(pickle_string(name), writer.tensor(tensor));
      writer.save(dir / "pytorch_model.bin", *pickle_ordered_dict(std::move(entries)));
    }
    nanogpt::testing::write_text(dir / "config.json",
                                 R"({"n_layer": 2, "n_head": 2, "n_embd": 16, "vocab_size": 50, "n_positions": 16})");
    std::string note;
    const GPTConfig args = read_pretrained_config(dir.path().string(), "gpt2", 0.1, &note);
    EXPECT_EQ(args.n_layer, 2);
    EXPECT_EQ(args.vocab_size, 50);
    EXPECT_EQ(args.block_size, 16);
    EXPECT_TRUE(args.bias);
    EXPECT_EQ(args.dropout, 0.1);
    EXPECT_NE(note.find("not gpt2's standard shape"), std::string::npos);
    GPT loaded(args);
    load_pretrained_weights(dir.path().string(), loaded);
    const at::Tensor idx = torch::randint(50, {2, 16}, torch::kLong);
    EXPECT_TRUE(at::equal(eval_logits(loaded, idx), eval_logits(source, idx))) << format;
  }
}

TEST(Pretrained, ConfigJsonSizesMustBeIntegersInRange) {
  TempDir dir;
  const std::string path = dir / "config.json";
  // a float past int64 was converted with undefined behaviour; 0 heads divided by zero
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {R"({"n_layer": 1e30, "n_head": 2, "n_embd": 16, "vocab_size": 50, "n_positions": 16})", "n_layer", "1e+30"},
      {R"({"n_layer": 2, "n_head": 0, "n_embd": 16, "vocab_size": 50, "n_positions": 16})", "n_head", "0"},
      {R"({"n_layer": 2, "n_head": 2, "n_embd": 16.0, "vocab_size": 50, "n_positions": 16})", "n_embd", "16.0"},
      {R"({"n_layer": 2, "n_head": 2, "n_embd": 16, "vocab_size": 18446744073709551615, "n_positions": 16})",
       "vocab_size", "18446744073709551615"},
      {R"({"n_layer": 2, "n_head": 2, "n_embd": 16, "vocab_size": 50, "n_positions": -1})", "n_positions", "-1"},
      {R"({"n_layer": 2, "n_head": 2, "n_embd": 16, "vocab_size": 50, "n_ctx": 2147483648})", "n_ctx", "2147483648"}};
  for (const auto& [json, key, value] : cases) {
    nanogpt::testing::write_text(path, json);
    EXPECT_EQ(error_of([&] { read_pretrained_config(dir.path().string(), "gpt2", 0.0); }),
              "'" + path + "': " + key + " must be an integer in 1..2147483647, got " + value);
  }
}

TEST(Pretrained, ExportedFolderLoadsBackWithTheCheckpointsLogits) {
  TempDir dir;
  torch::manual_seed(12);
  GPT model(kShape);
  save_checkpoint(dir / "ckpt.pt", model, nullptr, CheckpointInfo{kShape, 0, 1e9, nlohmann::json::object(), {}});
  export_huggingface(model, dir / "hf");
  const auto tensors = read_safetensors(dir / "hf/model.safetensors");
  EXPECT_EQ(tensors.at("transformer.h.0.attn.c_attn.weight").sizes(), (std::vector<int64_t>{16, 48}));  // Conv1D
  EXPECT_EQ(tensors.count("lm_head.weight"), 0u);  // tied, as save_pretrained leaves it
  const auto config = nlohmann::json::parse(read_file(dir / "hf/config.json"));
  EXPECT_EQ(config["architectures"][0], "GPT2LMHeadModel");
  EXPECT_EQ(config["n_positions"], 16);
  EXPECT_EQ(config["activation_function"], "gelu");

  GPT from_checkpoint = load_model(dir / "ckpt.pt");
  GPT from_hf(read_pretrained_config(dir / "hf", "gpt2", 0.0));
  load_pretrained_weights(dir / "hf", from_hf);
  const at::Tensor idx = torch::randint(50, {3, 16}, torch::kLong);
  EXPECT_TRUE(at::equal(eval_logits(from_hf, idx), eval_logits(from_checkpoint, idx)));

  GPT no_bias(GPTConfig{16, 50, 1, 2, 16, 0.0, false});
  EXPECT_NE(error_of([&] { export_huggingface(no_bias, dir / "nb"); }).find("bias: false"), std::string::npos);
}

TEST(Pretrained, MissingWeightsNameWhereTheyWereLookedFor) {
  TempDir dir;
  const std::string error = error_of([&] { find_pretrained_dir("gpt2-medium", dir / "nothing"); });
  EXPECT_NE(error.find("no gpt2-medium weights found"), std::string::npos) << error;
  EXPECT_NE(error.find(dir / "nothing"), std::string::npos) << error;
  EXPECT_NE(error.find("huggingface-cli download gpt2-medium"), std::string::npos) << error;
  EXPECT_NE(error_of([&] { find_pretrained_dir("gpt3", ""); }).find("'gpt3' is not one of gpt2"), std::string::npos);
}
