#include "nanogpt/train/logits_check.h"

#include <torch/torch.h>

#include <fmt/format.h>

#include "nanogpt/interop/checkpoint.h"
#include "nanogpt/base/compat.h"
#include "nanogpt/model/model.h"
#include "nanogpt/train/step.h"
#include "nanogpt/base/device.h"
#include "nanogpt/train/precision.h"

namespace nanogpt {

double default_logits_tolerance(at::ScalarType compute_type) {
  if (compute_type == at::kBFloat16) return 5e-2;
  if (compute_type == at::kHalf) return 1e-2;
  return 1e-3;
}

LogitsCheckResult check_logits(const TrainConfig& config, const LogitsCheckOptions& options,
                               const std::function<void(const std::string&)>& print) {
  if (options.batch_size < 1) throw std::invalid_argument("--batch-size must be >= 1");
  if (options.vocab_size < 1) throw std::invalid_argument("--vocab-size must be >= 1");
  const at::Device device = parse_device(config.device);
  const at::Device cpu(at::kCPU);
  at::set_num_threads(config.num_threads > 0 ? static_cast<int>(config.num_threads) : hardware_threads());
  torch::manual_seed(static_cast<uint64_t>(config.seed));

  GPT model{nullptr};
  if (!options.checkpoint_path.empty()) {
    model = load_model(options.checkpoint_path);
  } else {
    model = GPT(GPTConfig{config.block_size, options.vocab_size, config.n_layer, config.n_head, config.n_embd, 0.0,
                          config.bias});
  }
  model->eval();
  const GPTConfig& shape = model->config;
  const at::Tensor idx = torch::randint(shape.vocab_size, {options.batch_size, shape.block_size}, torch::kLong);
  const at::Tensor targets = idx.roll(-1, 1);

  const Precision precision(config.dtype, device.type());
  LogitsCheckResult result;
  result.checked = fmt::format("{} {}", config.device, config.dtype);
  result.reference = "cpu float32";
  result.positions = idx.numel();
  result.tolerance = options.tolerance.value_or(default_logits_tolerance(precision.compute_type));
  print(fmt::format("check-logits: n_layer {}, n_head {}, n_embd {}, block_size {}, vocab_size {}, {} x {} tokens; "
                    "{} against {}",
                    shape.n_layer, shape.n_head, shape.n_embd, shape.block_size, shape.vocab_size, options.batch_size,
                    shape.block_size, result.checked, result.reference));

  torch::NoGradGuard no_grad;
  auto logits_on = [&](const at::Device& on, const std::optional<AutocastState>& autocast) {
    model->to(on);
    std::optional<AutocastGuard> guard;
    if (autocast) guard.emplace(on.type(), *autocast);
    const at::Tensor logits = model->lm_head(model->hidden_states(idx.to(on)));
    return logits.to(cpu, at::kFloat);
  };
  auto loss_of = [&](const at::Tensor& logits) {
    return torch::nn::functional::cross_entropy(logits.view({-1, logits.size(-1)}), targets.view(-1)).item<double>();
  };
  const at::Tensor reference = logits_on(cpu, std::nullopt);
  const at::Tensor checked = logits_on(device, precision.autocast);

  const at::Tensor error = checked - reference;
  result.relative_error = (error.norm() / reference.norm()).item<double>();
  result.max_abs_error = error.abs().max().item<double>();
  result.reference_max_abs = reference.abs().max().item<double>();
  result.argmax_agreement = checked.argmax(-1).eq(reference.argmax(-1)).to(at::kDouble).mean().item<double>();
  result.checked_loss = loss_of(checked);
  result.reference_loss = loss_of(reference);
  result.passed = result.relative_error <= result.tolerance;  // false for NaN as well
  print(fmt::format("relative error {:.3e} (tolerance {:.1e}): {}", result.relative_error, result.tolerance,
                    result.passed ? "pass" : "FAIL"));
  print(fmt::format("max abs error {:.4g} (largest |logit| {:.4g}), same argmax at {:.2f}% of {} positions",
                    result.max_abs_error, result.reference_max_abs, result.argmax_agreement * 100, result.positions));
  print(fmt::format("loss: {} {:.5f}, {} {:.5f}", result.checked, result.checked_loss, result.reference,
                    result.reference_loss));
  return result;
}

}  // namespace nanogpt
