#include "nanogpt/sample/sample.h"

#include <torch/torch.h>

#include <cmath>
#include <filesystem>

#include <fmt/format.h>

#include "nanogpt/tokenizer/bpe.h"
#include "nanogpt/interop/checkpoint.h"
#include "nanogpt/base/config.h"
#include "nanogpt/base/fileio.h"
#include "nanogpt/interop/pretrained.h"
#include "nanogpt/tokenizer/char_tokenizer.h"
#include "nanogpt/base/device.h"

namespace nanogpt {

namespace fs = std::filesystem;

namespace {

// sample.py's encode and decode
struct Codec {
  std::function<std::vector<int64_t>(const std::string&)> encode;
  std::function<std::string(const std::vector<int64_t>&)> decode;
};

void check_options(const SampleOptions& options) {
  if (!(options.temperature > 0.0) || !std::isfinite(options.temperature)) {  // NaN fails the first test
    throw std::invalid_argument(fmt::format("--temperature must be > 0, got {}", options.temperature));
  }
  if (options.top_k && *options.top_k <= 0) {
    throw std::invalid_argument(fmt::format("--top_k must be > 0, got {}", *options.top_k));
  }
  if (options.num_samples < 0 || options.max_new_tokens < 0) {
    throw std::invalid_argument("--num_samples and --max_new_tokens must be >= 0");
  }
}

// init_from: GPT-2's weights, else out_dir/ckpt.pt (whose config `info` receives); in eval mode, on `device`
GPT load_sampling_model(const SampleOptions& options, bool pretrained, const std::string& checkpoint_path,
                        CheckpointInfo* info, const at::Device& device) {
  GPT model{nullptr};
  if (pretrained) {
    const std::string dir = find_pretrained_dir(options.init_from, options.pretrained_dir);
    model = GPT(read_pretrained_config(dir, options.init_from, 0.0));
    load_pretrained_weights(dir, model);
  } else {
    model = load_model(checkpoint_path, info);
  }
  model->eval();
  model->to(device);
  return model;
}

// --data_dir, else (init_from=resume) the dataset folder of the checkpoint's config; else empty
std::string sampling_data_dir(const SampleOptions& options, bool pretrained, const std::string& checkpoint_path,
                              const CheckpointInfo& info) {
  std::string data_dir = options.data_dir;
  if (data_dir.empty() && !pretrained) {
    try {
      data_dir = config_from_json(info.config, fmt::format("checkpoint '{}' config", checkpoint_path)).resolved_data_dir();
    } catch (const ConfigError& e) {  // the checkpoint is at fault, not the command line
      throw CheckpointError(e.what());
    }
  }
  return data_dir;
}

// data_dir's meta.json or meta.pkl, checked against the model's vocabulary; nullopt: GPT-2 BPE
std::optional<DatasetMeta> sampling_meta(const SampleOptions& options, const std::string& data_dir,
                                         int64_t vocab_size) {
  const std::optional<DatasetMeta> meta = data_dir.empty() ? std::nullopt : read_dataset_meta(data_dir);
  if (!data_dir.empty() && !meta) {
    // sample.py then assumes GPT-2 BPE; a model with fewer ids than GPT-2 was not trained on it
    if (!options.data_dir.empty()) {
      throw std::invalid_argument(fmt::format("--data_dir '{}' has no meta.json or meta.pkl", data_dir));
    }
    if (vocab_size < 50257) {
      throw TokenizerError(fmt::format(
          "no meta.json or meta.pkl in '{}' (the dataset folder of the checkpoint's config, relative to the current "
          "folder), and the model's {} ids are too few for GPT-2 BPE: pass --data_dir DIR",
          data_dir, vocab_size));
    }
  }
  if (meta && meta->tokenizer == "char" && meta->vocab_size != vocab_size) {
    throw TokenizerError(fmt::format("'{}' has a vocabulary of {} characters but the model has {} ids: is it the "
                                     "dataset the model was trained on?",
                                     data_dir, meta->vocab_size, vocab_size));
  }
  return meta;
}

Codec gpt2_codec(const std::string& vocab_dir) {
  auto bpe = std::make_shared<const Gpt2Bpe>(Gpt2Bpe::load(find_gpt2_vocab_dir(vocab_dir)));
  Codec codec;
  codec.encode = [bpe](const std::string& text) {
    const std::vector<uint32_t> ids = bpe->encode(text);  // allowed_special={"<|endoftext|>"}
    return std::vector<int64_t>(ids.begin(), ids.end());
  };
  codec.decode = [bpe](const std::vector<int64_t>& ids) {
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
  return codec;
}

// the dataset's character vocabulary, else GPT-2 BPE as in sample.py (always for gpt2*)
Codec make_codec(const std::optional<DatasetMeta>& meta, const std::string& data_dir, const std::string& vocab_dir) {
  if (meta && meta->tokenizer == "char") {
    auto tokenizer = std::make_shared<const CharTokenizer>(meta->itos);
    Codec codec;
    codec.encode = [tokenizer](const std::string& text) { return tokenizer->encode(text); };
    codec.decode = [tokenizer](const std::vector<int64_t>& ids) { return tokenizer->decode(ids); };
    return codec;
  }
  if (!meta || meta->tokenizer == "gpt2") return gpt2_codec(vocab_dir);
  throw TokenizerError(fmt::format("'{}' has a meta.pkl with vocab_size only: sampling needs its vocabulary "
                                   "(itos) or a GPT-2 BPE dataset (pass --data_dir DIR)",
                                   data_dir));
}

// --start, or the file of --start=FILE:path, as token ids the model knows
std::vector<int64_t> encode_start(const std::string& start, const Codec& codec, int64_t vocab_size) {
  const bool from_file = start.rfind("FILE:", 0) == 0;
  const std::string start_name = from_file ? fmt::format("--start file '{}'", start.substr(5)) : "--start";
  std::vector<int64_t> start_ids;
  try {
    start_ids = codec.encode(from_file ? read_file(start.substr(5)) : start);
  } catch (const TokenizerError& e) {
    throw TokenizerError(fmt::format("{}: {}", start_name, e.what()));
  }
  if (start_ids.empty()) throw std::invalid_argument(start_name + " must not be empty");
  for (int64_t id : start_ids) {
    if (id >= vocab_size) {
      throw TokenizerError(fmt::format("--start encodes to token {}, outside the model's vocabulary of {} ids",
                                       id, vocab_size));
    }
  }
  return start_ids;
}

// sample.py's loop: num_samples generations from the start `x`, each decoded and emitted
void generate_samples(const SampleOptions& options, GPT& model, const torch::Tensor& x, const Codec& codec,
                      const std::function<void(const std::string&)>& emit) {
  for (int64_t k = 0; k < options.num_samples; ++k) {
    torch::Tensor y = model->generate(x, options.max_new_tokens, options.temperature, options.top_k, options.use_kv_cache);
    torch::Tensor ids = y[0].cpu().contiguous();
    emit(codec.decode(std::vector<int64_t>(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel())));
  }
}

}  // namespace

void sample(const SampleOptions& options, const std::function<void(const std::string&)>& emit) {
  check_options(options);
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
  GPT model = load_sampling_model(options, pretrained, checkpoint_path, &info, device);

  const std::string data_dir = sampling_data_dir(options, pretrained, checkpoint_path, info);
  const std::optional<DatasetMeta> meta = sampling_meta(options, data_dir, model->config.vocab_size);
  const Codec codec = make_codec(meta, data_dir, options.vocab_dir);
  const std::vector<int64_t> start_ids = encode_start(options.start, codec, model->config.vocab_size);
  const torch::Tensor x = torch::tensor(start_ids, torch::kLong).unsqueeze(0).to(device);

  generate_samples(options, model, x, codec, emit);
}

}  // namespace nanogpt
