#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "nanogpt/base/config.h"
#include "nanogpt/interop/config_import.h"
#include "nanogpt/base/fileio.h"
#include "test_util.h"

using namespace nanogpt;
using nanogpt::testing::TempDir;
using nanogpt::testing::write_text;

namespace {

// The config that the imported YAML gives, loaded the way `train` loads YAML.
TrainConfig imported(const std::string& python, const std::string& name = "c.py") {
  TempDir dir;
  write_text(dir / "c.yaml", import_python_config(python, name));
  TrainConfig config = default_config();
  apply_yaml_file(config, dir / "c.yaml");
  return config;
}

std::string import_error(const std::string& python) {
  try {
    import_python_config(python, "c.py");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(ConfigImport, LiteralsArithmeticAndComments) {
  const std::string python =
      "# a comment line\n"
      "\n"
      "import time\n"
      "out_dir = 'out-x'  # where\n"
      "gradient_accumulation_steps = 5 * 8\n"
      "batch_size = (2 + 2) * 3 // 2\n"
      "learning_rate = 6e-4\n"
      "min_lr = 6e-4 / 10\n"
      "dropout = 0\n"
      "always_save_checkpoint = False\n"
      "wandb_run_name = \"ft-\" + 'shakespeare'\n"
      "max_iters = 600_000\n"
      "beta2 = 0.99 # bigger\n";
  const std::string yaml = import_python_config(python, "c.py");
  EXPECT_NE(yaml.find("# a comment line\n"), std::string::npos);
  EXPECT_NE(yaml.find("out_dir: \"out-x\"  # where\n"), std::string::npos);
  EXPECT_NE(yaml.find("gradient_accumulation_steps: 40\n"), std::string::npos);
  const TrainConfig c = imported(python);
  EXPECT_EQ(c.out_dir, "out-x");
  EXPECT_EQ(c.gradient_accumulation_steps, 40);
  EXPECT_EQ(c.batch_size, 6);
  EXPECT_DOUBLE_EQ(c.learning_rate, 6e-4);
  EXPECT_DOUBLE_EQ(c.min_lr, 6e-5);
  EXPECT_DOUBLE_EQ(c.dropout, 0.0);
  EXPECT_FALSE(c.always_save_checkpoint);
  EXPECT_EQ(c.wandb_run_name, "ft-shakespeare");
  EXPECT_EQ(c.max_iters, 600000);
  EXPECT_DOUBLE_EQ(c.beta2, 0.99);
}

// Python keeps the last assignment; the YAML (which refuses a key twice) keeps the earlier
// one as a comment.
TEST(ConfigImport, AKeyAssignedAgainKeepsTheLastValue) {
  const std::string python = "batch_size = 4  # first\nn_layer = 2\nbatch_size = 8\n";
  const std::string yaml = import_python_config(python, "c.py");
  EXPECT_NE(yaml.find("# batch_size: 4  # first  (assigned again at c.py:3)\n"), std::string::npos) << yaml;
  const TrainConfig c = imported(python);
  EXPECT_EQ(c.batch_size, 8);
  EXPECT_EQ(c.n_layer, 2);
}

TEST(ConfigImport, AnythingElseIsAnErrorNamingTheLine) {
  EXPECT_EQ(import_error("batch_size = 4\nwandb_run_name = 'ft-' + str(time.time())\n"),
            "c.py:2: 'str' is not a literal; only literals (numbers, strings, True/False) and arithmetic on them can "
            "be imported");
  EXPECT_NE(import_error("n_layers = 4\n").find("c.py:1: unknown config key 'n_layers' (did you mean 'n_layer'?)"),
            std::string::npos);
  EXPECT_NE(import_error("batch_size = 1.5\n").find("c.py:1: key 'batch_size' expects an integer, got '1.5'"),
            std::string::npos);
  EXPECT_NE(import_error("\n\nif True:\n").find("c.py:3: 'if True:' is not an assignment"), std::string::npos);
  EXPECT_NE(import_error("batch_size = 4 +\n").find("c.py:1: missing value"), std::string::npos);
  EXPECT_NE(import_error("out_dir = 'open\n").find("c.py:1: unterminated string"), std::string::npos);
  EXPECT_NE(import_error("batch_size = 4 // 0\n").find("division by zero"), std::string::npos);
  EXPECT_NE(import_error("out_dir = 'a' * 3\n").find("only + joins strings"), std::string::npos);
}

// nanoGPT's own config/*.py, from the checkout in NANOGPT_DIR that the other nanoGPT checks
// use too (none of its files are in this repository; only the values they must give are).
TEST(ConfigImport, NanoGPTConfigFiles) {
  const char* checkout = std::getenv("NANOGPT_DIR");
  if (checkout == nullptr || !std::filesystem::is_directory(std::string(checkout) + "/config")) {
    GTEST_SKIP() << "NANOGPT_DIR (a karpathy/nanoGPT checkout) is not set; skipping its config files";
  }
  auto load = [&](const std::string& name) {
    const std::string path = std::string(checkout) + "/config/" + name;
    return imported(read_file(path), path);
  };
  const TrainConfig gpt2 = load("train_gpt2.py");
  EXPECT_EQ(gpt2.gradient_accumulation_steps, 40);
  EXPECT_EQ(gpt2.batch_size, 12);
  EXPECT_EQ(gpt2.block_size, 1024);
  EXPECT_EQ(gpt2.max_iters, 600000);
  EXPECT_EQ(gpt2.lr_decay_iters, 600000);
  EXPECT_EQ(gpt2.eval_interval, 1000);
  EXPECT_EQ(gpt2.log_interval, 10);
  EXPECT_TRUE(gpt2.wandb_log);
  EXPECT_EQ(gpt2.wandb_run_name, "gpt2-124M");
  const TrainConfig chars = load("train_shakespeare_char.py");
  EXPECT_EQ(chars.out_dir, "out-shakespeare-char");
  EXPECT_EQ(chars.dataset, "shakespeare_char");
  EXPECT_EQ(chars.n_layer, 6);
  EXPECT_EQ(chars.n_embd, 384);
  EXPECT_EQ(chars.block_size, 256);
  EXPECT_DOUBLE_EQ(chars.dropout, 0.2);
  EXPECT_DOUBLE_EQ(chars.learning_rate, 1e-3);
  EXPECT_DOUBLE_EQ(chars.min_lr, 1e-4);
  EXPECT_DOUBLE_EQ(chars.beta2, 0.99);
  EXPECT_EQ(chars.warmup_iters, 100);
  EXPECT_FALSE(chars.always_save_checkpoint);
  for (const auto& [name, init] : std::vector<std::pair<std::string, std::string>>{
           {"eval_gpt2.py", "gpt2"}, {"eval_gpt2_medium.py", "gpt2-medium"},
           {"eval_gpt2_large.py", "gpt2-large"}, {"eval_gpt2_xl.py", "gpt2-xl"}}) {
    const TrainConfig eval = load(name);
    EXPECT_EQ(eval.init_from, init);
    EXPECT_EQ(eval.batch_size, 8);
    EXPECT_EQ(eval.eval_iters, 500);
    EXPECT_TRUE(eval.eval_only);
  }
  // finetune_shakespeare.py names its run 'ft-' + str(time.time()): not a literal.
  try {
    load("finetune_shakespeare.py");
    FAIL() << "expected an error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("finetune_shakespeare.py:8: 'str' is not a literal"), std::string::npos)
        << e.what();
  }
}
