#include "nanogpt/base/config.h"

#include <yaml-cpp/yaml.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <variant>

#include "nanogpt/base/json_integer.h"
#include "nanogpt/base/utf8.h"
#include "nanogpt/base/device.h"

namespace nanogpt {

namespace {

using Field = std::variant<int64_t TrainConfig::*, double TrainConfig::*, bool TrainConfig::*,
                           std::string TrainConfig::*>;

struct KeySpec {
  const char* name;
  Field field;
};

const std::vector<KeySpec>& key_specs() {
  static const std::vector<KeySpec> specs = {
      {"out_dir", &TrainConfig::out_dir},
      {"eval_interval", &TrainConfig::eval_interval},
      {"log_interval", &TrainConfig::log_interval},
      {"eval_iters", &TrainConfig::eval_iters},
      {"eval_only", &TrainConfig::eval_only},
      {"always_save_checkpoint", &TrainConfig::always_save_checkpoint},
      {"init_from", &TrainConfig::init_from},
      {"wandb_log", &TrainConfig::wandb_log},
      {"wandb_project", &TrainConfig::wandb_project},
      {"wandb_run_name", &TrainConfig::wandb_run_name},
      {"dataset", &TrainConfig::dataset},
      {"gradient_accumulation_steps", &TrainConfig::gradient_accumulation_steps},
      {"batch_size", &TrainConfig::batch_size},
      {"block_size", &TrainConfig::block_size},
      {"n_layer", &TrainConfig::n_layer},
      {"n_head", &TrainConfig::n_head},
      {"n_embd", &TrainConfig::n_embd},
      {"dropout", &TrainConfig::dropout},
      {"bias", &TrainConfig::bias},
      {"learning_rate", &TrainConfig::learning_rate},
      {"max_iters", &TrainConfig::max_iters},
      {"weight_decay", &TrainConfig::weight_decay},
      {"beta1", &TrainConfig::beta1},
      {"beta2", &TrainConfig::beta2},
      {"grad_clip", &TrainConfig::grad_clip},
      {"decay_lr", &TrainConfig::decay_lr},
      {"warmup_iters", &TrainConfig::warmup_iters},
      {"lr_decay_iters", &TrainConfig::lr_decay_iters},
      {"min_lr", &TrainConfig::min_lr},
      {"backend", &TrainConfig::backend},
      {"device", &TrainConfig::device},
      {"dtype", &TrainConfig::dtype},
      {"compile", &TrainConfig::compile},
      {"data_dir", &TrainConfig::data_dir},
      {"seed", &TrainConfig::seed},
      {"num_threads", &TrainConfig::num_threads},
      {"mfu_peak_flops", &TrainConfig::mfu_peak_flops},
      {"pretrained_dir", &TrainConfig::pretrained_dir},
      {"activation_checkpointing", &TrainConfig::activation_checkpointing},
      {"checkpoint_every", &TrainConfig::checkpoint_every},
      {"loss_chunk_size", &TrainConfig::loss_chunk_size},
      {"memory_budget", &TrainConfig::memory_budget},
      {"memory_limit", &TrainConfig::memory_limit},
      {"auto_fit", &TrainConfig::auto_fit},
      {"cpu_memory", &TrainConfig::cpu_memory},
      {"bucket_cap_mb", &TrainConfig::bucket_cap_mb},
      {"ddp_timeout_s", &TrainConfig::ddp_timeout_s},
  };
  return specs;
}

const KeySpec* find_key(const std::string& key) {
  for (const auto& spec : key_specs()) {
    if (key == spec.name) return &spec;
  }
  return nullptr;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// Keys of earlier releases: what a config that still sets one is told.
const std::map<std::string, std::string>& removed_keys() {
  static const std::map<std::string, std::string> removed = {
      {"split_products",
       "it cut the CPU's matrix products into blocks of rows on OpenBLAS's threads; with PyPI's LibTorch (MKL) "
       "it did nothing, and the BLAS's own threading (num_threads) replaced it. Delete the key"}};
  return removed;
}

[[noreturn]] void unknown_key(const std::string& key, const std::string& origin) {
  if (const auto removed = removed_keys().find(key); removed != removed_keys().end()) {
    throw ConfigError(fmt::format("{}: config key '{}' was removed: {}", origin, key, removed->second));
  }
  std::string closest;
  size_t best = SIZE_MAX;
  for (const auto& spec : key_specs()) {
    const size_t d = edit_distance(key, spec.name);
    if (d < best) best = d, closest = spec.name;
  }
  throw ConfigError(fmt::format("{}: unknown config key '{}' (did you mean '{}'?)", origin, key, closest));
}

std::string strip_quotes(const std::string& s) {
  if (s.size() >= 2 && (s.front() == '\'' || s.front() == '"') && s.back() == s.front()) {
    return s.substr(1, s.size() - 2);
  }
  return s;
}

int64_t parse_int(const std::string& key, const std::string& text, const std::string& origin) {
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE) {
    throw ConfigError(fmt::format("{}: key '{}' expects an integer, got '{}'", origin, key, text));
  }
  return v;
}

double parse_float(const std::string& key, const std::string& text, const std::string& origin) {
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(v)) {
    throw ConfigError(fmt::format("{}: key '{}' expects a number, got '{}'", origin, key, text));
  }
  return v;
}

bool parse_bool(const std::string& key, const std::string& text, const std::string& origin) {
  if (text == "True" || text == "true") return true;
  if (text == "False" || text == "false") return false;
  throw ConfigError(fmt::format("{}: key '{}' expects true or false, got '{}'", origin, key, text));
}

// The line of a "---" that starts a second YAML document (one after a line with content), or
// 0. Found in the text because yaml-cpp's LoadAll loops forever on some malformed input (the
// config fuzzer's find), and LoadFile reads the first document alone.
int second_document_line(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  bool content = false;
  int number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    const bool marker = line.rfind("---", 0) == 0 && (line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r');
    if (marker && content) return number;
    const size_t first = line.find_first_not_of(" \t\r");
    if (!marker && first != std::string::npos && line[first] != '#') content = true;
  }
  return 0;
}

// "a.yaml:3: " for keys set in one place, "a.yaml:3 (n_embd), command line (n_head): " for
// several; empty where every key kept its default.
std::string origins_prefix(const std::vector<std::string>& keys, const KeyOrigins& origins) {
  std::vector<std::pair<std::string, std::string>> set;  // key, origin
  for (const auto& key : keys) {
    if (auto it = origins.find(key); it != origins.end()) set.emplace_back(key, it->second);
  }
  if (set.empty()) return "";
  const bool one_place = std::all_of(set.begin(), set.end(), [&](const auto& s) { return s.second == set[0].second; });
  if (one_place) return set[0].second + ": ";
  std::string prefix;
  for (const auto& [key, origin] : set) prefix += fmt::format("{}{} ({})", prefix.empty() ? "" : ", ", origin, key);
  return prefix + ": ";
}

}  // namespace

std::string TrainConfig::resolved_data_dir() const {
  return data_dir.empty() ? (std::filesystem::path("data") / dataset).string() : data_dir;
}

TrainConfig default_config() {
  TrainConfig config;
  if (!cuda_available()) {
    config.device = "cpu";
    config.backend = "gloo";
  }
  return config;
}

const std::vector<std::string>& config_keys() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& spec : key_specs()) out.emplace_back(spec.name);
    return out;
  }();
  return names;
}

void set_config_value(TrainConfig& config, const std::string& key, const std::string& value,
                      const std::string& origin) {
  const KeySpec* spec = find_key(key);
  if (spec == nullptr) unknown_key(key, origin);
  std::visit(
      [&](auto member) {
        using T = std::decay_t<decltype(config.*member)>;
        if constexpr (std::is_same_v<T, int64_t>) {
          config.*member = parse_int(key, value, origin);
        } else if constexpr (std::is_same_v<T, double>) {
          config.*member = parse_float(key, value, origin);
        } else if constexpr (std::is_same_v<T, bool>) {
          config.*member = parse_bool(key, value, origin);
        } else {
          std::string text = strip_quotes(value);
          if (const size_t bad = first_invalid_utf8(text); bad != std::string::npos) {
            throw ConfigError(fmt::format("{}: key '{}' holds invalid UTF-8 at byte {}; expected text", origin, key, bad));
          }
          config.*member = std::move(text);
        }
      },
      spec->field);
}

void apply_yaml_file(TrainConfig& config, const std::string& path, KeyOrigins* origins) {
  if (!std::filesystem::is_regular_file(path)) {
    throw ConfigError(fmt::format("config file '{}' does not exist or is not a file", path));
  }
  if (const int line = second_document_line(path); line > 0) {
    throw ConfigError(fmt::format("{}:{}: a second YAML document starts here; expected one", path, line));
  }
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    throw ConfigError(fmt::format("{}:{}:{}: YAML syntax error: {}", path, e.mark.line + 1,
                                  e.mark.column + 1, e.msg));
  }
  if (root.IsNull()) return;
  if (!root.IsMap()) {
    throw ConfigError(fmt::format("{}: expected a mapping of config keys to values", path));
  }
  KeyOrigins seen;  // this file's keys: a key given twice is a mistake, as in a Python config
  for (const auto& item : root) {
    if (!item.first.IsScalar()) {  // "? [a, b]: 1" and other complex keys
      throw ConfigError(fmt::format("{}:{}: expected a config key name, got a list or mapping as a key", path,
                                    item.first.Mark().line + 1));
    }
    const std::string key = item.first.Scalar();
    const std::string origin = fmt::format("{}:{}", path, item.first.Mark().line + 1);
    if (const auto before = seen.find(key); before != seen.end()) {
      throw ConfigError(fmt::format("{}: key '{}' is set twice (first at {})", origin, key, before->second));
    }
    seen[key] = origin;
    if (item.second.IsNull() && item.second.Tag() != "!") {  // "batch_size:" with nothing after it
      if (find_key(key) == nullptr) unknown_key(key, origin);
      throw ConfigError(fmt::format("{}: key '{}' has no value", origin, key));
    }
    if (!item.second.IsScalar()) {
      if (find_key(key) == nullptr) unknown_key(key, origin);
      throw ConfigError(fmt::format("{}: key '{}' expects a single value, not a list or mapping", origin, key));
    }
    const YAML::Node& node = item.second;
    std::string text = node.Scalar();
    // A quoted YAML string stays a string, even "123"; only string keys accept it.
    if (node.Tag() == "!" && find_key(key) != nullptr &&
        !std::holds_alternative<std::string TrainConfig::*>(find_key(key)->field)) {
      throw ConfigError(fmt::format("{}: key '{}' expects a {} value, got the string \"{}\"", origin, key,
                                    std::holds_alternative<bool TrainConfig::*>(find_key(key)->field) ? "boolean" : "numeric",
                                    text));
    }
    set_config_value(config, key, text, origin);
    if (origins != nullptr) (*origins)[key] = origin;
  }
}

void apply_overrides(TrainConfig& config, const std::vector<std::string>& args, KeyOrigins* origins) {
  for (const auto& arg : args) {
    const auto eq = arg.find('=');
    if (arg.rfind("--", 0) != 0 || eq == std::string::npos) {
      throw ConfigError(fmt::format("override '{}' must look like --key=value", arg));
    }
    set_config_value(config, arg.substr(2, eq - 2), arg.substr(eq + 1), "command line");
    if (origins != nullptr) (*origins)[arg.substr(2, eq - 2)] = "command line";
  }
}

TrainConfig load_config(const std::string& yaml_path, const std::vector<std::string>& overrides) {
  TrainConfig config = default_config();
  KeyOrigins origins;
  if (!yaml_path.empty()) apply_yaml_file(config, yaml_path, &origins);
  apply_overrides(config, overrides, &origins);
  try {
    validate(config);
  } catch (const ConfigError& e) {
    throw ConfigError(origins_prefix(e.keys, origins) + e.what(), e.keys);
  }
  return config;
}

nlohmann::json to_json(const TrainConfig& config) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& spec : key_specs()) {
    std::visit([&](auto member) { j[spec.name] = config.*member; }, spec.field);
  }
  return j;
}

TrainConfig config_from_json(const nlohmann::json& j, const std::string& origin) {
  TrainConfig config = default_config();
  for (const auto& spec : key_specs()) {
    if (!j.contains(spec.name)) continue;
    const nlohmann::json& value = j.at(spec.name);
    std::visit(
        [&](auto member) {
          using T = std::decay_t<decltype(config.*member)>;
          if constexpr (std::is_same_v<T, int64_t>) {
            if (!json_integer_in(value, INT64_MIN, INT64_MAX)) {
              throw ConfigError(fmt::format("{}: key '{}' expects an integer, got {}", origin, spec.name, value.dump()));
            }
          }
          config.*member = value.get<T>();
        },
        spec.field);
  }
  return config;
}

std::string to_yaml(const TrainConfig& config) {
  // JSON scalars are YAML scalars: numbers, true/false and quoted strings read back the same
  std::ostringstream out;
  for (const auto& spec : key_specs()) {
    std::visit([&](auto member) { out << spec.name << ": " << nlohmann::json(config.*member).dump() << "\n"; },
               spec.field);
  }
  return out.str();
}

InitFrom InitFrom::parse(const std::string& value) {
  if (value == "scratch") return {Source::kScratch, ""};
  if (value == "resume") return {Source::kResume, ""};
  for (const char* model : {"gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"}) {
    if (value == model) return {Source::kPretrained, value};
  }
  throw ConfigError(fmt::format("config key 'init_from' must be 'scratch', 'resume', 'gpt2', 'gpt2-medium', "
                                "'gpt2-large' or 'gpt2-xl', got '{}'",
                                value),
                    {"init_from"});
}

}  // namespace nanogpt
