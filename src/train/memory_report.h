#pragma once
// Internal to the trainer: how it speaks of memory. The memory setting in words, the
// planner's advice after an out-of-memory error, and the measured peaks of each log line.
#include <exception>
#include <string>

#include <nlohmann/json.hpp>

#include "nanogpt/base/config.h"
#include "nanogpt/memory/memory_stats.h"

namespace nanogpt::detail {

// batch_size, gradient_accumulation_steps, activation_checkpointing and loss_chunk_size, in one line.
std::string describe_setting(const TrainConfig& c);

// The planner's answer to an out-of-memory error: what the failed setting needs and,
// for the budget (memory_budget, else nothing known), a setting that fits.
std::string out_of_memory_advice(const TrainConfig& config, int64_t vocab_size, const std::exception& error);

// The peaks for a metrics.jsonl record (null where not measured) and for a log line.
nlohmann::json peaks_json(const MemoryPeaks& peaks);
std::string peaks_text(const MemoryPeaks& peaks);

}  // namespace nanogpt::detail
