#include "nanogpt/interop/pretrained.h"

#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "nanogpt/base/fileio.h"
#include "nanogpt/formats/safetensors.h"
#include "nanogpt/formats/torch_file.h"
#include "nanogpt/base/json_integer.h"

namespace nanogpt {

namespace fs = std::filesystem;

namespace {

struct Gpt2Shape {
  const char* name;
  int64_t n_layer, n_head, n_embd;
};
// nanoGPT's from_pretrained table; vocab 50257 and block 1024 for all four.
constexpr Gpt2Shape kGpt2Shapes[] = {
    {"gpt2", 12, 12, 768}, {"gpt2-medium", 24, 16, 1024}, {"gpt2-large", 36, 20, 1280}, {"gpt2-xl", 48, 25, 1600}};

const Gpt2Shape& shape_of(const std::string& model_type) {
  for (const auto& shape : kGpt2Shapes) {
    if (model_type == shape.name) return shape;
  }
  throw std::invalid_argument(fmt::format("'{}' is not one of gpt2, gpt2-medium, gpt2-large, gpt2-xl", model_type));
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// OpenAI's checkpoints use a Conv1D module for these, which stores the weight transposed.
bool is_conv1d(const std::string& name) {
  for (const char* tail : {".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight"}) {
    if (ends_with(name, tail)) return true;
  }
  return false;
}

bool has_weights(const fs::path& dir) {
  return fs::is_regular_file(dir / "model.safetensors") || fs::is_regular_file(dir / "pytorch_model.bin");
}

// The folder's tensors under nanoGPT's names ("transformer." prefixed), buffers dropped.
std::map<std::string, at::Tensor> read_hf_tensors(const std::string& dir) {
  std::map<std::string, at::Tensor> raw;
  const fs::path safetensors = fs::path(dir) / "model.safetensors", bin = fs::path(dir) / "pytorch_model.bin";
  if (fs::is_regular_file(safetensors)) {
    raw = read_safetensors(safetensors.string());
  } else if (fs::is_regular_file(bin)) {
    try {
      TorchFile file(bin.string());
      if (file.root().kind != PickleValue::Kind::dict) throw PickleError("it does not hold a state_dict");
      for (const auto& [key, value] : file.root().entries) {
        if (key->kind == PickleValue::Kind::string) raw[key->text] = file.tensor(*value, key->text);
      }
    } catch (const PickleError& e) {
      throw std::runtime_error(fmt::format("cannot read '{}': {}", bin.string(), e.what()));
    }
  } else {
    throw std::runtime_error(fmt::format("'{}' holds neither model.safetensors nor pytorch_model.bin", dir));
  }
  std::map<std::string, at::Tensor> tensors;
  for (auto& [name, tensor] : raw) {
    if (ends_with(name, ".attn.bias") || ends_with(name, ".attn.masked_bias")) continue;  // masks, not weights
    const bool prefixed = name.rfind("transformer.", 0) == 0 || name.rfind("lm_head.", 0) == 0;
    tensors[prefixed ? name : "transformer." + name] = tensor;
  }
  return tensors;
}

}  // namespace

bool is_pretrained_gpt2(const std::string& name) {
  for (const auto& shape : kGpt2Shapes) {
    if (name == shape.name) return true;
  }
  return false;
}

std::string find_pretrained_dir(const std::string& model_type, const std::string& configured_dir) {
  shape_of(model_type);
  std::vector<std::string> looked;
  auto found = [&](const fs::path& dir) {
    looked.push_back(dir.string());
    return has_weights(dir);
  };
  if (!configured_dir.empty()) {
    if (found(configured_dir)) return configured_dir;
  } else {
    if (const char* root = std::getenv("NANOGPT_PRETRAINED_DIR"); root != nullptr && found(fs::path(root) / model_type)) {
      return (fs::path(root) / model_type).string();
    }
    const char* hf_home = std::getenv("HF_HOME");
    const char* home = std::getenv("HOME");
    const fs::path hub = hf_home != nullptr ? fs::path(hf_home) / "hub"
                                             : fs::path(home != nullptr ? home : ".") / ".cache/huggingface/hub";
    for (const std::string repo : {"models--" + model_type, "models--openai-community--" + model_type}) {
      std::error_code ec;
      for (const auto& snapshot : fs::directory_iterator(hub / repo / "snapshots", ec)) {
        if (found(snapshot.path())) return snapshot.path().string();
      }
      if (ec) looked.push_back((hub / repo / "snapshots").string());
    }
  }
  throw std::runtime_error(fmt::format(
      "no {} weights found (model.safetensors or pytorch_model.bin with config.json) in: {}. This port downloads "
      "no weights; fetch them once, e.g. `huggingface-cli download {} config.json model.safetensors --local-dir DIR`, "
      "then set pretrained_dir: DIR (or NANOGPT_PRETRAINED_DIR to the folder holding {}/)",
      model_type, fmt::join(looked, ", "), model_type, model_type));
}

GPTConfig read_pretrained_config(const std::string& dir, const std::string& model_type, double dropout,
                                 std::string* note) {
  const Gpt2Shape& standard = shape_of(model_type);
  GPTConfig args{1024, 50257, standard.n_layer, standard.n_head, standard.n_embd, dropout, true};
  const fs::path config_path = fs::path(dir) / "config.json";
  if (fs::is_regular_file(config_path)) {
    try {
      const auto j = nlohmann::json::parse(read_file(config_path.string()));
      auto size = [&](const char* key) {
        const nlohmann::json& value = j.at(key);
        const std::optional<int64_t> size = json_integer_in(value, 1, kMaxModelSize);
        if (!size) {
          throw std::runtime_error(fmt::format("'{}': {} must be an integer in 1..{}, got {}", config_path.string(),
                                               key, kMaxModelSize, value.dump()));
        }
        return *size;
      };
      args.n_layer = size("n_layer");
      args.n_head = size("n_head");
      args.n_embd = size("n_embd");
      args.vocab_size = size("vocab_size");
      args.block_size = size(j.contains("n_positions") ? "n_positions" : "n_ctx");
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error(fmt::format("'{}': expected GPT-2's n_layer, n_head, n_embd, vocab_size and "
                                           "n_positions: {}",
                                           config_path.string(), e.what()));
    }
  } else {  // the shape the tensors have; heads from the table
    const auto tensors = read_hf_tensors(dir);
    auto tensor = [&](const std::string& name) {
      auto it = tensors.find(name);
      if (it == tensors.end()) throw std::runtime_error(fmt::format("'{}' has no config.json and no '{}'", dir, name));
      return it->second;
    };
    args.vocab_size = tensor("transformer.wte.weight").size(0);
    args.n_embd = tensor("transformer.wte.weight").size(1);
    args.block_size = tensor("transformer.wpe.weight").size(0);
    args.n_layer = 0;
    while (tensors.count(fmt::format("transformer.h.{}.ln_1.weight", args.n_layer))) ++args.n_layer;
  }
  if (note != nullptr && (args.n_layer != standard.n_layer || args.n_head != standard.n_head ||
                          args.n_embd != standard.n_embd || args.vocab_size != 50257 || args.block_size != 1024)) {
    *note = fmt::format("note: '{}' holds n_layer={}, n_head={}, n_embd={}, vocab_size={}, block_size={}, not {}'s "
                        "standard shape; using the folder's",
                        dir, args.n_layer, args.n_head, args.n_embd, args.vocab_size, args.block_size, model_type);
  }
  return args;
}

void load_pretrained_weights(const std::string& dir, GPT& model) {
  auto tensors = read_hf_tensors(dir);
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_parameters()) {
    auto found = tensors.find(item.key());
    if (found == tensors.end()) throw std::runtime_error(fmt::format("'{}' lacks tensor '{}'", dir, item.key()));
    at::Tensor weight = is_conv1d(item.key()) ? found->second.t() : found->second;
    if (weight.sizes() != item.value().sizes()) {
      throw std::runtime_error(fmt::format("'{}': tensor '{}' has shape {} (after nanoGPT's conversion), the model "
                                           "expects {}",
                                           dir, item.key(), fmt::join(weight.sizes(), "x"),
                                           fmt::join(item.value().sizes(), "x")));
    }
    item.value().copy_(weight);
    tensors.erase(found);
  }
  tensors.erase("lm_head.weight");  // tied to wte
  if (!tensors.empty()) {
    throw std::runtime_error(fmt::format("'{}' has tensor '{}', which a GPT-2 model does not have", dir, tensors.begin()->first));
  }
}

void export_huggingface(GPT& model, const std::string& out_dir) {
  const GPTConfig& c = model->config;
  if (!c.bias) {
    throw std::invalid_argument("Hugging Face's GPT-2 has biases in every Linear and LayerNorm; this model was built "
                                "with bias: false, so it cannot be exported as GPT2LMHeadModel");
  }
  create_folder(out_dir, "the export folder");
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& item : model->named_parameters()) {
    const at::Tensor weight = item.value().detach().cpu();
    tensors.emplace_back(item.key(), is_conv1d(item.key()) ? weight.t().contiguous() : weight);
  }
  write_safetensors((fs::path(out_dir) / "model.safetensors").string(), tensors);
  nlohmann::ordered_json config = {
      {"architectures", {"GPT2LMHeadModel"}},
      {"model_type", "gpt2"},
      {"activation_function", "gelu"},  // nanoGPT's exact GELU (OpenAI's GPT-2 used the tanh form)
      {"n_layer", c.n_layer},
      {"n_head", c.n_head},
      {"n_embd", c.n_embd},
      {"n_positions", c.block_size},
      {"n_ctx", c.block_size},
      {"vocab_size", c.vocab_size},
      {"layer_norm_epsilon", 1e-5},
      {"resid_pdrop", c.dropout},
      {"embd_pdrop", c.dropout},
      {"attn_pdrop", c.dropout},
      {"initializer_range", 0.02},
      {"tie_word_embeddings", true},
      {"torch_dtype", "float32"}};
  // GPT-2's <|endoftext|>; transformers assumes 50256 when the keys are absent, which a smaller
  // vocabulary (a character set) does not hold
  const nlohmann::ordered_json end_of_text = c.vocab_size > 50256 ? nlohmann::ordered_json(50256) : nullptr;
  config["bos_token_id"] = config["eos_token_id"] = end_of_text;
  write_file_atomically((fs::path(out_dir) / "config.json").string(),
                        [&](std::ostream& out) { out << config.dump(2) << "\n"; });
}

}  // namespace nanogpt
