// The memory table (see docs/memory.md for every formula and why), the planner, and the
// measurement of one real optimizer step.
#include "nanogpt/train/memory_plan.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <optional>

#include <fmt/format.h>

#include "nanogpt/cpu/attention.h"
#include "nanogpt/cpu/bf16_linear_in_float.h"
#include "nanogpt/memory/memory_stats.h"
#include "nanogpt/model/model.h"
#include "nanogpt/model/chunked_loss.h"
#include "nanogpt/train/step.h"
#include "nanogpt/base/device.h"
#include "nanogpt/cpu/features.h"
#include "nanogpt/train/precision.h"

namespace nanogpt {

MemoryDevice memory_device_from_name(const std::string& name) {
  if (name == "cpu") return MemoryDevice::cpu;
  if (resolved_device_name(name).rfind("cuda", 0) == 0) return MemoryDevice::cuda;
  throw ConfigError("--device '" + name + "' is not one of cpu, cuda, cuda:N");
}

std::string memory_device_name(MemoryDevice device) { return device == MemoryDevice::cuda ? "cuda" : "cpu"; }

int64_t gpt_parameter_count(const TrainConfig& c, int64_t V) {
  const int64_t C = c.n_embd, bias = c.bias ? 1 : 0;
  const int64_t per_block = 12 * C * C + 2 * C + bias * 11 * C;  // ln_1, c_attn, c_proj, ln_2, c_fc, c_proj
  return V * C + c.block_size * C + c.n_layer * per_block + C + bias * C;  // wte, wpe, h, ln_f
}

namespace {

// The float32 tiles float_product holds for a (M, K) x (K, N) product: one of each operand
// and one of the result.
int64_t product_tile_bytes(int64_t M, int64_t K, int64_t N) {
  const int64_t m = std::min(M, kFloatProductTile), k = std::min(K, kFloatProductTile), n = std::min(N, kFloatProductTile);
  return 4 * (m * k + k * n + m * n);
}

// The largest of them over a block's linear layers, forward and backward, for BT rows.
int64_t block_product_tile_bytes(int64_t BT, int64_t C) {
  int64_t largest = 0;
  for (const auto& [in, out] : {std::pair<int64_t, int64_t>{C, 3 * C}, {C, C}, {C, 4 * C}, {4 * C, C}}) {
    largest = std::max({largest, product_tile_bytes(BT, in, out), product_tile_bytes(BT, out, in),
                        product_tile_bytes(out, BT, in)});
  }
  return largest;
}

using Terms = std::vector<MemoryTerm>;

void add(Terms& terms, std::string name, std::string formula, int64_t bytes) {
  terms.push_back({std::move(name), std::move(formula), bytes});
}

int64_t sum_bytes(const Terms& terms, size_t from = 0) {
  int64_t sum = 0;
  for (size_t i = from; i < terms.size(); ++i) sum += terms[i].bytes;
  return sum;
}

// The quantities the terms are written in (the letters of docs/memory.md's formulas),
// derived once from the config; each add_* function appends one group of terms.
struct MemoryModel {
  MemoryModel(const TrainConfig& c, int64_t vocab_size, MemoryDevice device);

  void add_state_and_weight_copies(Terms& terms) const;
  void add_block_activations(Terms& terms) const;
  // these three return the bytes of the term they add (0 when they add none)
  int64_t add_loss_head(Terms& terms) const;
  int64_t add_block_backward(Terms& terms, int64_t head_bytes) const;
  int64_t add_tied_gradients(Terms& terms, int64_t activation_bytes) const;
  void add_step_and_overhead(Terms& terms, int64_t activation_bytes) const;

  void derive_block_bytes();  // the constructor's last step: fused_attention to per_block_formula

  bool cuda = false, autocast = false, float_tiles = false, bias = false, dropout = false, chunked = false;
  int64_t B = 0, T = 0, C = 0, L = 0, nh = 0, V = 0, P = 0;
  int64_t BTC = 0, BT = 0, BTV = 0, att = 0, VC = 0;
  int64_t a = 0, p = 0, s = 0, m_att = 0, m_res = 0, m_emb = 0;  // bytes per element
  int64_t block_matmul_params = 0;
  int64_t every = 0;   // checkpoint every `every`-th block; 0: no checkpointing
  int64_t n_ckpt = 0;  // checkpointed blocks
  int64_t chunk = 0;   // rows of one loss chunk; 0: the loss is not chunked
  bool fused_attention = false;
  int64_t attention_grads = 0;  // backward's (T, T) float tensors
  int64_t per_block = 0;        // what one plain block saves for backward
  std::string per_block_formula;
};

MemoryModel::MemoryModel(const TrainConfig& c, int64_t vocab_size, MemoryDevice device) {
  cuda = device == MemoryDevice::cuda;
  const Precision precision(c.dtype, cuda ? at::kCUDA : at::kCPU);
  autocast = precision.autocast.has_value();
  // On a CPU without bf16 instructions bf16 products hold float32 tiles (bf16_linear_in_float.h).
  float_tiles = precision.bf16_products_in_float;
  bias = c.bias;
  dropout = c.dropout > 0;
  chunked = c.loss_chunk_size > 0;
  every = c.activation_checkpointing == "blocks" ? std::max<int64_t>(c.checkpoint_every, 1) : 0;
  B = c.batch_size; T = c.block_size; C = c.n_embd; L = c.n_layer; nh = c.n_head; V = vocab_size;
  BTC = B * T * C; BT = B * T; BTV = B * T * V; att = B * nh * T * T; VC = V * C;
  P = gpt_parameter_count(c, V);
  // a: bytes of a matmul input or output (bf16/fp16 under autocast); p: bytes per element
  // of the attention probabilities kept for backward (CUDA autocast runs softmax in fp32 and
  // keeps a half copy for the next matmul); s: bytes of the log-softmax of the logits;
  // m: bytes of a dropout mask (CPU: a scaled noise tensor of the input's dtype; CUDA: bool).
  a = autocast ? 2 : 4;
  p = autocast && cuda ? 6 : a;
  s = 4;  // autocast (CPU and CUDA) runs cross-entropy's log-softmax in fp32
  m_att = cuda ? 1 : (autocast && cuda ? 4 : a);
  m_res = cuda ? 1 : a;
  m_emb = cuda ? 1 : 4;
  block_matmul_params = 12 * C * C + (c.bias ? 9 * C : 0);
  n_ckpt = every > 0 ? (L - 1) / every + 1 : 0;
  chunk = chunked ? std::min(c.loss_chunk_size, BT) : 0;
  derive_block_bytes();
}

void MemoryModel::derive_block_bytes() {
  // One block's saved tensors: x (ln_1 input) and x+attn (ln_2 input) in fp32; the inputs of
  // c_attn, of the two attention matmuls (q scaled, k and v reshaped copies), of c_proj, of
  // c_fc, of GELU and of mlp.c_proj; the softmax output; mean and rstd of both LayerNorms.
  // With this port's fused CPU attention (T <= kFusedAttentionMaxKeys: cpu/attention.h) the softmax
  // output is replaced by one log-normaliser per query (and, with dropout, a bool mask), and
  // backward makes no (T, T) float tensors; so does 2.x's CPU flash kernel, which the port
  // calls there without dropout (compat.cpp).
  fused_attention = !cuda && fused_cpu_attention_chosen(T);
  const int64_t attention_saved = fused_attention ? 4 * B * nh * T : p * att;
  attention_grads = fused_attention ? 0 : 2 * p * att;
  const std::string attention_saved_formula = fused_attention ? "4*B*nh*T" : "p*B*nh*T*T";
  per_block = 2 * 4 * BTC + 14 * a * BTC + attention_saved + 16 * BT;
  per_block_formula = "2*4*B*T*C + 14*a*B*T*C + " + attention_saved_formula + " + 16*B*T";
  if (dropout) {  // the fused attention keeps a bool mask, LibTorch's the noise and the dropped probabilities
    per_block += (fused_attention ? 1 : m_att + a) * att + 2 * m_res * BTC;
    per_block_formula += fused_attention ? " + B*nh*T*T + 2*m*B*T*C" : " + (m+a)*B*nh*T*T + 2*m*B*T*C";
  }
}

// The fp32 weights, gradients and AdamW moments (always the first four terms), and
// autocast's half weight copies.
void MemoryModel::add_state_and_weight_copies(Terms& terms) const {
  add(terms, "parameters (fp32)", "4*P", 4 * P);
  add(terms, "gradients (fp32)", "4*P", 4 * P);
  add(terms, "AdamW exp_avg (fp32)", "4*P", 4 * P);
  add(terms, "AdamW exp_avg_sq (fp32)", "4*P", 4 * P);
  if (autocast) {
    // autocast caches a half copy of every matmul weight; the graph keeps those it saved
    const int64_t blocks_with_copies = every > 0 ? L - n_ckpt + 1 : L;
    add(terms, "autocast half weight copies",
        fmt::format("2*({}*(12*C*C{}){})", every > 0 ? "(L-n_ckpt+1)" : "L", bias ? "+9*C" : "",
                    chunked ? "" : "+V*C"),
        2 * (blocks_with_copies * block_matmul_params + (chunked ? 0 : VC)));
  }
}

// What forward leaves for backward: the plain blocks' saved tensors, the checkpointed
// blocks' inputs, the embedding's dropout mask, and ln_f's and the LM head's inputs.
void MemoryModel::add_block_activations(Terms& terms) const {
  const int64_t plain_blocks = L - n_ckpt;
  if (plain_blocks > 0) {
    add(terms, fmt::format("block activations ({} blocks)", plain_blocks), "(L-n_ckpt)*(" + per_block_formula + ")",
        plain_blocks * per_block);
  }
  if (n_ckpt > 0) {
    add(terms, fmt::format("checkpointed block inputs ({} blocks)", n_ckpt), "n_ckpt*4*B*T*C", n_ckpt * 4 * BTC);
  }
  if (dropout) add(terms, "embedding dropout mask", "m*B*T*C", m_emb * BTC);
  add(terms, "ln_f input and statistics", "4*B*T*C + 8*B*T", 4 * BTC + 8 * BT);
  add(terms, "LM-head input", chunked ? "4*B*T*C (fp32 hidden, kept by the chunked loss)" : "a*B*T*C",
      (chunked ? 4 : a) * BTC);
}

// The loss head's backward: the logits and the LM head's weight gradient, whole or by chunk.
int64_t MemoryModel::add_loss_head(Terms& terms) const {
  if (!chunked) {
    // backward start: the saved log-softmax, its gradient and the logits' gradient; then the
    // LM head's weight gradient (a half one cast to fp32 under autocast) beside the latter
    const int64_t softmax_phase = 3 * s * BTV;
    const int64_t matmul_phase = a * BTV + (autocast ? 2 : 0) * VC + 4 * VC;
    const int64_t head_bytes = std::max(softmax_phase, matmul_phase);
    add(terms, "logits, log-softmax and their gradients",
        fmt::format("max(3*s*B*T*V, a*B*T*V + {}4*V*C)", autocast ? "2*V*C + " : ""), head_bytes);
    return head_bytes;
  }
  // the hidden's gradient, the weight-gradient accumulator, (the half weight copy,) and one
  // chunk: its fp32 logits turned in place into their gradient, beside the half logits and
  // then the half gradient under autocast, whose weight gradient is added in vocabulary
  // slices (a half and a float temporary each)
  const int64_t slice_rows = std::min(V, kHalfWeightGradRows);
  const int64_t slice_bytes = 6 * slice_rows * C;
  // with float tiles: those of the hidden's gradient and of a weight-gradient slice, each
  // beside its half result
  const int64_t tile_bytes = float_tiles ? std::max(product_tile_bytes(chunk, V, C) + 2 * chunk * C,
                                                    product_tile_bytes(slice_rows, chunk, C) + 2 * slice_rows * C)
                                         : 0;
  const int64_t chunk_bytes =
      autocast ? a * chunk * V + std::max({4 * chunk * V, slice_bytes, tile_bytes}) : 4 * chunk * V;
  const int64_t head_bytes = 4 * BTC + 4 * VC + (autocast ? 2 * VC : 0) + chunk_bytes;
  add(terms, "chunked loss backward (chunk rows N)",
      autocast ? fmt::format("4*B*T*C + 4*V*C + 2*V*C + a*N*V + max(4*N*V, 6*{}*C{})",
                             V > kHalfWeightGradRows ? std::to_string(kHalfWeightGradRows) : "V",
                             float_tiles ? ", float tiles" : "")
               : "4*B*T*C + 4*V*C + 4*N*V",
      head_bytes);
  return head_bytes;
}

// The blocks' backward starts after the loss head's tensors (and its saved input, and
// ln_f's) are freed, except the LM head's weight gradient, which waits for the embedding's.
// It needs the recomputed top block (when that one is checkpointed; a plain top block frees
// its own tensors before a lower one is recomputed), two residual gradients and the largest
// pair of intermediate gradients: the MLP's (4*a*B*T*C beyond the saved GELU output that
// mlp.c_proj's backward has freed), or the attention scores' (beyond the MLP's saved tensors).
// With float tiles, the largest of the block's products are beside the MLP's gradients.
int64_t MemoryModel::add_block_backward(Terms& terms, int64_t head_bytes) const {
  const int64_t tiles = float_tiles ? block_product_tile_bytes(B * T, C) : 0;
  const bool top_recomputed = every > 0 && (L - 1) % every == 0;
  const int64_t head_inputs = (chunked ? 4 : a) * BTC + 4 * BTC + 8 * BT;
  const int64_t block_backward = 4 * VC + (top_recomputed ? per_block : 0) + 8 * BTC +
                                 std::max(4 * a * BTC + tiles, attention_grads - (9 * a + 4) * BTC) - head_inputs;
  const int64_t beyond_head = std::max<int64_t>(0, block_backward - head_bytes);
  add(terms,
      top_recomputed ? "recomputed block + block backward, beyond the loss head" : "block backward, beyond the loss head",
      fmt::format("max(0, 4*V*C + {}8*B*T*C + {} - {}*B*T*C - 4*B*T*C - 8*B*T - loss head)",
                  top_recomputed ? "(" + per_block_formula + ") + " : "",
                  fmt::format(fmt::runtime(fused_attention ? "{0}" : "max({0}, 2*p*B*nh*T*T - (9*a+4)*B*T*C)"),
                              tiles > 0 ? "4*a*B*T*C + float tiles" : "4*a*B*T*C"),
                  chunked ? "4" : "a"),
      beyond_head);
  return beyond_head;
}

// At the end of backward the tied weight's two gradients (the LM head's and the
// embedding's) meet. LibTorch 1.13's engine adds them out of place: three (V, C) tensors.
// With the chunked loss the embedding adds into the head's (chunked_loss.h): one, and two on
// CUDA. They matter when B*T is small against C.
int64_t MemoryModel::add_tied_gradients(Terms& terms, int64_t activation_bytes) const {
  const int64_t tied_gradients = chunked ? (cuda ? 8 : 4) * VC : 12 * VC;
  const int64_t tied_end = std::max<int64_t>(0, tied_gradients + 4 * BTC - activation_bytes);
  if (tied_end > 0) {
    add(terms, "tied weight's gradients at the end of backward, beyond the activations",
        fmt::format("max(0, {}*V*C + 4*B*T*C - activations)", tied_gradients / VC), tied_end);
  }
  return tied_end;
}

// AdamW's step runs after the activations are gone. LibTorch's own step on CUDA (1.13's)
// makes sqrt/div temporaries of the largest parameter (wte), which matter only for tiny
// batches; FusedAdamW makes none on the CPU, nor through 2.x's fused kernel on CUDA, so on
// CUDA the term is an upper bound. Then the allocator's overhead over all the terms.
void MemoryModel::add_step_and_overhead(Terms& terms, int64_t activation_bytes) const {
  const int64_t largest_param = std::max(VC, 4 * C * C);
  if (cuda) {
    add(terms, "optimizer step temporaries beyond activations", "max(0, 2*4*max(V*C, 4*C*C) - activations)",
        std::max<int64_t>(0, 2 * 4 * largest_param - activation_bytes));
  }
  const int64_t sum = sum_bytes(terms);
  if (cuda) {
    add(terms, "CUDA context, cuBLAS workspace, allocator fragmentation", "512 MiB + 5% of the above",
        512LL * 1024 * 1024 + sum / 20);
  } else {
    add(terms, "allocator overhead (CPU: tensors are counted as requested)", "0", 0);
  }
}

}  // namespace

MemoryEstimate estimate_memory(const TrainConfig& c, int64_t V, MemoryDevice device) {
  const MemoryModel model(c, V, device);
  MemoryEstimate e;
  e.parameter_count = model.P;
  model.add_state_and_weight_copies(e.terms);
  model.add_block_activations(e.terms);
  // The bytes held beside the four fp32 state terms: autocast's weight copies (kept by the
  // graph) and forward's saved tensors, then each backward term as it is added.
  int64_t activation_bytes = sum_bytes(e.terms, 4);
  const int64_t head_bytes = model.add_loss_head(e.terms);
  activation_bytes += head_bytes + model.add_block_backward(e.terms, head_bytes);
  activation_bytes += model.add_tied_gradients(e.terms, activation_bytes);
  model.add_step_and_overhead(e.terms, activation_bytes);
  e.total_bytes = sum_bytes(e.terms);
  return e;
}

namespace {

std::string gib(int64_t bytes) { return fmt::format("{:.2f}", static_cast<double>(bytes) / (1024.0 * 1024 * 1024)); }

}  // namespace

MemoryPlan plan_memory(const TrainConfig& config, int64_t vocab_size, MemoryDevice device, int64_t budget_bytes) {
  const int64_t effective = config.batch_size * config.gradient_accumulation_steps;
  auto with_setting = [&](int64_t micro, bool chunk, bool ckpt) {
    TrainConfig c = config;
    c.batch_size = micro;
    c.gradient_accumulation_steps = effective / micro;
    if (chunk && c.loss_chunk_size == 0) c.loss_chunk_size = kPlannerLossChunk;
    if (ckpt && c.activation_checkpointing == "none") {
      c.activation_checkpointing = "blocks";
      c.checkpoint_every = 1;
    }
    return c;
  };
  for (int64_t micro = std::min(config.batch_size, effective); micro >= 1; --micro) {
    if (effective % micro != 0) continue;
    for (int option = 0; option < 3; ++option) {
      const bool chunk = option >= 1, ckpt = option == 2;
      TrainConfig candidate = with_setting(micro, chunk, ckpt);
      MemoryEstimate estimate = estimate_memory(candidate, vocab_size, device);
      if (estimate.total_bytes > budget_bytes) continue;
      MemoryPlan plan;
      plan.needed_chunked_loss = config.loss_chunk_size == 0 && candidate.loss_chunk_size > 0;
      plan.needed_checkpointing = config.activation_checkpointing == "none" && candidate.activation_checkpointing != "none";
      plan.changed_micro_batch = micro != config.batch_size;
      plan.config = std::move(candidate);
      plan.estimate = std::move(estimate);
      return plan;
    }
  }
  const MemoryEstimate smallest = estimate_memory(with_setting(1, true, true), vocab_size, device);
  throw MemoryPlanError(fmt::format(
      "even micro-batch 1 with activation checkpointing and chunked loss needs {} GiB, more than the budget {} GiB",
      gib(smallest.total_bytes), gib(budget_bytes)));
}

MeasuredMemory measure_training_step(const TrainConfig& config, int64_t vocab_size) {
  install_counting_cpu_allocator();
  const at::Device device(at::kCPU);
  // tensors that other code of this process holds are not the step's
  const int64_t held_before = std::max<int64_t>(0, memory_peaks(device).cpu_tensor_bytes_now);
  at::set_num_threads(config.num_threads > 0 ? static_cast<int>(config.num_threads) : hardware_threads());
  apply_cpu_memory_mode(config.cpu_memory);
  torch::manual_seed(static_cast<uint64_t>(config.seed));
  GPT model(GPTConfig{config.block_size, vocab_size, config.n_layer, config.n_head, config.n_embd, config.dropout,
                      config.bias});
  model->train();
  model->checkpoint_every = config.activation_checkpointing == "blocks" ? config.checkpoint_every : 0;
  model->loss_chunk_size = config.loss_chunk_size;
  auto optimizer = model->configure_optimizers(config.weight_decay, config.learning_rate, {config.beta1, config.beta2});
  StepSettings settings{1, config.grad_clip, Precision(config.dtype, device.type()).autocast, device.type()};
  auto random_batch = [&] {
    return Batch(torch::randint(vocab_size, {config.batch_size, config.block_size}, torch::kLong),
                 torch::randint(vocab_size, {config.batch_size, config.block_size}, torch::kLong));
  };
  Batch batch = random_batch();
  auto step = [&](int64_t micro_steps) {
    settings.micro_steps = micro_steps;
    optimizer_step(model, *optimizer, batch, random_batch, settings);
  };
  step(1);  // warm-up: creates the AdamW moments
  reset_memory_peaks(device);
  const auto t0 = std::chrono::steady_clock::now();
  step(config.gradient_accumulation_steps);
  const auto t1 = std::chrono::steady_clock::now();
  const MemoryPeaks peaks = memory_peaks(device);
  return {peaks.cpu_tensor_bytes - held_before, peaks.peak_rss_bytes, std::chrono::duration<double>(t1 - t0).count()};
}

std::string format_memory_table(const MemoryEstimate& estimate) {
  size_t name_width = 5, formula_width = 7;
  for (const auto& t : estimate.terms) {
    name_width = std::max(name_width, t.name.size());
    formula_width = std::max(formula_width, t.formula.size());
  }
  std::string out = fmt::format("{:<{}}  {:<{}}  {:>16}  {:>10}\n", "term", name_width, "formula", formula_width,
                                "bytes", "");
  for (const auto& t : estimate.terms) {
    out += fmt::format("{:<{}}  {:<{}}  {:>16}  {:>10}\n", t.name, name_width, t.formula, formula_width, t.bytes,
                       format_bytes(t.bytes));
  }
  out += fmt::format("{:<{}}  {:<{}}  {:>16}  {:>10}\n", "total (estimated peak)", name_width, "sum of the above",
                     formula_width, estimate.total_bytes, format_bytes(estimate.total_bytes));
  return out;
}

}  // namespace nanogpt
