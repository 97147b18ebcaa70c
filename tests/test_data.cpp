#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <limits>

#include "nanogpt/data/data.h"
#include "nanogpt/data/prepare.h"
#include "nanogpt/tokenizer/char_tokenizer.h"
#include "test_util.h"

using namespace nanogpt;
using nanogpt::testing::TempDir;

namespace {

std::string sha256_of(const std::string& path) {
  const std::string command = "sha256sum '" + path + "'";
  FILE* pipe = ::popen(command.c_str(), "r");
  char buffer[65] = {0};
  const size_t n = std::fread(buffer, 1, 64, pipe);
  ::pclose(pipe);
  return std::string(buffer, n);
}

}  // namespace

TEST(Data, BatchWindowsMatchTheFile) {
  TempDir dir;
  std::vector<uint16_t> tokens(100);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<uint16_t>(i * 7);
  write_token_file(dir / "t.bin", tokens);
  TokenFile file(dir / "t.bin");
  ASSERT_EQ(file.size(), 100);
  auto [x, y] = batch_at(file, torch::tensor({0, 37, 89}, torch::kLong), 10);
  EXPECT_EQ(x.dtype(), torch::kLong);
  EXPECT_EQ(x.sizes(), torch::IntArrayRef({3, 10}));
  for (int64_t b = 0; b < 3; ++b) {
    const int64_t offset = std::vector<int64_t>{0, 37, 89}[b];
    for (int64_t t = 0; t < 10; ++t) {
      EXPECT_EQ(x[b][t].item<int64_t>(), (offset + t) * 7);
      EXPECT_EQ(y[b][t].item<int64_t>(), (offset + t + 1) * 7);
    }
  }
  EXPECT_THROW(batch_at(file, torch::tensor({90}, torch::kLong), 10), DataError);
  // offset + block_size + 1 overflowed near INT64_MAX (UBSan, with the token_file fuzz target)
  EXPECT_THROW(batch_at(file, torch::tensor({std::numeric_limits<int64_t>::max()}, torch::kLong), 10), DataError);
  EXPECT_THROW(batch_at(file, torch::tensor({std::numeric_limits<int64_t>::min()}, torch::kLong), 10), DataError);
}

TEST(Data, GetBatchDrawsOffsetsLikeTorchRandint) {
  TempDir dir;
  std::vector<uint16_t> tokens(1000);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<uint16_t>(i);
  write_token_file(dir / "t.bin", tokens);
  TokenFile file(dir / "t.bin");
  torch::manual_seed(1337);
  auto [x, y] = get_batch(file, 5, 8, torch::kCPU);
  torch::manual_seed(1337);
  auto offsets = torch::randint(1000 - 8, {5}, torch::kLong);
  EXPECT_TRUE(torch::equal(x.select(1, 0), offsets));
  EXPECT_TRUE(torch::equal(y.select(1, 7), offsets + 8));
}

TEST(Data, TokensAbove32767StayPositive) {
  TempDir dir;
  write_token_file(dir / "t.bin", {32767, 32768, 50256, 65535, 1});
  TokenFile file(dir / "t.bin");
  auto [x, y] = batch_at(file, torch::tensor({0}, torch::kLong), 4);
  EXPECT_TRUE(torch::equal(x, torch::tensor({{32767, 32768, 50256, 65535}}, torch::kLong)));
  EXPECT_TRUE(torch::equal(y, torch::tensor({{32768, 50256, 65535, 1}}, torch::kLong)));
}

TEST(Data, BadTokenFilesAreRejectedWithTheirName) {
  TempDir dir;
  auto message_of = [](const std::string& path) {
    try {
      TokenFile file(path);
    } catch (const DataError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message_of(dir / "missing.bin").find("missing.bin"), std::string::npos);
  nanogpt::testing::write_text(dir / "empty.bin", "");
  EXPECT_NE(message_of(dir / "empty.bin").find("is empty"), std::string::npos);
  nanogpt::testing::write_text(dir / "odd.bin", "abc");
  EXPECT_NE(message_of(dir / "odd.bin").find("odd size (3 bytes)"), std::string::npos);
}

TEST(Data, PrepareCharMatchesNanoGPTSplitAndVocabulary) {
  TempDir dir;
  nanogpt::testing::write_text(dir / "in.txt", "hello world\r\nabc");  // CRLF read as "\n", as Python does
  auto result = prepare_char_dataset(dir / "in.txt", dir / "ds");
  // text "hello world\nabc" has 15 characters: train = first int(15*0.9) = 13
  EXPECT_EQ(result.train_tokens, 13);
  EXPECT_EQ(result.val_tokens, 2);
  const DatasetMeta meta = read_meta_json(dir / "ds/meta.json");
  EXPECT_EQ(meta.vocab_size, 12);  // "\n", " ", a b c d e h l o r w
  const CharTokenizer tokenizer(meta.itos);
  EXPECT_EQ(tokenizer.decode(tokenizer.encode(std::string("hello\nworld"))), "hello\nworld");
  TokenFile val(dir / "ds/val.bin");
  EXPECT_EQ(tokenizer.decode({val[0], val[1]}), "bc");
}

TEST(Data, CharVocabularyRoundTripsUnicode) {
  TempDir dir;
  nanogpt::testing::write_text(dir / "in.txt", "naïve café — ünïcode ✓ 🙂 ok");
  prepare_char_dataset(dir / "in.txt", dir / "ds");
  const DatasetMeta meta = read_meta_json(dir / "ds/meta.json");
  const CharTokenizer tokenizer(meta.itos);
  EXPECT_EQ(tokenizer.decode(tokenizer.encode(std::string("café 🙂"))), "café 🙂");
  EXPECT_THROW(tokenizer.encode(std::string("x")), TokenizerError);
}

TEST(Data, PrepareRejectsInvalidUtf8) {
  TempDir dir;
  nanogpt::testing::write_text(dir / "in.txt", std::string("ok\xff\xfe"));
  EXPECT_THROW(prepare_char_dataset(dir / "in.txt", dir / "ds"), TokenizerError);
}

TEST(Data, MalformedMetaJsonIsRejectedWithItsName) {
  TempDir dir;
  nanogpt::testing::write_text(dir / "meta.json", "{\"vocab_size\": 3, \"itos\": [\"a\", \"b\"]}");
  try {
    read_meta_json(dir / "meta.json");
    FAIL() << "expected an error";
  } catch (const TokenizerError& e) {
    EXPECT_NE(std::string(e.what()).find("itos has 2 entries but vocab_size is 3"), std::string::npos);
  }
  nanogpt::testing::write_text(dir / "meta.json", "{not json");
  EXPECT_THROW(read_meta_json(dir / "meta.json"), TokenizerError);
  // found by the token_file fuzzer: a float past int64 was converted with undefined behaviour
  for (const std::string vocab_size : {"5.0e80", "65.0", "18446744073709551615", "-1"}) {
    nanogpt::testing::write_text(dir / "meta.json", "{\"vocab_size\": " + vocab_size + ", \"tokenizer\": \"gpt2\"}");
    try {
      read_meta_json(dir / "meta.json");
      FAIL() << "expected an error for vocab_size " << vocab_size;
    } catch (const TokenizerError& e) {
      EXPECT_NE(std::string(e.what()).find("vocab_size must be an integer in 1..65536"), std::string::npos) << e.what();
    }
  }
}

TEST(Data, PrepareTinyShakespeareMatchesNanoGPTChecksums) {
  const std::string shared = nanogpt::testing::shared_data_dir();
  if (shared.empty()) GTEST_SKIP() << "NANOGPT_SHARED_DATA (../shared/data) is not available; skipping the sha256 check";
  TempDir dir;
  auto result = prepare_char_dataset(shared + "/tinyshakespeare/input.txt", dir / "ds");
  EXPECT_EQ(result.vocab_size, 65);
  EXPECT_EQ(result.train_tokens, 1003854);
  EXPECT_EQ(result.val_tokens, 111540);
  // reference_stats.json: sha256 of nanoGPT's data/shakespeare_char train.bin / val.bin
  EXPECT_EQ(sha256_of(dir / "ds/train.bin"), "6ec305602a99ac2802745a134e1f5e33e2231b4855525b00b9aebb730ac2626f");
  EXPECT_EQ(sha256_of(dir / "ds/val.bin"), "d37d30cc0c8327c270d493299c3dca54135f6d5f1c9ef60cda78076e311204b1");
}
