#include "nanogpt/sample.h"

#include <torch/torch.h>

#include <filesystem>

#include <fmt/format.h>

#include "nanogpt/checkpoint.h"
#include "nanogpt/compat.h"
#include "nanogpt/config.h"
#include "nanogpt/fileio.h"
#include "nanogpt/tokenizer.h"

namespace nanogpt {

namespace fs = std::filesystem;

void sample(const SampleOptions& options, const std::function<void(const std::string&)>& emit) {
  if (options.temperature <= 0.0) {
    throw std::invalid_argument(fmt::format("--temperature must be > 0, got {}", options.temperature));
  }
  if (options.top_k && *options.top_k <= 0) {
    throw std::invalid_argument(fmt::format("--top_k must be > 0, got {}", *options.top_k));
  }
  if (options.num_samples < 0 || options.max_new_tokens < 0) {
    throw std::invalid_argument("--num_samples and --max_new_tokens must be >= 0");
  }
  const at::Device device = parse_device(options.device);
  at::set_num_threads(options.num_threads > 0 ? static_cast<int>(options.num_threads) : hardware_threads());
  torch::manual_seed(static_cast<uint64_t>(options.seed));

  // model (constructed after seeding, as sample.py does, so the same seed samples the same text)
  const std::string ckpt_path = (fs::path(options.out_dir) / "ckpt.pt").string();
  CheckpointInfo info;
  GPT model = load_model(ckpt_path, &info);
  model->eval();
  model->to(device);

  // the dataset's character vocabulary
  std::string data_dir = options.data_dir;
  if (data_dir.empty()) data_dir = config_from_json(info.config).resolved_data_dir();
  const std::optional<DatasetMeta> meta = read_dataset_meta(data_dir);
  if (!meta || meta->tokenizer != "char") {
    throw TokenizerError(fmt::format("no character vocabulary in '{}' (meta.json or nanoGPT's meta.pkl): sampling "
                                     "needs one (pass --data_dir DIR); GPT-2 BPE datasets are not supported yet",
                                     data_dir));
  }
  const CharTokenizer tokenizer(meta->itos);

  std::string start = options.start;
  if (start.rfind("FILE:", 0) == 0) start = read_file(start.substr(5));
  const std::vector<int64_t> start_ids = tokenizer.encode(start);
  if (start_ids.empty()) throw std::invalid_argument("--start must not be empty");
  const torch::Tensor x = torch::tensor(start_ids, torch::kLong).unsqueeze(0).to(device);

  for (int64_t k = 0; k < options.num_samples; ++k) {
    torch::Tensor y = model->generate(x, options.max_new_tokens, options.temperature, options.top_k, options.use_kv_cache);
    torch::Tensor ids = y[0].cpu().contiguous();
    emit(tokenizer.decode(std::vector<int64_t>(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel())));
  }
}

}  // namespace nanogpt
