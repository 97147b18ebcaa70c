#include "nanogpt/interop/checkpoint.h"

#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <sstream>

#include <fmt/format.h>

#include "nanogpt/base/compat.h"
#include "nanogpt/model/fused_adamw.h"
#include "nanogpt/formats/torch_file.h"
#include "nanogpt/base/json_integer.h"

namespace nanogpt {

namespace {

// torch.compile wraps the model; nanoGPT saves the wrapper's state_dict when compile=True.
constexpr const char* kCompiledPrefix = "_orig_mod.";

[[noreturn]] void fail(const std::string& path, const std::string& why) {
  throw CheckpointError(fmt::format("checkpoint '{}': {}", path, why));
}

const PickleValue& entry(const PickleValue& dict, const std::string& key, const std::string& path) {
  if (dict.kind != PickleValue::Kind::dict) fail(path, fmt::format("expected a dict holding '{}'", key));
  PickleRef value = dict.get(key);
  if (!value) fail(path, fmt::format("has no '{}' entry", key));
  return *value;
}

// The largest iter_num or AdamW step: 2^53, up to which a double holds every integer.
constexpr int64_t kMaxCount = int64_t{1} << 53;

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// --- plain values: model_args, config, numbers -------------------------------------------

PickleRef to_pickle(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::boolean: return pickle_bool(j.get<bool>());
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned: return pickle_int(j.get<int64_t>());
    case nlohmann::json::value_t::number_float: return pickle_float(j.get<double>());
    case nlohmann::json::value_t::string: return pickle_string(j.get<std::string>());
    case nlohmann::json::value_t::object: {
      std::vector<std::pair<PickleRef, PickleRef>> entries;
      for (const auto& [key, value] : j.items()) entries.emplace_back(pickle_string(key), to_pickle(value));
      return pickle_dict(std::move(entries));
    }
    case nlohmann::json::value_t::array: {
      std::vector<PickleRef> items;
      for (const auto& value : j) items.push_back(to_pickle(value));
      return pickle_list(std::move(items));
    }
    default: return pickle_none();
  }
}

// Plain data as JSON; a 0-d tensor (nanoGPT's best_val_loss) as its number.
nlohmann::json plain_json(TorchFile& file, const PickleValue& v, const std::string& what) {
  using Kind = PickleValue::Kind;
  switch (v.kind) {
    case Kind::none: return nullptr;
    case Kind::boolean: return v.boolean;
    case Kind::integer: return v.integer;
    case Kind::floating: return v.floating;
    case Kind::string: return v.text;
    case Kind::list:
    case Kind::tuple: {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& item : v.items) out.push_back(plain_json(file, *item, what));
      return out;
    }
    case Kind::dict: {
      nlohmann::json out = nlohmann::json::object();
      for (const auto& [key, value] : v.entries) {
        if (key->kind == Kind::string) out[key->text] = plain_json(file, *value, what + "." + key->text);
      }
      return out;
    }
    default:
      if (file.is_tensor(v)) {
        at::Tensor t = file.tensor(v, what);
        if (t.numel() == 1) return t.to(at::kDouble).item<double>();
      }
      fail(file.path(), fmt::format("'{}' is not plain data", what));
  }
}

nlohmann::json model_args_json(const GPTConfig& c) {
  return {{"n_layer", c.n_layer}, {"n_head", c.n_head},   {"n_embd", c.n_embd}, {"block_size", c.block_size},
          {"bias", c.bias},       {"vocab_size", c.vocab_size}, {"dropout", c.dropout}};
}

GPTConfig model_args_from_json(const nlohmann::json& j, const std::string& path) {
  auto size = [&](const char* key) {
    const nlohmann::json& value = j.at(key);
    const std::optional<int64_t> size = json_integer_in(value, 1, kMaxModelSize);
    if (!size) {
      fail(path, fmt::format("model_args '{}' must be an integer in 1..{}, got {}", key, kMaxModelSize, value.dump()));
    }
    return *size;
  };
  GPTConfig c;
  try {
    c.n_layer = size("n_layer");
    c.n_head = size("n_head");
    c.n_embd = size("n_embd");
    c.block_size = size("block_size");
    c.bias = j.at("bias").get<bool>();
    c.vocab_size = size("vocab_size");
    c.dropout = j.value("dropout", 0.0);
  } catch (const nlohmann::json::exception& e) {
    fail(path, fmt::format("malformed model_args: {}", e.what()));
  }
  if (c.n_embd % c.n_head != 0) {
    fail(path, fmt::format("model_args n_embd ({}) must be divisible by n_head ({})", c.n_embd, c.n_head));
  }
  return c;
}

// --- the model: nanoGPT's state_dict names ------------------------------------------------

PickleRef model_state(TorchFileWriter& writer, GPT& model) {
  std::vector<std::pair<PickleRef, PickleRef>> entries;
  for (const auto& item : model->named_parameters()) {
    entries.emplace_back(pickle_string(item.key()), writer.tensor(item.value().detach()));
  }
  // the tied head: the same storage as wte, as in Python's state_dict
  entries.emplace_back(pickle_string("lm_head.weight"), writer.tensor(model->wte->weight.detach()));
  return pickle_ordered_dict(std::move(entries));
}

void load_model_state(TorchFile& file, const PickleValue& state, GPT& model) {
  if (state.kind != PickleValue::Kind::dict) fail(file.path(), "'model' is not a state_dict");
  std::map<std::string, const PickleValue*> saved;
  for (const auto& [key, value] : state.entries) {
    if (key->kind != PickleValue::Kind::string) fail(file.path(), "'model' has a key that is not a string");
    std::string name = key->text;
    if (name.rfind(kCompiledPrefix, 0) == 0) name = name.substr(std::strlen(kCompiledPrefix));
    saved[name] = value.get();
  }
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_parameters()) {
    auto found = saved.find(item.key());
    if (found == saved.end()) fail(file.path(), fmt::format("lacks tensor '{}'", item.key()));
    const at::Tensor tensor = file.tensor(*found->second, "model." + item.key());
    if (!at::isFloatingType(tensor.scalar_type())) {
      fail(file.path(), fmt::format("tensor '{}' holds {}; weights must be floating point", item.key(),
                                    c10::toString(tensor.scalar_type())));
    }
    if (tensor.sizes() != item.value().sizes()) {
      fail(file.path(), fmt::format("tensor '{}' has shape {} but the model expects {}", item.key(),
                                    fmt::join(tensor.sizes(), "x"), fmt::join(item.value().sizes(), "x")));
    }
    item.value().copy_(tensor);
    saved.erase(found);
  }
  saved.erase("lm_head.weight");  // tied to transformer.wte.weight
  for (const auto& [name, value] : saved) {
    if (!ends_with(name, ".attn.bias") && !ends_with(name, ".attn.masked_bias")) {
      fail(file.path(), fmt::format("has tensor '{}', which this model does not have", name));
    }
  }
}

// --- AdamW: PyTorch's optimizer.state_dict() layout ---------------------------------------

PickleRef optimizer_state(TorchFileWriter& writer, const torch::optim::AdamW& optimizer) {
  auto& states = const_cast<torch::optim::AdamW&>(optimizer).state();
  std::vector<std::pair<PickleRef, PickleRef>> state;
  std::vector<PickleRef> groups;
  int64_t index = 0;
  for (const auto& group : optimizer.param_groups()) {
    const auto& o = static_cast<const torch::optim::AdamWOptions&>(group.options());
    std::vector<PickleRef> params;
    for (const auto& p : group.params()) {
      auto found = states.find(optimizer_state_key(p));
      if (found != states.end()) {
        const auto& s = static_cast<const torch::optim::AdamWParamState&>(*found->second);
        std::vector<std::pair<PickleRef, PickleRef>> entries = {
            {pickle_string("step"), writer.tensor(at::scalar_tensor(static_cast<double>(s.step()), at::kFloat))},
            {pickle_string("exp_avg"), writer.tensor(s.exp_avg().detach())},
            {pickle_string("exp_avg_sq"), writer.tensor(s.exp_avg_sq().detach())}};
        if (s.max_exp_avg_sq().defined()) {
          entries.emplace_back(pickle_string("max_exp_avg_sq"), writer.tensor(s.max_exp_avg_sq().detach()));
        }
        state.emplace_back(pickle_int(index), pickle_dict(std::move(entries)));
      }
      params.push_back(pickle_int(index++));
    }
    groups.push_back(pickle_dict({{pickle_string("lr"), pickle_float(o.lr())},
                                  {pickle_string("betas"), pickle_tuple({pickle_float(std::get<0>(o.betas())),
                                                                         pickle_float(std::get<1>(o.betas()))})},
                                  {pickle_string("eps"), pickle_float(o.eps())},
                                  {pickle_string("weight_decay"), pickle_float(o.weight_decay())},
                                  {pickle_string("amsgrad"), pickle_bool(o.amsgrad())},
                                  {pickle_string("foreach"), pickle_none()},
                                  {pickle_string("maximize"), pickle_bool(false)},
                                  {pickle_string("capturable"), pickle_bool(false)},
                                  {pickle_string("params"), pickle_list(std::move(params))}}));
  }
  return pickle_dict({{pickle_string("state"), pickle_dict(std::move(state))},
                      {pickle_string("param_groups"), pickle_list(std::move(groups))}});
}

double number(TorchFile& file, const PickleValue& v, const std::string& what) {
  const nlohmann::json j = plain_json(file, v, what);
  if (!j.is_number()) fail(file.path(), fmt::format("'{}' is not a number", what));
  return j.get<double>();
}

// A count saved as a Python int (iter_num) or as a float tensor (AdamW's step). Casting a
// float past int64, or NaN, to an integer has undefined behaviour: the range is checked first.
int64_t count(TorchFile& file, const PickleValue& v, const std::string& what) {
  const nlohmann::json j = plain_json(file, v, what);
  const double value = j.is_number() ? j.get<double>() : std::nan("");
  if (!(value >= 0 && value <= static_cast<double>(kMaxCount)) || value != std::floor(value)) {
    fail(file.path(), fmt::format("'{}' must be a whole number in 0..{}, got {}", what, kMaxCount, j.dump()));
  }
  return static_cast<int64_t>(value);
}

void load_optimizer_state(TorchFile& file, const PickleValue& saved, torch::optim::AdamW& optimizer) {
  const std::string& path = file.path();
  const PickleValue& groups = entry(saved, "param_groups", path);
  const PickleValue& state = entry(saved, "state", path);
  if (groups.kind != PickleValue::Kind::list || groups.items.size() != optimizer.param_groups().size()) {
    fail(path, fmt::format("the optimizer has {} parameter groups, the checkpoint's do not match",
                           optimizer.param_groups().size()));
  }
  std::map<int64_t, const PickleValue*> state_by_index;
  for (const auto& [key, value] : state.entries) {
    if (key->kind != PickleValue::Kind::integer) fail(path, "optimizer state has a key that is not an integer");
    state_by_index[key->integer] = value.get();
  }
  auto& states = optimizer.state();
  for (size_t g = 0; g < groups.items.size(); ++g) {
    auto& group = optimizer.param_groups()[g];
    const PickleValue& saved_group = *groups.items[g];
    const PickleValue& params = entry(saved_group, "params", path);
    if (params.kind != PickleValue::Kind::list || params.items.size() != group.params().size()) {
      fail(path, fmt::format("optimizer group {} holds {} parameters here and a different number in the checkpoint",
                             g, group.params().size()));
    }
    auto& o = static_cast<torch::optim::AdamWOptions&>(group.options());
    const PickleValue& betas = entry(saved_group, "betas", path);
    if (betas.kind != PickleValue::Kind::tuple && betas.kind != PickleValue::Kind::list) fail(path, "betas is not a pair");
    if (betas.items.size() != 2) fail(path, "betas is not a pair");
    o.lr(number(file, entry(saved_group, "lr", path), "lr"));
    o.betas({number(file, *betas.items[0], "betas"), number(file, *betas.items[1], "betas")});
    o.eps(number(file, entry(saved_group, "eps", path), "eps"));
    o.weight_decay(number(file, entry(saved_group, "weight_decay", path), "weight_decay"));
    for (size_t k = 0; k < params.items.size(); ++k) {
      const at::Tensor& p = group.params()[k];
      if (params.items[k]->kind != PickleValue::Kind::integer) fail(path, "optimizer params are not integers");
      const int64_t index = params.items[k]->integer;
      auto found = state_by_index.find(index);
      if (found == state_by_index.end()) continue;  // no step taken yet for this parameter
      auto moment = [&](const char* name) {
        at::Tensor t = file.tensor(entry(*found->second, name, path), fmt::format("optimizer.state.{}.{}", index, name));
        if (t.sizes() != p.sizes()) {
          fail(path, fmt::format("optimizer state {}.{} has shape {}, its parameter {}", index, name,
                                 fmt::join(t.sizes(), "x"), fmt::join(p.sizes(), "x")));
        }
        return t.to(p.options()).clone();
      };
      auto param_state = std::make_unique<torch::optim::AdamWParamState>();
      param_state->step(count(file, entry(*found->second, "step", path), fmt::format("optimizer.state.{}.step", index)));
      param_state->exp_avg(moment("exp_avg"));
      param_state->exp_avg_sq(moment("exp_avg_sq"));
      if (found->second->get("max_exp_avg_sq")) param_state->max_exp_avg_sq(moment("max_exp_avg_sq"));
      states[optimizer_state_key(p)] = std::move(param_state);
    }
  }
}

// --- the whole file -----------------------------------------------------------------------

CheckpointInfo info_from(TorchFile& file) {
  const PickleValue& root = file.root();
  const std::string& path = file.path();
  CheckpointInfo info;
  info.model_args = model_args_from_json(plain_json(file, entry(root, "model_args", path), "model_args"), path);
  info.iter_num = count(file, entry(root, "iter_num", path), "iter_num");
  info.best_val_loss = number(file, entry(root, "best_val_loss", path), "best_val_loss");
  PickleRef config = root.get("config");
  info.config = config ? plain_json(file, *config, "config") : nlohmann::json::object();
  if (PickleRef rng = root.get("rng_state")) info.rng_state = file.tensor(*rng, "rng_state").clone();
  return info;
}

// Reading errors deep in the pickle (a tensor past its storage, a missing record) carry the
// path already; they become CheckpointErrors for the callers.
template <typename F>
auto reading(const std::string& path, F&& read) {
  try {
    return read();
  } catch (const PickleError& e) {
    throw CheckpointError(fmt::format("checkpoint '{}' cannot be read: {}", path, e.what()));
  }
}

TorchFile open_checkpoint(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) {
    throw CheckpointError(fmt::format("checkpoint '{}' {}", path,
                                      std::filesystem::exists(path) ? "is not a file" : "does not exist"));
  }
  return reading(path, [&] { return TorchFile(path); });
}

}  // namespace

void save_checkpoint(const std::string& path, GPT& model, const torch::optim::AdamW* optimizer,
                     const CheckpointInfo& info) {
  TorchFileWriter writer;
  std::vector<std::pair<PickleRef, PickleRef>> root = {{pickle_string("model"), model_state(writer, model)}};
  if (optimizer != nullptr) root.emplace_back(pickle_string("optimizer"), optimizer_state(writer, *optimizer));
  root.emplace_back(pickle_string("model_args"), to_pickle(model_args_json(info.model_args)));
  root.emplace_back(pickle_string("iter_num"), pickle_int(info.iter_num));
  root.emplace_back(pickle_string("best_val_loss"), pickle_float(info.best_val_loss));
  root.emplace_back(pickle_string("config"), to_pickle(info.config));
  if (info.rng_state.defined()) root.emplace_back(pickle_string("rng_state"), writer.tensor(info.rng_state));
  writer.save(path, *pickle_dict(std::move(root)));
}

CheckpointInfo read_checkpoint_info(const std::string& path) {
  TorchFile file = open_checkpoint(path);
  return reading(path, [&] { return info_from(file); });
}

void load_checkpoint_state(const std::string& path, GPT& model, torch::optim::AdamW* optimizer) {
  TorchFile file = open_checkpoint(path);
  reading(path, [&] {
    load_model_state(file, entry(file.root(), "model", path), model);
    if (optimizer != nullptr) {
      PickleRef saved = file.root().get("optimizer");
      if (!saved) fail(path, "has no optimizer state to resume from");
      load_optimizer_state(file, *saved, *optimizer);
    }
    return 0;
  });
}

GPT load_model(const std::string& path, CheckpointInfo* info_out) {
  TorchFile file = open_checkpoint(path);  // read once for the metadata and the weights
  return reading(path, [&] {
    CheckpointInfo info = info_from(file);
    GPT model(info.model_args);
    load_model_state(file, entry(file.root(), "model", path), model);
    if (info_out != nullptr) *info_out = std::move(info);
    return model;
  });
}

}  // namespace nanogpt
