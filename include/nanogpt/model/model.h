#pragma once
// nanoGPT's model.py in LibTorch's module idiom: LayerNorm, CausalSelfAttention, MLP,
// Block, GPT. Parameter names equal nanoGPT's state-dict keys by construction.
#include <torch/nn/module.h>
#include <torch/nn/modules/container/moduledict.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>
#include <torch/optim/adamw.h>

#include <memory>
#include <optional>
#include <tuple>
#include <vector>

#include "nanogpt/model/chunked_loss.h"

namespace nanogpt {


struct GPTConfig {
  int64_t block_size = 1024;
  int64_t vocab_size = 50304;  // GPT-2's 50257 padded up to a multiple of 64
  int64_t n_layer = 12;
  int64_t n_head = 12;
  int64_t n_embd = 768;
  double dropout = 0.0;
  bool bias = true;
};

// Keys and values of every layer for the positions generated so far, so that each new
// token costs one position instead of the whole context.
struct KVCache {
  std::vector<torch::Tensor> keys;    // per layer: (B, nh, T, hs)
  std::vector<torch::Tensor> values;  // per layer: (B, nh, T, hs)
  int64_t length() const { return keys.empty() || !keys[0].defined() ? 0 : keys[0].size(2); }
  void clear() { keys.clear(); values.clear(); }
};

struct LayerNormImpl : torch::nn::Module {
  LayerNormImpl(int64_t ndim, bool bias);
  torch::Tensor forward(const torch::Tensor& input);
  torch::Tensor weight, bias;
};
TORCH_MODULE(LayerNorm);

struct CausalSelfAttentionImpl : torch::nn::Module {
  explicit CausalSelfAttentionImpl(const GPTConfig& config);
  // `layer_cache`: this layer's slot in a KVCache; the new keys and values are appended.
  torch::Tensor forward(const torch::Tensor& x, torch::Tensor* cached_keys = nullptr,
                        torch::Tensor* cached_values = nullptr);
  torch::nn::Linear c_attn{nullptr}, c_proj{nullptr};
  torch::nn::Dropout attn_dropout{nullptr}, resid_dropout{nullptr};
  int64_t n_head, n_embd;
  double dropout;
};
TORCH_MODULE(CausalSelfAttention);

struct MLPImpl : torch::nn::Module {
  explicit MLPImpl(const GPTConfig& config);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear c_fc{nullptr}, c_proj{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(MLP);

struct BlockImpl : torch::nn::Module {
  explicit BlockImpl(const GPTConfig& config);
  torch::Tensor forward(const torch::Tensor& x, torch::Tensor* cached_keys = nullptr,
                        torch::Tensor* cached_values = nullptr);
  LayerNorm ln_1{nullptr}, ln_2{nullptr};
  CausalSelfAttention attn{nullptr};
  MLP mlp{nullptr};
};
TORCH_MODULE(Block);

struct GPTImpl : torch::nn::Module {
  explicit GPTImpl(const GPTConfig& config);

  // Training/eval path: logits for every position and, when targets are given, the mean
  // cross-entropy over targets != -1 (with loss_chunk_size the logits are never whole, and
  // the returned logits are undefined). Without targets, logits of the last position only.
  std::tuple<torch::Tensor, torch::Tensor> forward(const torch::Tensor& idx,
                                                   const torch::Tensor& targets = {});
  // Final hidden states (after ln_f), optionally continuing from and filling `cache`. With
  // `tied`, the token embedding completes the tied weight's gradient there (chunked_loss.h).
  torch::Tensor hidden_states(const torch::Tensor& idx, KVCache* cache = nullptr,
                              const c10::intrusive_ptr<TiedGradient>& tied = {});
  // The LM head, tied to the token embedding.
  torch::Tensor lm_head(const torch::Tensor& hidden);

  // Number of parameters; the non-embedding count subtracts the position embeddings.
  int64_t get_num_params(bool non_embedding = true) const;
  void crop_block_size(int64_t block_size);
  std::unique_ptr<torch::optim::AdamW> configure_optimizers(double weight_decay, double learning_rate,
                                                            std::pair<double, double> betas) const;
  // Model FLOPs utilisation against `peak_flops` (FLOP/s), PaLM's estimate as in nanoGPT.
  double estimate_mfu(int64_t fwdbwd_per_iter, double dt_seconds, double peak_flops) const;

  // Sample `max_new_tokens` tokens after `idx` (B, T). With `use_kv_cache` each step
  // feeds one position; once the context exceeds block_size it is cropped like nanoGPT.
  torch::Tensor generate(torch::Tensor idx, int64_t max_new_tokens, double temperature = 1.0,
                         std::optional<int64_t> top_k = std::nullopt, bool use_kv_cache = true);

  GPTConfig config;
  // Memory savers of the training path (activation_checkpointing.h, chunked_loss.h); 0 turns each off.
  int64_t checkpoint_every = 0;  // recompute every Nth block's activations in backward
  int64_t loss_chunk_size = 0;   // LM head + loss over this many positions at a time

  torch::nn::ModuleDict transformer{nullptr};
  torch::nn::Embedding wte{nullptr}, wpe{nullptr};
  torch::nn::Dropout drop{nullptr};
  torch::nn::ModuleList h{nullptr};
  LayerNorm ln_f{nullptr};
  std::vector<Block> blocks;  // typed view of h

 private:
  void init_weights();
  torch::Tensor next_token_logits(const torch::Tensor& idx_cond, KVCache* cache, bool prefill);
};
TORCH_MODULE(GPT);

}  // namespace nanogpt
