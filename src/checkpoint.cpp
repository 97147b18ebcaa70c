#include "nanogpt/checkpoint.h"

#include <torch/torch.h>

#include <filesystem>

#include <fmt/format.h>

#include "nanogpt/fileio.h"

namespace nanogpt {

namespace {

nlohmann::json model_args_json(const GPTConfig& c) {
  return {{"n_layer", c.n_layer}, {"n_head", c.n_head},   {"n_embd", c.n_embd}, {"block_size", c.block_size},
          {"bias", c.bias},       {"vocab_size", c.vocab_size}, {"dropout", c.dropout}};
}

GPTConfig model_args_from_json(const nlohmann::json& j) {
  GPTConfig c;
  c.n_layer = j.at("n_layer").get<int64_t>();
  c.n_head = j.at("n_head").get<int64_t>();
  c.n_embd = j.at("n_embd").get<int64_t>();
  c.block_size = j.at("block_size").get<int64_t>();
  c.bias = j.at("bias").get<bool>();
  c.vocab_size = j.at("vocab_size").get<int64_t>();
  c.dropout = j.at("dropout").get<double>();
  return c;
}

torch::serialize::InputArchive open_archive(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) {
    throw CheckpointError(fmt::format("checkpoint '{}' does not exist", path));
  }
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path);
  } catch (const std::exception& e) {
    throw CheckpointError(fmt::format("checkpoint '{}' cannot be read (truncated or not a checkpoint of this port): {}",
                                      path, std::string(e.what()).substr(0, 200)));
  }
  return archive;
}

std::string read_string(torch::serialize::InputArchive& archive, const std::string& key, const std::string& path) {
  c10::IValue value;
  if (!archive.try_read(key, value) || !value.isString()) {
    throw CheckpointError(fmt::format("checkpoint '{}' has no '{}' entry", path, key));
  }
  return value.toStringRef();
}

}  // namespace

void save_checkpoint(const std::string& path, GPT& model, const torch::optim::AdamW* optimizer,
                     const CheckpointInfo& info) {
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive model_archive;
  for (const auto& item : model->named_parameters()) model_archive.write(item.key(), item.value().detach().cpu());
  archive.write("model", model_archive);
  if (optimizer != nullptr) {
    torch::serialize::OutputArchive optimizer_archive;
    optimizer->save(optimizer_archive);
    archive.write("optimizer", optimizer_archive);
  }
  nlohmann::json meta = {{"format", "nanogpt-cpp/1"},
                         {"model_args", model_args_json(info.model_args)},
                         {"iter_num", info.iter_num},
                         {"best_val_loss", info.best_val_loss},
                         {"config", info.config}};
  archive.write("meta", c10::IValue(meta.dump()));
  if (info.rng_state.defined()) archive.write("rng_state", info.rng_state);

  const std::string tmp_path = path + ".tmp";
  try {
    archive.save_to(tmp_path);
  } catch (const std::exception& e) {
    std::error_code ec;
    std::filesystem::remove(tmp_path, ec);
    throw CheckpointError(fmt::format("cannot write checkpoint '{}' (disk full?): {}", path,
                                      std::string(e.what()).substr(0, 200)));
  }
  commit_file(tmp_path, path);
}

namespace {

CheckpointInfo info_from(torch::serialize::InputArchive& archive, const std::string& path) {
  CheckpointInfo info;
  try {
    const auto meta = nlohmann::json::parse(read_string(archive, "meta", path));
    info.model_args = model_args_from_json(meta.at("model_args"));
    info.iter_num = meta.at("iter_num").get<int64_t>();
    info.best_val_loss = meta.at("best_val_loss").get<double>();
    info.config = meta.at("config");
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(fmt::format("checkpoint '{}': malformed metadata: {}", path, e.what()));
  }
  torch::Tensor rng;
  if (archive.try_read("rng_state", rng)) info.rng_state = rng;
  return info;
}

void load_state_from(torch::serialize::InputArchive& archive, const std::string& path, GPT& model,
                     torch::optim::AdamW* optimizer) {
  torch::serialize::InputArchive model_archive;
  if (!archive.try_read("model", model_archive)) {
    throw CheckpointError(fmt::format("checkpoint '{}' has no model weights", path));
  }
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_parameters()) {
    torch::Tensor saved;
    if (!model_archive.try_read(item.key(), saved)) {
      throw CheckpointError(fmt::format("checkpoint '{}' lacks tensor '{}'", path, item.key()));
    }
    if (saved.sizes() != item.value().sizes()) {
      throw CheckpointError(fmt::format("checkpoint '{}': tensor '{}' has shape {} but the model expects {}", path,
                                        item.key(), fmt::join(saved.sizes(), "x"),
                                        fmt::join(item.value().sizes(), "x")));
    }
    item.value().copy_(saved);
  }
  if (optimizer != nullptr) {
    torch::serialize::InputArchive optimizer_archive;
    if (!archive.try_read("optimizer", optimizer_archive)) {
      throw CheckpointError(fmt::format("checkpoint '{}' has no optimizer state to resume from", path));
    }
    optimizer->load(optimizer_archive);
  }
}

}  // namespace

CheckpointInfo read_checkpoint_info(const std::string& path) {
  auto archive = open_archive(path);
  return info_from(archive, path);
}

void load_checkpoint_state(const std::string& path, GPT& model, torch::optim::AdamW* optimizer) {
  auto archive = open_archive(path);
  load_state_from(archive, path, model, optimizer);
}

GPT load_model(const std::string& path, CheckpointInfo* info_out) {
  auto archive = open_archive(path);  // read once for the metadata and the weights
  CheckpointInfo info = info_from(archive, path);
  GPT model(info.model_args);
  load_state_from(archive, path, model, nullptr);
  if (info_out != nullptr) *info_out = std::move(info);
  return model;
}

}  // namespace nanogpt
