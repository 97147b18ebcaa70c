#include <gtest/gtest.h>
#include <torch/torch.h>

#include "nanogpt/model/model.h"

// Values recorded from Python nanoGPT (model.py; recorded on torch 1.13.1, the same on the venv's
// torch 2.15.0) with tools/check_init_against_python.py: torch.manual_seed(1337), then
// GPT(GPTConfig(n_layer=4, n_head=4, n_embd=128, block_size=64, vocab_size=65, bias=False)).
// Hex floats, so the comparison is bit for bit.

using namespace nanogpt;

namespace {

struct Entry {
  const char* name;
  int64_t row;
  int64_t first_column;  // negative: counted from the end
  std::vector<float> values;
};

GPT cpu_recipe_model() {
  torch::manual_seed(1337);
  return GPT(GPTConfig{64, 65, 4, 4, 128, 0.0, false});
}

}  // namespace

TEST(InitAgainstPython, EntriesAreBitIdenticalToNanoGPT) {
  GPT model = cpu_recipe_model();
  auto params = model->named_parameters();
  const std::vector<Entry> entries = {
      {"transformer.wte.weight", 0, 0, {0x1.0c479ap-12f, 0x1.6508a8p-7f, -0x1.12157p-5f, 0x1.3d0188p-6f}},
      {"transformer.wte.weight", 64, -4, {0x1.527f5ap-6f, -0x1.2a03c6p-7f, 0x1.65a7p-6f, -0x1.4233dep-6f}},
      {"transformer.wpe.weight", 63, 0, {-0x1.612688p-5f, 0x1.3116e4p-10f, -0x1.bd389cp-7f, -0x1.5151e4p-5f}},
      {"transformer.h.0.attn.c_attn.weight", 0, 0, {0x1.90c6ap-11f, -0x1.dfb57ap-6f, 0x1.0296dap-8f, -0x1.5b8ecap-12f}},
      {"transformer.h.3.mlp.c_proj.weight", 127, -4, {0x1.17db12p-8f, -0x1.d735b2p-8f, -0x1.009042p-10f, 0x1.277f62p-10f}},
      {"transformer.h.3.attn.c_proj.weight", 5, 0, {0x1.202d4p-9f, -0x1.74b0d8p-9f, 0x1.2a1a82p-8f, 0x1.8f9606p-9f}},
      {"transformer.h.0.mlp.c_fc.weight", 511, 0, {-0x1.c4a9d8p-6f, 0x1.3c0acp-6f, 0x1.a8d418p-8f, 0x1.ccc196p-7f}},
  };
  for (const auto& e : entries) {
    const torch::Tensor row = params[e.name][e.row];
    const int64_t start = e.first_column < 0 ? row.size(0) + e.first_column : e.first_column;
    for (size_t i = 0; i < e.values.size(); ++i) {
      EXPECT_EQ(row[start + static_cast<int64_t>(i)].item<float>(), e.values[i]) << e.name << " column " << start + i;
    }
  }
}

TEST(InitAgainstPython, EveryTensorSumIsBitIdenticalToNanoGPT) {
  GPT model = cpu_recipe_model();
  const std::vector<std::pair<std::string, double>> sums = {
      {"transformer.wte.weight", 0x1.4264c4313e8p+1},
      {"transformer.wpe.weight", -0x1.c1d582effep-2},
      {"transformer.h.0.ln_1.weight", 0x1p+7},
      {"transformer.h.0.attn.c_attn.weight", -0x1.f7d03a49afcp-3},
      {"transformer.h.0.attn.c_proj.weight", -0x1.ab8ad2656f62p+0},
      {"transformer.h.0.ln_2.weight", 0x1p+7},
      {"transformer.h.0.mlp.c_fc.weight", 0x1.acb28d2cd3414p+2},
      {"transformer.h.0.mlp.c_proj.weight", 0x1.4750b050b7dccp+0},
      {"transformer.h.1.ln_1.weight", 0x1p+7},
      {"transformer.h.1.attn.c_attn.weight", 0x1.10743ff83dbp+2},
      {"transformer.h.1.attn.c_proj.weight", -0x1.9d3be64eefep-1},
      {"transformer.h.1.ln_2.weight", 0x1p+7},
      {"transformer.h.1.mlp.c_fc.weight", -0x1.a617f6afed434p+1},
      {"transformer.h.1.mlp.c_proj.weight", -0x1.ec0bf065ac87p+0},
      {"transformer.h.2.ln_1.weight", 0x1p+7},
      {"transformer.h.2.attn.c_attn.weight", -0x1.0c149c25d5fap+2},
      {"transformer.h.2.attn.c_proj.weight", 0x1.1d75c42a68p-7},
      {"transformer.h.2.ln_2.weight", 0x1p+7},
      {"transformer.h.2.mlp.c_fc.weight", -0x1.5fb1a333617cp+2},
      {"transformer.h.2.mlp.c_proj.weight", 0x1.069bdb57ec98p+0},
      {"transformer.h.3.ln_1.weight", 0x1p+7},
      {"transformer.h.3.attn.c_attn.weight", 0x1.e84bf8014178p+1},
      {"transformer.h.3.attn.c_proj.weight", -0x1.f4fdb7aa7178p+0},
      {"transformer.h.3.ln_2.weight", 0x1p+7},
      {"transformer.h.3.mlp.c_fc.weight", -0x1.4d11bb7eb22p-1},
      {"transformer.h.3.mlp.c_proj.weight", 0x1.927f1257a6p-7},
      {"transformer.ln_f.weight", 0x1p+7},
  };
  auto params = model->named_parameters();
  ASSERT_EQ(params.size(), sums.size());
  for (size_t i = 0; i < sums.size(); ++i) {
    EXPECT_EQ(params[i].key(), sums[i].first);
    EXPECT_EQ(params[i].value().to(torch::kDouble).sum().item<double>(), sums[i].second) << sums[i].first;
  }
}
