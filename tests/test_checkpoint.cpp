// ckpt.pt in torch.save's format: the zip reader/writer, its allow-list, and the round trip
// with Python's torch (tests/python/checkpoint_interop.py).
#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <climits>
#include <fstream>
#include <map>
#include <tuple>

#include "nanogpt/interop/checkpoint.h"
#include "nanogpt/base/config.h"
#include "nanogpt/base/fileio.h"
#include "nanogpt/interop/pretrained.h"
#include "nanogpt/formats/torch_file.h"
#include "test_util.h"
#include "formats/zip_crc.h"

using namespace nanogpt;
using nanogpt::testing::TempDir;
using nanogpt::testing::error_of;

namespace {

// A torch.save-shaped zip with the given data.pkl and records.
void write_zip(const std::string& path, const std::string& pickle,
               const std::vector<std::pair<std::string, std::string>>& records = {}) {
  caffe2::serialize::PyTorchStreamWriter writer(path);
  writer.writeRecord("data.pkl", pickle.data(), pickle.size());
  for (const auto& [name, bytes] : records) writer.writeRecord(name, bytes.data(), bytes.size());
  writer.writeEndOfFile();
}


PickleRef storage_tensor(const std::string& key, int64_t numel, int64_t offset, std::vector<int64_t> sizes) {
  PickleRef pid = pickle_tuple({pickle_string("storage"), pickle_global("torch.FloatStorage"), pickle_string(key),
                                pickle_string("cpu"), pickle_int(numel)});
  std::vector<PickleRef> size, stride;
  for (int64_t s : sizes) size.push_back(pickle_int(s));
  for (size_t d = 0; d < sizes.size(); ++d) stride.push_back(pickle_int(d + 1 == sizes.size() ? 1 : sizes.back()));
  return pickle_reduce(pickle_global("torch._utils._rebuild_tensor_v2"),
                       pickle_tuple({pickle_persistent_id(pid), pickle_int(offset), pickle_tuple(size),
                                     pickle_tuple(stride), pickle_bool(false), pickle_ordered_dict({})}));
}

}  // namespace

TEST(TorchFile, RoundTripKeepsValuesViewsAndSharedStorage) {
  TempDir dir;
  const at::Tensor base = at::arange(12, at::kFloat).view({3, 4});
  const at::Tensor transposed = base.t();           // strides (1, 4)
  const at::Tensor row = base.select(0, 2);         // offset 8
  const at::Tensor ids = at::arange(-3, 3, at::kLong);
  const at::Tensor half = at::linspace(-2, 2, 5).to(at::kBFloat16);
  const at::Tensor flags = at::arange(3) != 1;
  const at::Tensor scalar = at::scalar_tensor(2.5, at::kDouble);
  TorchFileWriter writer;
  PickleRef root = pickle_dict({{pickle_string("base"), writer.tensor(base)},
                                {pickle_string("views"), pickle_list({writer.tensor(transposed), writer.tensor(row)})},
                                {pickle_string("ids"), writer.tensor(ids)},
                                {pickle_string("half"), writer.tensor(half)},
                                {pickle_string("flags"), writer.tensor(flags)},
                                {pickle_string("scalar"), writer.tensor(scalar)},
                                {pickle_int(7), pickle_tuple({pickle_float(0.5), pickle_none()})}});
  writer.save(dir / "x.pt", *root);

  TorchFile file(dir / "x.pt");
  const PickleValue& r = file.root();
  const at::Tensor base2 = file.tensor(*r.get("base"), "base");
  const at::Tensor transposed2 = file.tensor(*r.get("views")->items[0], "t");
  const at::Tensor row2 = file.tensor(*r.get("views")->items[1], "row");
  EXPECT_TRUE(at::equal(base2, base));
  EXPECT_TRUE(at::equal(transposed2, transposed));
  EXPECT_EQ(transposed2.strides(), transposed.strides());
  EXPECT_TRUE(at::equal(row2, row));
  EXPECT_EQ(row2.storage_offset(), 8);
  EXPECT_EQ(base2.storage().data(), row2.storage().data());  // one storage, as written
  EXPECT_TRUE(at::equal(file.tensor(*r.get("ids"), "ids"), ids));
  EXPECT_TRUE(at::equal(file.tensor(*r.get("half"), "half"), half));
  EXPECT_TRUE(at::equal(file.tensor(*r.get("flags"), "flags"), flags));
  EXPECT_EQ(file.tensor(*r.get("scalar"), "scalar").item<double>(), 2.5);
  EXPECT_EQ(r.entries.back().second->items[0]->floating, 0.5);
}

TEST(TorchFile, RefusesGlobalsOffTheAllowListAndBadTensors) {
  TempDir dir;
  // os.system('echo hi') as a REDUCE: refused by name, never run
  write_zip(dir / "evil.pt", write_pickle(*pickle_reduce(pickle_global("os.system"), pickle_tuple({pickle_string("echo hi")}))));
  EXPECT_NE(error_of([&] { TorchFile f(dir / "evil.pt"); }).find("global 'os.system' is not on the allow-list"),
            std::string::npos);
  // a tensor of 4 floats over a storage of 3
  write_zip(dir / "past.pt", write_pickle(*storage_tensor("0", 3, 0, {4})), {{"data/0", std::string(12, '\0')}});
  EXPECT_NE(error_of([&] { TorchFile f(dir / "past.pt"); }).find("reaches past its storage '0' of 3 elements"),
            std::string::npos);
  // a record shorter than its storage claims
  write_zip(dir / "short.pt", write_pickle(*storage_tensor("0", 4, 0, {2, 2})), {{"data/0", std::string(8, '\0')}});
  TorchFile short_file(dir / "short.pt");
  EXPECT_NE(error_of([&] { short_file.tensor(short_file.root(), "w"); }).find("record 'data/0' holds 8 bytes, its storage needs 16"),
            std::string::npos);
  // a missing record
  write_zip(dir / "missing.pt", write_pickle(*storage_tensor("9", 1, 0, {1})));
  TorchFile missing(dir / "missing.pt");
  EXPECT_NE(error_of([&] { missing.tensor(missing.root(), "w"); }).find("record 'data/9' is missing"), std::string::npos);
  nanogpt::testing::write_text(dir / "text.pt", "not a zip at all");
  EXPECT_NE(error_of([&] { TorchFile f(dir / "text.pt"); }).find("is not a readable torch.save zip file"), std::string::npos);
}

TEST(Checkpoint, TruncatedFileIsAClearErrorAndTheOldFileSurvivesAFailedWrite) {
  TempDir dir;
  GPT model(GPTConfig{16, 20, 1, 2, 16, 0.0, false});
  const std::string path = dir / "ckpt.pt";
  save_checkpoint(path, model, nullptr, CheckpointInfo{model->config, 5, 1.0, nlohmann::json::object(), {}});
  const std::string whole = read_file(path);
  for (size_t cut : {size_t{0}, size_t{100}, whole.size() / 2, whole.size() - 10}) {
    nanogpt::testing::write_text(dir / "cut.pt", whole.substr(0, cut));
    const std::string error = error_of([&] { load_model(dir / "cut.pt"); });
    EXPECT_NE(error.find("checkpoint '" + (dir / "cut.pt") + "'"), std::string::npos) << cut << ": " << error;
  }
  // a write into a folder that cannot hold the temporary file fails and leaves `path` alone
  std::filesystem::create_directory(dir / "ckpt2.pt.tmp");
  EXPECT_THROW(save_checkpoint(dir / "ckpt2.pt", model, nullptr, CheckpointInfo{model->config, 6, 1.0, {}, {}}),
               std::exception);
  EXPECT_EQ(read_checkpoint_info(path).iter_num, 5);
}

TEST(Checkpoint, AFlippedBitIsFoundByTheZipsCrc) {
  TempDir dir;
  GPT model(GPTConfig{16, 20, 1, 2, 16, 0.0, false});
  const std::string path = dir / "ckpt.pt";
  save_checkpoint(path, model, nullptr, CheckpointInfo{model->config, 5, 1.0, nlohmann::json::object(), {}});
  std::string bytes = read_file(path);
  const at::Tensor wte = model->named_parameters()["transformer.wte.weight"].contiguous();
  const size_t at = bytes.find(std::string(static_cast<const char*>(wte.data_ptr()), 32));
  ASSERT_NE(at, std::string::npos);
  bytes[at + 5] = static_cast<char>(bytes[at + 5] ^ 0x40);  // one bit of one weight: still a plausible float
  nanogpt::testing::write_text(dir / "flipped.pt", bytes);
  const std::string error = error_of([&] { load_model(dir / "flipped.pt"); });
  EXPECT_NE(error.find("is corrupt: its CRC-32 is"), std::string::npos) << error;
  EXPECT_NO_THROW(load_model(path));
}

TEST(ZipCrc, KnownValueAndContinuation) {
  const std::string text = "123456789";
  EXPECT_EQ(zip_crc::crc32(text.data(), text.size()), 0xCBF43926u);  // the CRC-32 check value
  EXPECT_EQ(zip_crc::crc32(text.data() + 4, 5, zip_crc::crc32(text.data(), 4)), 0xCBF43926u);
  EXPECT_EQ(zip_crc::crc32(text.data(), 0), 0u);
  std::string long_text;
  for (int i = 0; i < 1000; ++i) long_text += static_cast<char>(i * 7);
  uint32_t bytewise = 0;
  for (char c : long_text) bytewise = zip_crc::crc32(&c, 1, bytewise);  // the one-table path only
  EXPECT_EQ(zip_crc::crc32(long_text.data(), long_text.size()), bytewise);
}

namespace {

// A checkpoint of GPTConfig{8, 11, 1, 2, 16} (block, vocab, layers, heads, width) with
// `changed` in place of a model_args entry or of iter_num, and AdamW's state for the first
// parameter with the given step (a float tensor, as PyTorch saves it).
void write_checkpoint_with(const std::string& path, const std::map<std::string, PickleRef>& changed,
                           const at::Tensor& step = at::scalar_tensor(1.0, at::kFloat)) {
  GPT model(GPTConfig{8, 11, 1, 2, 16, 0.0, true});
  auto optimizer = model->configure_optimizers(0.1, 1e-3, {0.9, 0.95});
  TorchFileWriter writer;
  auto value = [&](const std::string& key, PickleRef otherwise) {
    return changed.count(key) ? changed.at(key) : otherwise;
  };
  std::vector<std::pair<PickleRef, PickleRef>> weights, args;
  for (const auto& item : model->named_parameters()) {
    weights.emplace_back(pickle_string(item.key()), writer.tensor(item.value().detach()));
  }
  for (const auto& [key, size] : std::vector<std::pair<std::string, int64_t>>{
           {"n_layer", 1}, {"n_head", 2}, {"n_embd", 16}, {"block_size", 8}, {"vocab_size", 11}}) {
    args.emplace_back(pickle_string(key), value(key, pickle_int(size)));
  }
  args.emplace_back(pickle_string("bias"), pickle_bool(true));
  int64_t index = 0;
  std::vector<PickleRef> groups;
  for (const auto& group : optimizer->param_groups()) {
    std::vector<PickleRef> params;
    for (size_t k = 0; k < group.params().size(); ++k) params.push_back(pickle_int(index++));
    groups.push_back(pickle_dict({{pickle_string("lr"), pickle_float(1e-3)},
                                  {pickle_string("betas"), pickle_tuple({pickle_float(0.9), pickle_float(0.95)})},
                                  {pickle_string("eps"), pickle_float(1e-8)},
                                  {pickle_string("weight_decay"), pickle_float(0.0)},
                                  {pickle_string("params"), pickle_list(std::move(params))}}));
  }
  const at::Tensor first = optimizer->param_groups()[0].params()[0];
  PickleRef moments = pickle_dict({{pickle_string("step"), writer.tensor(step)},
                                   {pickle_string("exp_avg"), writer.tensor(at::zeros_like(first))},
                                   {pickle_string("exp_avg_sq"), writer.tensor(at::zeros_like(first))}});
  PickleRef adamw = pickle_dict({{pickle_string("state"), pickle_dict({{pickle_int(0), moments}})},
                                 {pickle_string("param_groups"), pickle_list(std::move(groups))}});
  writer.save(path, *pickle_dict({{pickle_string("model"), pickle_ordered_dict(std::move(weights))},
                                  {pickle_string("optimizer"), adamw},
                                  {pickle_string("model_args"), pickle_dict(std::move(args))},
                                  {pickle_string("iter_num"), value("iter_num", pickle_int(3))},
                                  {pickle_string("best_val_loss"), pickle_float(2.0)}}));
}

}  // namespace

TEST(Checkpoint, SizesAndCountsMustBeIntegersInRange) {
  TempDir dir;
  const std::string path = dir / "ckpt.pt";
  auto load_with_optimizer = [&] {
    GPT model = load_model(path);
    auto optimizer = model->configure_optimizers(0.1, 1e-3, {0.9, 0.95});
    load_checkpoint_state(path, model, optimizer.get());
  };
  write_checkpoint_with(path, {{"iter_num", pickle_float(7.0)}}, at::scalar_tensor(5.0, at::kFloat));
  EXPECT_EQ(error_of(load_with_optimizer), "no error");
  EXPECT_EQ(read_checkpoint_info(path).iter_num, 7);

  // a float past int64 was converted with undefined behaviour; 0 heads divided by zero
  const std::vector<std::tuple<std::string, PickleRef, std::string>> bad_sizes = {
      {"n_layer", pickle_float(1e30), "1e+30"},  {"n_head", pickle_int(0), "0"},
      {"n_embd", pickle_float(16.0), "16.0"},    {"block_size", pickle_int(-1), "-1"},
      {"vocab_size", pickle_int(2147483648), "2147483648"}};
  for (const auto& [key, value, shown] : bad_sizes) {
    write_checkpoint_with(path, {{key, value}});
    EXPECT_EQ(error_of([&] { read_checkpoint_info(path); }),
              "checkpoint '" + path + "': model_args '" + key + "' must be an integer in 1..2147483647, got " + shown);
  }
  const std::vector<std::pair<PickleRef, std::string>> bad_iter_nums = {
      {pickle_float(1e30), "1e+30"},
      {pickle_float(2.5), "2.5"},
      {pickle_int(-1), "-1"},
      {pickle_int(INT64_MAX), "9223372036854775807"},  // 2^63 as a double, one past int64
      {pickle_string("7"), "\"7\""}};
  for (const auto& [value, shown] : bad_iter_nums) {
    write_checkpoint_with(path, {{"iter_num", value}});
    EXPECT_EQ(error_of([&] { read_checkpoint_info(path); }),
              "checkpoint '" + path + "': 'iter_num' must be a whole number in 0..9007199254740992, got " + shown);
  }
  // AdamW's step is a float32 tensor in PyTorch's checkpoints
  const std::vector<std::pair<double, std::string>> bad_steps = {
      {2.5, "2.5"}, {-1.0, "-1.0"}, {9223372036854775807.0, "9.223372036854776e+18"}};
  for (const auto& [step, shown] : bad_steps) {
    write_checkpoint_with(path, {}, at::scalar_tensor(step, at::kFloat));
    EXPECT_EQ(error_of(load_with_optimizer), "checkpoint '" + path +
                                                 "': 'optimizer.state.0.step' must be a whole number in "
                                                 "0..9007199254740992, got " + shown);
  }
}

TEST(Checkpoint, ConfigIntegersMustBeIntegers) {
  TempDir dir;
  const std::string path = dir / "ckpt.pt";
  GPT model(GPTConfig{8, 11, 1, 2, 16, 0.0, true});
  const std::string origin = "checkpoint '" + path + "' config";
  // a float past int64 was converted with undefined behaviour when sample read the config
  for (const auto& [value, shown] : std::vector<std::pair<nlohmann::json, std::string>>{
           {1e30, "1e+30"}, {12.0, "12.0"}, {true, "true"}}) {
    save_checkpoint(path, model, nullptr, CheckpointInfo{model->config, 0, 1e9, {{"batch_size", value}}, {}});
    const CheckpointInfo info = read_checkpoint_info(path);
    EXPECT_EQ(error_of([&] { config_from_json(info.config, origin); }),
              origin + ": key 'batch_size' expects an integer, got " + shown);
  }
  const auto past_int64 = nlohmann::json::parse(R"({"max_iters": 9223372036854775808})");
  EXPECT_EQ(error_of([&] { config_from_json(past_int64, "run.json"); }),
            "run.json: key 'max_iters' expects an integer, got 9223372036854775808");
  save_checkpoint(path, model, nullptr, CheckpointInfo{model->config, 0, 1e9, {{"batch_size", 12}}, {}});
  EXPECT_EQ(config_from_json(read_checkpoint_info(path).config, origin).batch_size, 12);
}

TEST(Checkpoint, NanoGPTNamesAndTiedHeadAreWritten) {
  TempDir dir;
  GPT model(GPTConfig{8, 11, 2, 2, 16, 0.0, true});
  save_checkpoint(dir / "ckpt.pt", model, nullptr, CheckpointInfo{model->config, 0, 1e9, nlohmann::json::object(), {}});
  TorchFile file(dir / "ckpt.pt");
  const PickleValue& state = *file.root().get("model");
  std::vector<std::string> names;
  for (const auto& [key, value] : state.entries) names.push_back(key->text);
  EXPECT_EQ(names.front(), "transformer.wte.weight");
  EXPECT_EQ(names.back(), "lm_head.weight");
  EXPECT_EQ(names.size(), model->named_parameters().size() + 1);
  const at::Tensor head = file.tensor(*state.get("lm_head.weight"), "lm_head");
  EXPECT_EQ(head.data_ptr(), file.tensor(*state.get("transformer.wte.weight"), "wte").data_ptr());
}

namespace {

int run_interop(const std::string& args) { return nanogpt::testing::run_python_script("checkpoint_interop.py", args); }

}  // namespace

TEST(Checkpoint, PythonLoadsThePortsCheckpointAndThePortLoadsPythons) {
  if (!nanogpt::testing::python_imports("torch")) GTEST_SKIP() << NANOGPT_PYTHON " has no torch: run tools/setup.sh --tests";
  TempDir dir;
  torch::manual_seed(5);
  // checkpoint_interop.py's MODEL_ARGS
  GPT model(GPTConfig{8, 11, 2, 2, 16, 0.0, true});
  auto optimizer = model->configure_optimizers(0.1, 1e-3, {0.9, 0.95});
  const at::Tensor x = torch::randint(11, {4, 8}, torch::kLong);
  for (int step = 0; step < 2; ++step) {
    auto [logits, loss] = model->forward(x, x.roll(-1, 1));
    loss.backward();
    optimizer->step();
    optimizer->zero_grad();
  }
  nlohmann::json config = {{"weight_decay", 0.1}, {"learning_rate", 1e-3}, {"beta1", 0.9}, {"beta2", 0.95}};
  save_checkpoint(dir / "port.pt", model, optimizer.get(), CheckpointInfo{model->config, 2, 3.5, config, {}});
  const at::Tensor tokens = torch::randint(11, {2, 8}, torch::kLong);
  nanogpt::testing::write_tensor_bytes(dir / "tokens.bin", tokens);
  nanogpt::testing::write_text(dir / "tokens.json", R"({"shape": [2, 8]})");
  model->eval();
  {
    torch::NoGradGuard no_grad;
    nanogpt::testing::write_tensor_bytes(dir / "port_logits.bin", model->lm_head(model->hidden_states(tokens)));
  }
  ASSERT_EQ(run_interop("check-port " + dir.path().string()), 0);
  export_huggingface(model, dir / "hf");
  EXPECT_EQ(run_interop("check-hf " + dir.path().string()), 0);

  ASSERT_EQ(run_interop("write-python " + dir.path().string()), 0);
  CheckpointInfo info;
  GPT loaded = load_model(dir / "python.pt", &info);
  EXPECT_EQ(info.iter_num, 7);
  EXPECT_EQ(info.best_val_loss, 2.5);  // a 0-d tensor in nanoGPT's checkpoints
  EXPECT_EQ(info.config["dataset"], "shakespeare_char");
  loaded->eval();
  torch::NoGradGuard no_grad;
  const at::Tensor logits = loaded->lm_head(loaded->hidden_states(tokens));
  const at::Tensor python_logits = nanogpt::testing::read_float_tensor(dir / "python_logits.bin", logits.sizes());
  EXPECT_LT((logits - python_logits).abs().max().item<double>(), 1e-5);

  // the optimizer state goes through this port unchanged
  auto loaded_optimizer = loaded->configure_optimizers(0.0, 0.0, {0.0, 0.0});
  load_checkpoint_state(dir / "python.pt", loaded, loaded_optimizer.get());
  save_checkpoint(dir / "resaved.pt", loaded, loaded_optimizer.get(), info);
  EXPECT_EQ(run_interop("compare " + (dir / "python.pt") + " " + (dir / "resaved.pt")), 0);
}
