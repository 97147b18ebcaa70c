#include "nanogpt/sample/sample.h"

#include <torch/torch.h>

#include <cmath>
#include <filesystem>

#include <fmt/format.h>

#include "nanogpt/tokenizer/bpe.h"
#include "nanogpt/interop/checkpoint.h"
#include "nanogpt/base/compat.h"
#include "nanogpt/base/config.h"
#include "nanogpt/base/fileio.h"
#include "nanogpt/interop/pretrained.h"
#include "nanogpt/tokenizer/char_tokenizer.h"

namespace nanogpt {

namespace fs = std::filesystem;

void sample(const SampleOptions& options, const std::function<void(const std::string&)>& emit) {
  if (!(options.temperature > 0.0) || !std::isfinite(options.temperature)) {  // NaN fails the first test
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
  const bool pretrained = is_pretrained_gpt2(options.init_from);
  if (!pretrained && options.init_from != "resume") {
    throw std::invalid_argument(fmt::format("--init_from must be resume, gpt2, gpt2-medium, gpt2-large or gpt2-xl, got '{}'",
                                            options.init_from));
  }
  const std::string checkpoint_path = (fs::path(options.out_dir) / "ckpt.pt").string();
  CheckpointInfo info;
  GPT model{nullptr};
  if (pretrained) {
    const std::string dir = find_pretrained_dir(options.init_from, options.pretrained_dir);
    model = GPT(read_pretrained_config(dir, options.init_from, 0.0));
    load_pretrained_weights(dir, model);
  } else {
    model = load_model(checkpoint_path, &info);
  }
  model->eval();
  model->to(device);

  // the dataset's character vocabulary, else GPT-2 BPE as in sample.py (always for gpt2*)
  std::string data_dir = options.data_dir;
  if (data_dir.empty() && !pretrained) {
    try {
      data_dir = config_from_json(info.config, fmt::format("checkpoint '{}' config", checkpoint_path)).resolved_data_dir();
    } catch (const ConfigError& e) {  // the checkpoint is at fault, not the command line
      throw CheckpointError(e.what());
    }
  }
  const std::optional<DatasetMeta> meta = data_dir.empty() ? std::nullopt : read_dataset_meta(data_dir);
  if (!data_dir.empty() && !meta) {
    // sample.py then assumes GPT-2 BPE; a model with fewer ids than GPT-2 was not trained on it
    if (!options.data_dir.empty()) {
      throw std::invalid_argument(fmt::format("--data_dir '{}' has no meta.json or meta.pkl", data_dir));
    }
    if (model->config.vocab_size < 50257) {
      throw TokenizerError(fmt::format(
          "no meta.json or meta.pkl in '{}' (the dataset folder of the checkpoint's config, relative to the current "
          "folder), and the model's {} ids are too few for GPT-2 BPE: pass --data_dir DIR",
          data_dir, model->config.vocab_size));
    }
  }
  if (meta && meta->tokenizer == "char" && meta->vocab_size != model->config.vocab_size) {
    throw TokenizerError(fmt::format("'{}' has a vocabulary of {} characters but the model has {} ids: is it the "
                                     "dataset the model was trained on?",
                                     data_dir, meta->vocab_size, model->config.vocab_size));
  }
  std::function<std::vector<int64_t>(const std::string&)> encode;
  std::function<std::string(const std::vector<int64_t>&)> decode;
  if (meta && meta->tokenizer == "char") {
    auto tokenizer = std::make_shared<const CharTokenizer>(meta->itos);
    encode = [tokenizer](const std::string& text) { return tokenizer->encode(text); };
    decode = [tokenizer](const std::vector<int64_t>& ids) { return tokenizer->decode(ids); };
  } else if (!meta || meta->tokenizer == "gpt2") {
    auto bpe = std::make_shared<const Gpt2Bpe>(Gpt2Bpe::load(find_gpt2_vocab_dir(options.vocab_dir)));
    encode = [bpe](const std::string& text) {
      const std::vector<uint32_t> ids = bpe->encode(text);  // allowed_special={"<|endoftext|>"}
      return std::vector<int64_t>(ids.begin(), ids.end());
    };
    decode = [bpe](const std::vector<int64_t>& ids) {
      std::vector<uint32_t> tokens;
      for (int64_t id : ids) {
        if (id < 0 || id >= static_cast<int64_t>(bpe->vocab_size())) {
          throw TokenizerError(fmt::format("the model sampled token {}, which is outside GPT-2's vocabulary (0..{}); "
                                           "is this checkpoint trained on a GPT-2 BPE dataset?",
                                           id, bpe->vocab_size() - 1));
        }
        tokens.push_back(static_cast<uint32_t>(id));
      }
      return bpe->decode(tokens);
    };
  } else {
    throw TokenizerError(fmt::format("'{}' has a meta.pkl with vocab_size only: sampling needs its vocabulary "
                                     "(itos) or a GPT-2 BPE dataset (pass --data_dir DIR)",
                                     data_dir));
  }

  const bool from_file = options.start.rfind("FILE:", 0) == 0;
  const std::string start_name = from_file ? fmt::format("--start file '{}'", options.start.substr(5)) : "--start";
  std::vector<int64_t> start_ids;
  try {
    start_ids = encode(from_file ? read_file(options.start.substr(5)) : options.start);
  } catch (const TokenizerError& e) {
    throw TokenizerError(fmt::format("{}: {}", start_name, e.what()));
  }
  if (start_ids.empty()) throw std::invalid_argument(start_name + " must not be empty");
  for (int64_t id : start_ids) {
    if (id >= model->config.vocab_size) {
      throw TokenizerError(fmt::format("--start encodes to token {}, outside the model's vocabulary of {} ids",
                                       id, model->config.vocab_size));
    }
  }
  const torch::Tensor x = torch::tensor(start_ids, torch::kLong).unsqueeze(0).to(device);

  for (int64_t k = 0; k < options.num_samples; ++k) {
    torch::Tensor y = model->generate(x, options.max_new_tokens, options.temperature, options.top_k, options.use_kv_cache);
    torch::Tensor ids = y[0].cpu().contiguous();
    emit(decode(std::vector<int64_t>(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel())));
  }
}

}  // namespace nanogpt
