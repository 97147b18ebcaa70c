// Maps onto nanoGPT's model.py, module by module.
#include "nanogpt/model/model.h"

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>

#include "nanogpt/cpu/ops.h"
#include "nanogpt/model/fused_adamw.h"
#include "nanogpt/model/activation_checkpointing.h"
#include "nanogpt/model/chunked_loss.h"

namespace nanogpt {

namespace F = torch::nn::functional;

LayerNormImpl::LayerNormImpl(int64_t ndim, bool with_bias) {
  weight = register_parameter("weight", torch::ones({ndim}));
  if (with_bias) bias = register_parameter("bias", torch::zeros({ndim}));
}

torch::Tensor LayerNormImpl::forward(const torch::Tensor& input) {
  return torch::layer_norm(input, {weight.size(0)}, weight, bias, 1e-5);
}

namespace {

// self.c_attn(x) and its kind, through the door to the CPU kernels (cpu/ops.h)
torch::Tensor linear(torch::nn::Linear& layer, const torch::Tensor& x) {
  return ops::linear(x, layer->weight, layer->bias);
}

}  // namespace

CausalSelfAttentionImpl::CausalSelfAttentionImpl(const GPTConfig& config)
    : n_head(config.n_head), n_embd(config.n_embd), dropout(config.dropout) {
  if (config.n_embd % config.n_head != 0) {
    throw std::invalid_argument("n_embd must be divisible by n_head");
  }
  c_attn = register_module(
      "c_attn", torch::nn::Linear(torch::nn::LinearOptions(n_embd, 3 * n_embd).bias(config.bias)));
  c_proj = register_module(
      "c_proj", torch::nn::Linear(torch::nn::LinearOptions(n_embd, n_embd).bias(config.bias)));
  attn_dropout = register_module("attn_dropout", torch::nn::Dropout(config.dropout));
  resid_dropout = register_module("resid_dropout", torch::nn::Dropout(config.dropout));
}

torch::Tensor CausalSelfAttentionImpl::forward(const torch::Tensor& x, torch::Tensor* cached_keys,
                                               torch::Tensor* cached_values) {
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2);
  auto qkv = linear(c_attn, x).split(n_embd, /*dim=*/2);
  auto heads = [&](const torch::Tensor& t) { return t.view({B, T, n_head, C / n_head}).transpose(1, 2); };
  torch::Tensor q = heads(qkv[0]), k = heads(qkv[1]), v = heads(qkv[2]);  // (B, nh, T, hs)
  int64_t past_length = 0;
  if (cached_keys != nullptr) {
    if (cached_keys->defined()) {
      past_length = cached_keys->size(2);
      k = torch::cat({*cached_keys, k}, 2);
      v = torch::cat({*cached_values, v}, 2);
    }
    *cached_keys = k;
    *cached_values = v;
  }
  const double dropout_p = is_training() ? dropout : 0.0;
  torch::Tensor y = ops::causal_attention(q, k, v, dropout_p, past_length);
  y = y.transpose(1, 2).contiguous().view({B, T, C});  // re-assemble all heads side by side
  return resid_dropout(linear(c_proj, y));
}

MLPImpl::MLPImpl(const GPTConfig& config) {
  c_fc = register_module(
      "c_fc", torch::nn::Linear(torch::nn::LinearOptions(config.n_embd, 4 * config.n_embd).bias(config.bias)));
  c_proj = register_module(
      "c_proj", torch::nn::Linear(torch::nn::LinearOptions(4 * config.n_embd, config.n_embd).bias(config.bias)));
  dropout = register_module("dropout", torch::nn::Dropout(config.dropout));
}

torch::Tensor MLPImpl::forward(const torch::Tensor& x) {
  return dropout(linear(c_proj, torch::gelu(linear(c_fc, x))));
}

BlockImpl::BlockImpl(const GPTConfig& config) {
  ln_1 = register_module("ln_1", LayerNorm(config.n_embd, config.bias));
  attn = register_module("attn", CausalSelfAttention(config));
  ln_2 = register_module("ln_2", LayerNorm(config.n_embd, config.bias));
  mlp = register_module("mlp", MLP(config));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x, torch::Tensor* cached_keys,
                                 torch::Tensor* cached_values) {
  torch::Tensor out = x + attn(ln_1(x), cached_keys, cached_values);
  return out + mlp(ln_2(out));
}

GPTImpl::GPTImpl(const GPTConfig& cfg) : config(cfg) {
  if (config.vocab_size <= 0 || config.block_size <= 0) {
    throw std::invalid_argument("vocab_size and block_size must be positive");
  }
  // Construction order is model.py's, so LibTorch's default initialisers draw the same
  // random numbers as PyTorch's and the later re-initialisation lands identically.
  wte = torch::nn::Embedding(config.vocab_size, config.n_embd);
  wpe = torch::nn::Embedding(config.block_size, config.n_embd);
  drop = torch::nn::Dropout(config.dropout);
  h = torch::nn::ModuleList();
  for (int64_t i = 0; i < config.n_layer; ++i) {
    blocks.emplace_back(config);
    h->push_back(blocks.back());
  }
  ln_f = LayerNorm(config.n_embd, config.bias);
  {
    // model.py constructs lm_head as a Linear (drawing its default init) and then ties
    // wte to it; here the head reads wte's weight, so the Linear only advances the RNG.
    torch::nn::Linear untied_head(torch::nn::LinearOptions(config.n_embd, config.vocab_size).bias(false));
  }
  transformer = register_module(
      "transformer", torch::nn::ModuleDict(std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>>{
                         {"wte", wte.ptr()}, {"wpe", wpe.ptr()}, {"drop", drop.ptr()}, {"h", h.ptr()},
                         {"ln_f", ln_f.ptr()}}));
  init_weights();
}

void GPTImpl::init_weights() {
  torch::NoGradGuard no_grad;
  // model.py's apply(_init_weights) visits Linear and Embedding leaves in this order.
  for (const auto& module : transformer->modules(/*include_self=*/false)) {
    if (auto* linear = module->as<torch::nn::Linear>()) {
      torch::nn::init::normal_(linear->weight, 0.0, 0.02);
      if (linear->bias.defined()) torch::nn::init::zeros_(linear->bias);
    } else if (auto* embedding = module->as<torch::nn::Embedding>()) {
      torch::nn::init::normal_(embedding->weight, 0.0, 0.02);
    }
  }
  torch::nn::init::normal_(wte->weight, 0.0, 0.02);  // lm_head, the last module apply() visits
  const double proj_std = 0.02 / std::sqrt(2.0 * config.n_layer);
  for (auto& block : blocks) {
    torch::nn::init::normal_(block->attn->c_proj->weight, 0.0, proj_std);
    torch::nn::init::normal_(block->mlp->c_proj->weight, 0.0, proj_std);
  }
}

int64_t GPTImpl::get_num_params(bool non_embedding) const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  if (non_embedding) n -= wpe->weight.numel();
  return n;
}

torch::Tensor GPTImpl::hidden_states(const torch::Tensor& idx, KVCache* cache, const c10::intrusive_ptr<TiedGradient>& tied) {
  const int64_t t = idx.size(1);
  const int64_t past = cache != nullptr ? cache->length() : 0;
  if (past + t > config.block_size) {
    throw std::invalid_argument("Cannot forward sequence of length " + std::to_string(past + t) +
                                ", block size is only " + std::to_string(config.block_size));
  }
  auto pos = torch::arange(past, past + t, torch::TensorOptions().dtype(torch::kLong).device(idx.device()));
  torch::Tensor x = drop((tied ? tied_embedding(wte->weight, idx, tied) : wte(idx)) + wpe(pos));
  if (cache != nullptr) {
    cache->keys.resize(blocks.size());
    cache->values.resize(blocks.size());
  }
  const bool recompute = checkpoint_every > 0 && is_training() && torch::GradMode::is_enabled();
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (cache != nullptr) {
      x = blocks[i](x, &cache->keys[i], &cache->values[i]);
    } else if (recompute && static_cast<int64_t>(i) % checkpoint_every == 0) {
      x = checkpointed_block(*blocks[i], x);
    } else {
      x = blocks[i](x);
    }
  }
  return ln_f(x);
}

torch::Tensor GPTImpl::lm_head(const torch::Tensor& hidden) { return ops::linear(hidden, wte->weight, {}); }

std::tuple<torch::Tensor, torch::Tensor> GPTImpl::forward(const torch::Tensor& idx, const torch::Tensor& targets) {
  if (targets.defined() && loss_chunk_size > 0) {
    const auto tied = c10::make_intrusive<TiedGradient>();
    return {torch::Tensor(), chunked_lm_loss(hidden_states(idx, nullptr, tied), wte->weight, targets, loss_chunk_size, tied)};
  }
  torch::Tensor x = hidden_states(idx);
  if (targets.defined()) {
    torch::Tensor logits = lm_head(x);
    torch::Tensor loss = F::cross_entropy(logits.view({-1, logits.size(-1)}), targets.view(-1),
                                          F::CrossEntropyFuncOptions().ignore_index(-1));
    return {logits, loss};
  }
  // inference-time mini-optimisation: the LM head on the last position only
  return {lm_head(x.slice(1, x.size(1) - 1)), torch::Tensor()};
}

void GPTImpl::crop_block_size(int64_t block_size) {
  if (block_size > config.block_size) {
    throw std::invalid_argument("crop_block_size: " + std::to_string(block_size) + " exceeds the model's " +
                                std::to_string(config.block_size));
  }
  torch::NoGradGuard no_grad;
  config.block_size = block_size;
  wpe->weight.set_data(wpe->weight.slice(0, 0, block_size).clone());
}

std::unique_ptr<torch::optim::AdamW> GPTImpl::configure_optimizers(double weight_decay, double learning_rate,
                                                                   std::pair<double, double> betas) const {
  // Every matmul weight and embedding (dim >= 2) decays; biases and LayerNorm gains do not.
  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& p : parameters()) {
    if (!p.requires_grad()) continue;
    (p.dim() >= 2 ? decay : no_decay).push_back(p);
  }
  auto options = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(learning_rate).betas({betas.first, betas.second}).weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, options(weight_decay));
  groups.emplace_back(no_decay, options(0.0));
  return std::make_unique<FusedAdamW>(std::move(groups),
                                      torch::optim::AdamWOptions(learning_rate).betas({betas.first, betas.second}));
}

double GPTImpl::estimate_mfu(int64_t fwdbwd_per_iter, double dt_seconds, double peak_flops) const {
  const double N = static_cast<double>(get_num_params());
  const double L = config.n_layer, H = config.n_head, Q = config.n_embd / config.n_head, T = config.block_size;
  const double flops_per_token = 6 * N + 12 * L * H * Q * T;
  const double flops_per_iter = flops_per_token * T * fwdbwd_per_iter;
  return flops_per_iter / dt_seconds / peak_flops;
}

torch::Tensor GPTImpl::next_token_logits(const torch::Tensor& idx_cond, KVCache* cache, bool prefill) {
  torch::Tensor input = prefill ? idx_cond : idx_cond.slice(1, idx_cond.size(1) - 1);
  torch::Tensor x = hidden_states(input, cache);
  return lm_head(x.select(1, x.size(1) - 1));
}

torch::Tensor GPTImpl::generate(torch::Tensor idx, int64_t max_new_tokens, double temperature,
                                std::optional<int64_t> top_k, bool use_kv_cache) {
  torch::NoGradGuard no_grad;
  KVCache cache;
  for (int64_t step = 0; step < max_new_tokens; ++step) {
    const bool cropped = idx.size(1) > config.block_size;
    torch::Tensor idx_cond = cropped ? idx.slice(1, idx.size(1) - config.block_size) : idx;
    torch::Tensor logits;
    if (!use_kv_cache || cropped) {
      // Cropping moves every token to a new position, so no cached key or value stays valid,
      // and the window keeps sliding at every later step: recompute it, without a cache.
      cache.clear();
      logits = next_token_logits(idx_cond, nullptr, true);
    } else {
      logits = next_token_logits(idx_cond, &cache, cache.length() == 0);
    }
    logits = logits / temperature;
    if (top_k.has_value()) {
      auto kth = std::get<0>(torch::topk(logits, std::min(*top_k, logits.size(-1)))).slice(1, -1);
      logits.masked_fill_(logits < kth, -std::numeric_limits<float>::infinity());
    }
    torch::Tensor probs = torch::softmax(logits, -1);
    torch::Tensor idx_next = torch::multinomial(probs, 1);
    idx = torch::cat({idx, idx_next}, 1);
  }
  return idx;
}

}  // namespace nanogpt
