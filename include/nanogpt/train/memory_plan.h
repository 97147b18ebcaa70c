#pragma once
// The memory estimator and planner: one table of every term of a training step's peak
// memory (parameters, gradients, AdamW moments, each saved activation of a block, logits,
// loss, autocast copies, allocator overhead), each a named row with its formula, summed;
// a planner that fits a config into a budget; and the measurement of a real step.
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "nanogpt/base/config.h"

namespace nanogpt {

// Which device's memory the estimate models. CUDA adds the CUDA context, the cuBLAS
// workspace and the caching allocator's fragmentation; CUDA autocast also runs softmax
// and cross-entropy in fp32 and keeps dropout masks as bool.
enum class MemoryDevice { cpu, cuda };
MemoryDevice memory_device_from_name(const std::string& name);  // "cpu", "cuda", "cuda:N"
std::string memory_device_name(MemoryDevice device);

struct MemoryTerm {
  std::string name;     // e.g. "block activations (12 blocks)"
  std::string formula;  // e.g. "L * (2*4*B*T*C + 14*a*B*T*C + a*B*nh*T*T + 16*B*T)"
  int64_t bytes = 0;
};

struct MemoryEstimate {
  std::vector<MemoryTerm> terms;
  int64_t total_bytes = 0;  // the sum of the terms: the estimated peak
  int64_t parameter_count = 0;
};

// The table for one micro-batch of `config` (batch_size is the micro-batch) on `device`.
MemoryEstimate estimate_memory(const TrainConfig& config, int64_t vocab_size, MemoryDevice device);

// The number of parameters of GPT(config) including position embeddings, by formula.
int64_t gpt_parameter_count(const TrainConfig& config, int64_t vocab_size);

// Raised when not even micro-batch 1 with every memory saver fits the budget.
struct MemoryPlanError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct MemoryPlan {
  TrainConfig config;              // the input config with the recommended setting applied
  MemoryEstimate estimate;         // of `config`
  bool needed_chunked_loss = false;
  bool needed_checkpointing = false;
  bool changed_micro_batch = false;
};

// Positions per chunk the planner uses when it turns chunked loss on.
constexpr int64_t kPlannerLossChunk = 1024;

// Keeps batch_size * gradient_accumulation_steps fixed and picks the largest micro-batch
// (a divisor of that product, at most the configured batch_size) that fits `budget_bytes`,
// trying for each micro-batch, in order: the config as it is; with chunked loss; with
// activation checkpointing and chunked loss. Throws MemoryPlanError when nothing fits.
MemoryPlan plan_memory(const TrainConfig& config, int64_t vocab_size, MemoryDevice device, int64_t budget_bytes);

struct MeasuredMemory {
  int64_t peak_tensor_bytes = -1;  // peak bytes held by CPU tensors during the measured step
  int64_t peak_rss_bytes = -1;     // peak resident set of the process during the step
  double step_seconds = 0;         // wall time of the measured step
};

// Builds GPT(config) on the CPU and runs, on random tokens, one warm-up optimizer step
// (so that the AdamW moments exist, as in every step after the first) and then one
// measured optimizer step exactly as `train` does: gradient_accumulation_steps micro-steps
// under autocast when dtype is not float32, checkpointing and chunking per the config,
// clipping, AdamW, gradients set to none. Installs the counting allocator if needed; the
// model is built after it, so every tensor of the step is counted.
MeasuredMemory measure_training_step(const TrainConfig& config, int64_t vocab_size);

// The table as aligned text: term, formula, bytes, then the total.
std::string format_memory_table(const MemoryEstimate& estimate);

}  // namespace nanogpt
