#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "nanogpt/cpu/ops.h"
#include "nanogpt/model/model.h"

using namespace nanogpt;

namespace {

GPTConfig small_config(double dropout = 0.0, bool bias = false) {
  GPTConfig c;
  c.n_layer = 2;
  c.n_head = 4;
  c.n_embd = 32;
  c.block_size = 24;
  c.vocab_size = 50;
  c.dropout = dropout;
  c.bias = bias;
  return c;
}

// nanoGPT's attention before flash attention: explicit mask and softmax.
torch::Tensor manual_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  const int64_t T = q.size(-2);
  auto att = torch::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(static_cast<double>(k.size(-1))));
  auto mask = torch::ones({T, T}, torch::kBool).tril();
  att = att.masked_fill(mask.logical_not(), -std::numeric_limits<float>::infinity());
  return torch::matmul(torch::softmax(att, -1), v);
}

}  // namespace

TEST(Model, Gpt2ShapesAndParameterCountsEqualNanoGPT) {
  torch::manual_seed(0);
  GPTConfig c;  // n_layer 12, n_head 12, n_embd 768
  c.vocab_size = 50257;
  c.block_size = 1024;
  c.bias = true;
  GPT model(c);
  // From Python nanoGPT: sum(p.numel()) = 124439808, get_num_params() = 123653376, 148 tensors.
  EXPECT_EQ(model->get_num_params(false), 124439808);
  EXPECT_EQ(model->get_num_params(), 123653376);
  EXPECT_EQ(model->parameters().size(), 148u);
  auto params = model->named_parameters();
  EXPECT_EQ(params["transformer.wte.weight"].sizes(), torch::IntArrayRef({50257, 768}));
  EXPECT_EQ(params["transformer.wpe.weight"].sizes(), torch::IntArrayRef({1024, 768}));
  EXPECT_EQ(params["transformer.h.11.attn.c_attn.weight"].sizes(), torch::IntArrayRef({2304, 768}));
  EXPECT_EQ(params["transformer.h.0.mlp.c_fc.bias"].sizes(), torch::IntArrayRef({3072}));
  EXPECT_EQ(params["transformer.ln_f.bias"].sizes(), torch::IntArrayRef({768}));
}

TEST(Model, ShakespeareCharParameterCountsEqualNanoGPT) {
  GPTConfig c{256, 65, 6, 6, 384, 0.2, false};
  GPT model(c);
  EXPECT_EQ(model->get_num_params(false), 10745088);
  EXPECT_EQ(model->get_num_params(), 10646784);
  EXPECT_EQ(model->parameters().size(), 39u);
  EXPECT_EQ(model->named_parameters().find("transformer.ln_f.bias"), nullptr);
}

TEST(Model, ParameterNamesAreNanoGPTStateDictKeys) {
  GPT model(small_config(0.0, true));
  std::vector<std::string> names;
  for (const auto& item : model->named_parameters()) names.push_back(item.key());
  const std::vector<std::string> expected_prefix = {
      "transformer.wte.weight",          "transformer.wpe.weight",          "transformer.h.0.ln_1.weight",
      "transformer.h.0.ln_1.bias",       "transformer.h.0.attn.c_attn.weight", "transformer.h.0.attn.c_attn.bias",
      "transformer.h.0.attn.c_proj.weight", "transformer.h.0.attn.c_proj.bias", "transformer.h.0.ln_2.weight",
      "transformer.h.0.ln_2.bias",       "transformer.h.0.mlp.c_fc.weight", "transformer.h.0.mlp.c_fc.bias",
      "transformer.h.0.mlp.c_proj.weight", "transformer.h.0.mlp.c_proj.bias"};
  ASSERT_GE(names.size(), expected_prefix.size());
  for (size_t i = 0; i < expected_prefix.size(); ++i) EXPECT_EQ(names[i], expected_prefix[i]);
  EXPECT_EQ(names.back(), "transformer.ln_f.bias");
}

TEST(Model, LmHeadIsTiedToTokenEmbedding) {
  GPT model(small_config());
  auto idx = torch::randint(50, {2, 8}, torch::kLong);
  auto [logits, loss] = model->forward(idx, idx);
  loss.backward();
  // The head's gradient lands in wte: one tensor, counted once.
  int64_t wte_like = 0;
  for (const auto& p : model->parameters()) wte_like += p.sizes() == torch::IntArrayRef({50, 32});
  EXPECT_EQ(wte_like, 1);
  auto hidden = model->hidden_states(idx);
  EXPECT_TRUE(torch::equal(model->lm_head(hidden), torch::matmul(hidden, model->wte->weight.t())));
  EXPECT_TRUE(model->wte->weight.grad().defined());
}

TEST(Model, InitialisationFollowsNanoGPT) {
  torch::manual_seed(1337);
  GPTConfig c = small_config(0.0, true);
  c.n_layer = 8;
  c.n_embd = 256;
  c.vocab_size = 512;
  GPT model(c);
  auto p = model->named_parameters();
  EXPECT_NEAR(p["transformer.wte.weight"].std().item<double>(), 0.02, 0.001);
  EXPECT_NEAR(p["transformer.h.0.attn.c_attn.weight"].std().item<double>(), 0.02, 0.001);
  EXPECT_NEAR(p["transformer.h.0.attn.c_proj.weight"].std().item<double>(), 0.02 / std::sqrt(16.0), 0.0005);
  EXPECT_NEAR(p["transformer.h.7.mlp.c_proj.weight"].std().item<double>(), 0.02 / std::sqrt(16.0), 0.0005);
  EXPECT_TRUE(torch::equal(p["transformer.h.0.attn.c_attn.bias"], torch::zeros({768})));
  EXPECT_TRUE(torch::equal(p["transformer.h.0.ln_1.weight"], torch::ones({256})));
}

TEST(Model, LossAtInitIsCloseToLogVocab) {
  torch::manual_seed(1337);
  GPTConfig c = small_config();
  c.vocab_size = 65;
  GPT model(c);
  auto idx = torch::randint(65, {8, 24}, torch::kLong);
  auto targets = torch::randint(65, {8, 24}, torch::kLong);
  auto [logits, loss] = model->forward(idx, targets);
  EXPECT_EQ(logits.sizes(), torch::IntArrayRef({8, 24, 65}));
  EXPECT_NEAR(loss.item<double>(), std::log(65.0), 0.05);
}

TEST(Model, IgnoreIndexMinusOneIsSkipped) {
  GPT model(small_config());
  model->eval();
  auto idx = torch::randint(50, {1, 6}, torch::kLong);
  auto targets = torch::randint(50, {1, 6}, torch::kLong);
  auto masked = targets.clone();
  masked.slice(1, 3).fill_(-1);
  auto [logits, loss] = model->forward(idx, masked);
  auto expected = torch::nn::functional::cross_entropy(logits.slice(1, 0, 3).reshape({3, 50}), targets.slice(1, 0, 3).reshape(-1));
  EXPECT_NEAR(loss.item<double>(), expected.item<double>(), 1e-6);
}

TEST(Model, InferencePathReturnsLastPositionOnly) {
  GPT model(small_config());
  model->eval();
  auto idx = torch::randint(50, {3, 10}, torch::kLong);
  auto [last, no_loss] = model->forward(idx);
  EXPECT_FALSE(no_loss.defined());
  EXPECT_EQ(last.sizes(), torch::IntArrayRef({3, 1, 50}));
  auto [all, loss] = model->forward(idx, idx);
  EXPECT_TRUE(torch::allclose(last.squeeze(1), all.select(1, 9), 1e-5, 1e-6));
}

TEST(Model, AttentionEqualsNanoGPTManualAttention) {
  torch::manual_seed(3);
  auto q = torch::randn({2, 4, 12, 8}), k = torch::randn({2, 4, 12, 8}), v = torch::randn({2, 4, 12, 8});
  auto fast = nanogpt::ops::causal_attention(q, k, v, 0.0, 0);
  EXPECT_LT((fast - manual_attention(q, k, v)).abs().max().item<double>(), 1e-6);
}

TEST(Model, ForwardRejectsSequencesLongerThanBlockSize) {
  GPT model(small_config());
  EXPECT_THROW(model->forward(torch::zeros({1, 25}, torch::kLong)), std::invalid_argument);
}

TEST(Model, CropBlockSizeShrinksPositionEmbedding) {
  GPT model(small_config());
  auto before = model->wpe->weight.slice(0, 0, 10).clone();
  model->crop_block_size(10);
  EXPECT_EQ(model->config.block_size, 10);
  EXPECT_EQ(model->wpe->weight.sizes(), torch::IntArrayRef({10, 32}));
  EXPECT_TRUE(torch::equal(model->wpe->weight, before));
  EXPECT_EQ(model->named_parameters()["transformer.wpe.weight"].size(0), 10);
  EXPECT_THROW(model->crop_block_size(11), std::invalid_argument);
}

TEST(Model, OptimizerGroupsDecayOnlyMatrices) {
  GPT model(small_config(0.0, true));
  auto optimizer = model->configure_optimizers(0.1, 1e-3, {0.9, 0.95});
  auto& groups = optimizer->param_groups();
  ASSERT_EQ(groups.size(), 2u);
  for (const auto& p : groups[0].params()) EXPECT_GE(p.dim(), 2);
  for (const auto& p : groups[1].params()) EXPECT_LT(p.dim(), 2);
  EXPECT_EQ(groups[0].params().size() + groups[1].params().size(), model->parameters().size());
  EXPECT_DOUBLE_EQ(static_cast<torch::optim::AdamWOptions&>(groups[0].options()).weight_decay(), 0.1);
  EXPECT_DOUBLE_EQ(static_cast<torch::optim::AdamWOptions&>(groups[1].options()).weight_decay(), 0.0);
  EXPECT_EQ(std::get<1>(static_cast<torch::optim::AdamWOptions&>(groups[0].options()).betas()), 0.95);
}

TEST(Model, EstimateMfuUsesPaLMFlopsAndGivenPeak) {
  GPT model(small_config());
  const double N = static_cast<double>(model->get_num_params());
  const double flops_per_iter = (6 * N + 12 * 2 * 4 * 8 * 24) * 24 * 10;
  EXPECT_NEAR(model->estimate_mfu(10, 0.5, 1e12), flops_per_iter / 0.5 / 1e12, 1e-15);
  EXPECT_NEAR(model->estimate_mfu(10, 0.5, 2e12), flops_per_iter / 0.5 / 2e12, 1e-15);
}

TEST(Model, KvCacheLogitsEqualFullRecompute) {
  torch::manual_seed(11);
  GPT model(small_config(0.0, true));
  model->eval();
  torch::NoGradGuard no_grad;
  auto idx = torch::randint(50, {2, 20}, torch::kLong);
  KVCache cache;
  auto prefix = model->lm_head(model->hidden_states(idx.slice(1, 0, 5), &cache));
  EXPECT_EQ(cache.length(), 5);
  for (int64_t t = 5; t < 20; ++t) {
    auto cached = model->lm_head(model->hidden_states(idx.slice(1, t, t + 1), &cache)).select(1, 0);
    auto full = std::get<0>(model->forward(idx.slice(1, 0, t + 1))).select(1, 0);
    EXPECT_LT((cached - full).abs().max().item<double>(), 1e-5) << "position " << t;
  }
  EXPECT_EQ(cache.length(), 20);
}

TEST(Model, GreedyGenerationIsIdenticalWithAndWithoutCache) {
  torch::manual_seed(5);
  GPT model(small_config(0.0, true));
  model->eval();
  auto idx = torch::randint(50, {1, 3}, torch::kLong);
  // 40 new tokens run past block_size 24, so the cropped-window path is covered too.
  torch::manual_seed(9);
  auto cached = model->generate(idx, 40, 1.0, 1, true);
  torch::manual_seed(9);
  auto uncached = model->generate(idx, 40, 1.0, 1, false);
  EXPECT_EQ(cached.size(1), 43);
  EXPECT_TRUE(torch::equal(cached, uncached));
}

TEST(Model, SampledGenerationWithSameSeedIsIdenticalWithAndWithoutCache) {
  torch::manual_seed(5);
  GPT model(small_config(0.0, true));
  model->eval();
  auto idx = torch::randint(50, {1, 3}, torch::kLong);
  torch::manual_seed(21);
  auto cached = model->generate(idx, 15, 0.8, 10, true);
  torch::manual_seed(21);
  auto uncached = model->generate(idx, 15, 0.8, 10, false);
  EXPECT_TRUE(torch::equal(cached, uncached));
}
