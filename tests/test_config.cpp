#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "nanogpt/base/config.h"
#include "test_util.h"

using namespace nanogpt;
using nanogpt::testing::TempDir;
using nanogpt::testing::write_text;

namespace {

// The ConfigError message of loading `yaml` with `overrides`, or "" when it loads.
std::string error_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  TempDir dir;
  write_text(dir / "c.yaml", yaml);
  try {
    load_config(dir / "c.yaml", overrides);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST(Config, DefaultsAreNanoGPTTrainPy) {
  const TrainConfig c = default_config();
  EXPECT_EQ(c.out_dir, "out");
  EXPECT_EQ(c.eval_interval, 2000);
  EXPECT_EQ(c.eval_iters, 200);
  EXPECT_EQ(c.gradient_accumulation_steps, 40);
  EXPECT_EQ(c.batch_size, 12);
  EXPECT_EQ(c.block_size, 1024);
  EXPECT_FALSE(c.bias);
  EXPECT_DOUBLE_EQ(c.learning_rate, 6e-4);
  EXPECT_EQ(c.max_iters, 600000);
  EXPECT_DOUBLE_EQ(c.beta2, 0.95);
  EXPECT_DOUBLE_EQ(c.min_lr, 6e-5);
  EXPECT_EQ(c.warmup_iters, 2000);
  EXPECT_EQ(c.dataset, "openwebtext");
  EXPECT_EQ(c.resolved_data_dir(), "data/openwebtext");
  EXPECT_EQ(c.seed, 1337);
  EXPECT_EQ(config_keys().size(), 47u);
  EXPECT_EQ(c.cpu_memory, "keep");
}

TEST(Config, YamlThenOverridesInOrder) {
  TempDir dir;
  write_text(dir / "c.yaml", "batch_size: 64\nlearning_rate: 1.0e-3\ndropout: 0.2\ndevice: cpu\nbias: true\n");
  const TrainConfig c = load_config(dir / "c.yaml", {"--batch_size=8", "--out_dir=elsewhere", "--decay_lr=False"});
  EXPECT_EQ(c.batch_size, 8);
  EXPECT_DOUBLE_EQ(c.learning_rate, 1e-3);
  EXPECT_DOUBLE_EQ(c.dropout, 0.2);
  EXPECT_TRUE(c.bias);
  EXPECT_FALSE(c.decay_lr);
  EXPECT_EQ(c.out_dir, "elsewhere");
}

TEST(Config, OverrideAcceptsPythonLiteralsForStrings) {
  const TrainConfig c = load_config("", {"--device=cpu", "--dataset='shakespeare_char'", "--data_dir=/tmp/x"});
  EXPECT_EQ(c.dataset, "shakespeare_char");
  EXPECT_EQ(c.resolved_data_dir(), "/tmp/x");
}

TEST(Config, JsonRoundTrip) {
  TrainConfig c = load_config("", {"--device=cpu", "--n_layer=3", "--dropout=0.1", "--wandb_log=True"});
  const TrainConfig back = config_from_json(to_json(c), "to_json");
  EXPECT_EQ(to_json(back), to_json(c));
}

TEST(Config, YamlTextRoundTrip) {
  TempDir dir;
  TrainConfig c = load_config("", {"--device=cpu", "--n_layer=3", "--min_lr=6e-05", "--out_dir=a b"});
  write_text(dir / "c.yaml", to_yaml(c));
  EXPECT_EQ(to_json(load_config(dir / "c.yaml", {})), to_json(c));
}

TEST(Config, BadInputsNameTheKeyAndWhatWasExpected) {
  EXPECT_TRUE(contains(error_of("batch_size: 1.5\n"), "key 'batch_size' expects an integer, got '1.5'"));
  EXPECT_TRUE(contains(error_of("", {"--batch_size=1.5"}), "key 'batch_size' expects an integer, got '1.5'"));
  EXPECT_TRUE(contains(error_of("learning_rate: fast\n"), "key 'learning_rate' expects a number, got 'fast'"));
  EXPECT_TRUE(contains(error_of("bias: maybe\n"), "key 'bias' expects true or false, got 'maybe'"));
  EXPECT_TRUE(contains(error_of("batch_size: \"12\"\n"), "key 'batch_size' expects a numeric value"));
  EXPECT_TRUE(contains(error_of("n_layers: 4\n"), "unknown config key 'n_layers' (did you mean 'n_layer'?)"));
  // a key of an earlier release says so, and what replaced it
  EXPECT_TRUE(contains(error_of("split_products: true\n"), "c.yaml:1: config key 'split_products' was removed: "));
  EXPECT_TRUE(contains(error_of("", {"--split_products=false"}), "the BLAS's own threading (num_threads) replaced it"));
  EXPECT_TRUE(contains(error_of("", {"--lerning_rate=1"}), "unknown config key 'lerning_rate' (did you mean 'learning_rate'?)"));
  EXPECT_TRUE(contains(error_of("", {"batch_size=3"}), "override 'batch_size=3' must look like --key=value"));
  EXPECT_TRUE(contains(error_of("n_embd: 100\nn_head: 3\n"), "n_embd (100) must be divisible by n_head (3)"));
  EXPECT_TRUE(contains(error_of("n_layer: 0\n"), "'n_layer' must be a positive integer, got 0"));
  EXPECT_TRUE(contains(error_of("block_size: -5\n"), "'block_size' must be a positive integer, got -5"));
  EXPECT_TRUE(contains(error_of("dropout: 1.5\n"), "'dropout' must be in [0, 1), got 1.5"));
  EXPECT_TRUE(contains(error_of("dtype: float64\n"), "'dtype' must be float32, bfloat16 or float16, got 'float64'"));
  EXPECT_TRUE(contains(error_of("device: tpu\n"), "device 'tpu' is not supported"));
  EXPECT_TRUE(contains(error_of("dtype: float16\ndevice: cpu\n"), "dtype 'float16' needs device cuda"));
  EXPECT_TRUE(contains(error_of("activation_checkpointing: layers\n"), "'activation_checkpointing' must be 'none' or 'blocks', got 'layers'"));
  EXPECT_TRUE(contains(error_of("cpu_memory: free\n"), "'cpu_memory' must be 'keep' or 'release', got 'free'"));
  EXPECT_TRUE(contains(error_of("checkpoint_every: 0\n"), "'checkpoint_every' must be a positive integer, got 0"));
  EXPECT_TRUE(contains(error_of("loss_chunk_size: -1\n"), "'loss_chunk_size' must be >= 0 (0 = off), got -1"));
  EXPECT_TRUE(contains(error_of("memory_budget: lots\n"), "'memory_budget' expects a positive size such as 12GiB"));
  EXPECT_TRUE(contains(error_of("init_from: gpt3\n"), "'init_from' must be 'scratch', 'resume', 'gpt2'"));
  EXPECT_TRUE(contains(error_of("warmup_iters: 10\nlr_decay_iters: 5\n"), "lr_decay_iters (5) must be larger than warmup_iters (10)"));
  EXPECT_TRUE(contains(error_of("batch_size: [1, 2]\n"), "key 'batch_size' expects a single value"));
  EXPECT_TRUE(contains(error_of("- just\n- a list\n"), "expected a mapping of config keys"));
  EXPECT_TRUE(contains(error_of("batch_size: 12\n  bad: indent\n"), "YAML syntax error"));
  EXPECT_TRUE(contains(error_of("batch_size: 12\n  bad: indent\n"), "c.yaml:2:"));
  EXPECT_TRUE(contains(error_of("\nn_layers: 4\n"), "c.yaml:2: unknown config key"));
  EXPECT_TRUE(contains(error_of("batch_size: 4\nbatch_size: 8\n"), "c.yaml:2: key 'batch_size' is set twice (first at "));
  EXPECT_TRUE(contains(error_of("batch_size: 4\n---\nbatch_size: 8\n"), "c.yaml:2: a second YAML document starts here"));
  EXPECT_EQ(error_of("---\n# a document start marker first is fine\nbatch_size: 4\n"), "");
  EXPECT_TRUE(contains(error_of("batch_size:\n"), "c.yaml:1: key 'batch_size' has no value"));
  EXPECT_TRUE(contains(error_of("memory_budget: 1e30GiB\n"), "'memory_budget' expects a positive size"));
  EXPECT_EQ(error_of("# nothing but a comment\n"), "");
  // found by the config fuzzer: the text would reach the checkpoint's JSON and YAML
  EXPECT_TRUE(contains(error_of("? [a, b]\n: 1\n"), ":1: expected a config key name, got a list or mapping as a key"));
  EXPECT_TRUE(contains(error_of("dataset: caf\xe9\n"), "key 'dataset' holds invalid UTF-8 at byte 3; expected text"));
}

// A value check names where the value was set: the file and line, or the command line.
TEST(Config, ValueErrorsStartWithWhereTheKeyWasSet) {
  const std::string yaml = "n_layer: 2\nn_head: 5\ndropout: 1.5\n";
  EXPECT_TRUE(contains(error_of(yaml, {"--n_head=4"}), "c.yaml:3: config key 'dropout' must be in [0, 1), got 1.5"));
  EXPECT_TRUE(contains(error_of(yaml, {"--n_head=4", "--dropout=2"}), "command line: config key 'dropout' must be in [0, 1), got 2"));
  // two keys set in two places; the default n_embd (768) is not listed
  const std::string both = error_of(yaml + "n_embd: 64\n", {"--dropout=0"});
  EXPECT_NE(both.find("c.yaml:4 (n_embd), "), std::string::npos) << both;
  EXPECT_NE(both.find("c.yaml:2 (n_head): n_embd (64) must be divisible by n_head (5)"), std::string::npos) << both;
  EXPECT_EQ(error_of("", {"--n_head=5"}).rfind("command line: n_embd (768) must be divisible by n_head (5)", 0), 0u)
      << error_of("", {"--n_head=5"});
  EXPECT_TRUE(contains(error_of("memory_limit: 12XB\n"), "c.yaml:1: 'memory_limit' expects a positive size"));
}

TEST(Config, MissingConfigFileIsNamed) {
  try {
    load_config("/nonexistent/x.yaml", {});
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_TRUE(contains(e.what(), "config file '/nonexistent/x.yaml' does not exist"));
  }
}

TEST(Config, RepositoryConfigsLoad) {
  const std::string root = NANOGPT_SOURCE_DIR;
  const TrainConfig cpu = load_config(root + "/configs/train_shakespeare_char_cpu.yaml", {});
  EXPECT_EQ(cpu.n_layer, 4);
  EXPECT_EQ(cpu.n_head, 4);
  EXPECT_EQ(cpu.n_embd, 128);
  EXPECT_EQ(cpu.block_size, 64);
  EXPECT_EQ(cpu.batch_size, 12);
  EXPECT_EQ(cpu.max_iters, 2000);
  EXPECT_EQ(cpu.eval_iters, 20);
  EXPECT_DOUBLE_EQ(cpu.dropout, 0.0);
  const TrainConfig baby = load_config(root + "/configs/train_shakespeare_char.yaml", {"--device=cpu"});
  EXPECT_EQ(baby.n_embd, 384);
  EXPECT_DOUBLE_EQ(baby.dropout, 0.2);
  EXPECT_DOUBLE_EQ(baby.beta2, 0.99);
  const TrainConfig gpt2 = load_config(root + "/configs/train_gpt2.yaml", {"--device=cpu"});
  EXPECT_EQ(gpt2.gradient_accumulation_steps, 40);
  EXPECT_EQ(gpt2.log_interval, 10);
}

TEST(Config, ByteSizes) {
  EXPECT_EQ(parse_byte_size("12GiB", "budget"), 12LL * 1024 * 1024 * 1024);
  EXPECT_EQ(parse_byte_size("512MiB", "budget"), 512LL * 1024 * 1024);
  EXPECT_EQ(parse_byte_size("1.5GB", "budget"), 1500000000LL);
  EXPECT_EQ(parse_byte_size("1000", "budget"), 1000);
  EXPECT_EQ(parse_byte_size("8 GiB", "budget"), 8LL * 1024 * 1024 * 1024);
  EXPECT_THROW(parse_byte_size("12 potatoes", "budget"), ConfigError);
  EXPECT_THROW(parse_byte_size("-1GiB", "budget"), ConfigError);
  EXPECT_THROW(parse_byte_size("GiB", "budget"), ConfigError);
}
