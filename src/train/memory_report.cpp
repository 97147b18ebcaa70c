#include "train/memory_report.h"

#include <fmt/format.h>

#include "nanogpt/train/memory_plan.h"

namespace nanogpt::detail {

std::string describe_setting(const TrainConfig& c) {
  return fmt::format("batch_size {} x gradient_accumulation_steps {}, activation_checkpointing {}{}, loss_chunk_size {}",
                     c.batch_size, c.gradient_accumulation_steps, c.activation_checkpointing,
                     c.activation_checkpointing == "blocks" ? fmt::format(" (every {})", c.checkpoint_every) : "",
                     c.loss_chunk_size);
}

std::string out_of_memory_advice(const TrainConfig& config, int64_t vocab_size, const std::exception& error) {
  std::string first_line = error.what();
  first_line = first_line.substr(0, first_line.find('\n'));
  const MemoryDevice device = memory_device_from_name(config.device);
  std::string advice = fmt::format(
      "out of memory at micro-batch {} x {} tokens ({}). The estimate for {} is {}.", config.batch_size,
      config.block_size, first_line, describe_setting(config),
      format_bytes(estimate_memory(config, vocab_size, device).total_bytes));
  if (!config.memory_budget.empty()) {
    try {
      const MemoryPlan plan =
          plan_memory(config, vocab_size, device, parse_byte_size(config.memory_budget, "memory_budget"));
      advice += fmt::format(" For the budget {} the planner suggests {} (estimated peak {}).", config.memory_budget,
                            describe_setting(plan.config), format_bytes(plan.estimate.total_bytes));
    } catch (const MemoryPlanError& e) {
      advice += std::string(" ") + e.what() + ".";
    }
  }
  return advice + " With auto_fit: true the trainer halves the micro-batch and doubles the accumulation by itself.";
}

nlohmann::json peaks_json(const MemoryPeaks& peaks) {
  auto value = [](int64_t v) { return v < 0 ? nlohmann::json(nullptr) : nlohmann::json(v); };
  return {{"peak_tensor_bytes", value(peaks.cpu_tensor_bytes)},
          {"peak_rss_bytes", value(peaks.peak_rss_bytes)},
          {"cuda_peak_allocated_bytes", value(peaks.cuda_allocated_bytes)},
          {"cuda_peak_reserved_bytes", value(peaks.cuda_reserved_bytes)}};
}

std::string peaks_text(const MemoryPeaks& peaks) {
  if (peaks.cuda_allocated_bytes >= 0) {
    return fmt::format(", peak alloc {}, reserved {}", format_bytes(peaks.cuda_allocated_bytes),
                       format_bytes(peaks.cuda_reserved_bytes));
  }
  std::string text;
  if (peaks.cpu_tensor_bytes >= 0) text += ", peak tensors " + format_bytes(peaks.cpu_tensor_bytes);
  if (peaks.peak_rss_bytes >= 0) text += ", peak rss " + format_bytes(peaks.peak_rss_bytes);
  return text;
}

}  // namespace nanogpt::detail
