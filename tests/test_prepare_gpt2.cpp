// prepare gpt2: nanoGPT's shakespeare recipe byte for byte, and openwebtext-style documents.
#include <gtest/gtest.h>

#include <cstdio>

#include "nanogpt/tokenizer/bpe.h"
#include "nanogpt/base/fileio.h"
#include "nanogpt/data/prepare.h"
#include "nanogpt/tokenizer/char_tokenizer.h"
#include "test_util.h"

using namespace nanogpt;
using nanogpt::testing::TempDir;
using nanogpt::testing::error_of;
using nanogpt::testing::gpt2_vocab_dir;

namespace {


std::string sha256_of(const std::string& path) {
  FILE* pipe = ::popen(("sha256sum '" + path + "'").c_str(), "r");
  char digest[65] = {0};
  const size_t n = std::fread(digest, 1, 64, pipe);
  ::pclose(pipe);
  return std::string(digest, n);
}

std::vector<uint32_t> read_tokens(const std::string& path) {
  return parse_token_ids(read_file(path), TokenIdFormat::kUint16, path);
}


class PrepareGpt2 : public ::testing::Test {
 protected:
  void SetUp() override {
    if (gpt2_vocab_dir().empty()) GTEST_SKIP() << "NANOGPT_SHARED_DATA/gpt2 (encoder.json, vocab.bpe) is not available";
  }
  Gpt2PrepareOptions options_for(std::vector<std::string> inputs) const {
    Gpt2PrepareOptions options;
    options.inputs = std::move(inputs);
    options.out_dir = dir_ / "ds";
    options.vocab_dir = gpt2_vocab_dir();
    return options;
  }
  TempDir dir_;
};

}  // namespace

TEST_F(PrepareGpt2, TinyShakespeareMatchesNanoGPTChecksums) {
  const Gpt2PrepareOptions options = options_for({nanogpt::testing::shared_data_dir() + "/tinyshakespeare/input.txt"});
  const PreparedGpt2Dataset result = prepare_gpt2_dataset(options);
  // reference_stats.json, "gpt2_bpe": nanoGPT's data/shakespeare/prepare.py
  EXPECT_EQ(result.train_tokens, 301966);
  EXPECT_EQ(result.val_tokens, 36059);
  EXPECT_EQ(sha256_of(dir_ / "ds/train.bin"), "502a2bdc8210d1ac5d5674867cb74467dd31db575d25cf6dbb08c8bdbea8680f");
  EXPECT_EQ(sha256_of(dir_ / "ds/val.bin"), "68a53422394c26a655ebe641f5c6f49888e8f4e45fe5d6f02abda63ba3ebd65b");
  const DatasetMeta meta = read_meta_json(dir_ / "ds/meta.json");
  EXPECT_EQ(meta.tokenizer, "gpt2");
  EXPECT_EQ(meta.vocab_size, 50257);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "ds/meta.pkl"));
}

TEST_F(PrepareGpt2, OneTextSplitsOnCharactersNotBytes) {
  nanogpt::testing::write_text(dir_ / "in.txt", "é\r\nèêëab");  // 7 characters after "\r\n" -> "\n", 10 bytes
  Gpt2PrepareOptions options = options_for({dir_ / "in.txt"});
  options.val_fraction = 0.3;  // train: int(7 * 0.7) = 4 characters, "é\nèê"
  prepare_gpt2_dataset(options);
  const Gpt2Bpe bpe = Gpt2Bpe::load(gpt2_vocab_dir());
  EXPECT_EQ(bpe.decode(read_tokens(dir_ / "ds/train.bin")), "é\nèê");
  EXPECT_EQ(bpe.decode(read_tokens(dir_ / "ds/val.bin")), "ëab");
}

TEST_F(PrepareGpt2, PdBooksDocumentsEndWithEndOfTextAndSplitBySeed) {
  const std::string books = nanogpt::testing::shared_data_dir() + "/pd_books/";
  const std::vector<std::string> names = {"austen_emma.txt", "austen_mansfield_park.txt", "austen_northanger_abbey.txt",
                                          "austen_persuasion.txt", "austen_pride_and_prejudice.txt",
                                          "austen_sense_and_sensibility.txt", "kjv_bible.txt"};
  std::vector<std::string> inputs;
  for (const auto& name : names) inputs.push_back(books + name);
  Gpt2PrepareOptions options = options_for(inputs);
  options.threads = 2;
  const PreparedGpt2Dataset result = prepare_gpt2_dataset(options);
  EXPECT_EQ(result.documents, 7);
  EXPECT_EQ(result.val_documents, 1);  // ceil(0.0005 * 7), as Hugging Face's train_test_split
  EXPECT_EQ(result.train_tokens + result.val_tokens, 2084839 + 7);  // pd_books/README.txt, plus one <|endoftext|> each
  const auto train = read_tokens(dir_ / "ds/train.bin");
  const auto val = read_tokens(dir_ / "ds/val.bin");
  EXPECT_EQ(std::count(train.begin(), train.end(), Gpt2Bpe::kEndOfText), 6);
  ASSERT_EQ(val.back(), Gpt2Bpe::kEndOfText);
  // the seed picks the val document; it is one whole book
  const Gpt2Bpe bpe = Gpt2Bpe::load(gpt2_vocab_dir());
  const std::string val_text = bpe.decode(std::vector<uint32_t>(val.begin(), val.end() - 1));
  EXPECT_EQ(val_text, read_file(books + "austen_persuasion.txt"));
  // the same files on one thread and another seed
  const std::string train_bytes = read_file(dir_ / "ds/train.bin");
  options.threads = 1;
  prepare_gpt2_dataset(options);
  EXPECT_EQ(read_file(dir_ / "ds/train.bin"), train_bytes);
  options.seed = 1;
  prepare_gpt2_dataset(options);
  EXPECT_NE(read_file(dir_ / "ds/train.bin"), train_bytes);
}

TEST_F(PrepareGpt2, SeparatorSplitsFilesIntoDocuments) {
  nanogpt::testing::write_text(dir_ / "a.txt", "one\r\nline\n===\n\n===\ntwo\n===\nthree");  // an empty document is skipped
  nanogpt::testing::write_text(dir_ / "b.txt", "four===\n");
  Gpt2PrepareOptions options = options_for({dir_ / "a.txt", dir_ / "b.txt"});
  options.doc_separator = "\n===\n";
  options.val_fraction = 0.5;
  const PreparedGpt2Dataset result = prepare_gpt2_dataset(options);
  EXPECT_EQ(result.documents, 4);
  EXPECT_EQ(result.val_documents, 2);
  const Gpt2Bpe bpe = Gpt2Bpe::load(gpt2_vocab_dir());
  const std::string all = bpe.decode(read_tokens(dir_ / "ds/train.bin")) + "|" + bpe.decode(read_tokens(dir_ / "ds/val.bin"));
  for (const std::string document : {"one\nline<|endoftext|>", "two<|endoftext|>", "three<|endoftext|>", "four===\n<|endoftext|>"}) {
    EXPECT_NE(all.find(document), std::string::npos) << document << " in " << all;
  }
}

TEST_F(PrepareGpt2, BadInputsAreNamed) {
  nanogpt::testing::write_text(dir_ / "one.txt", "only one document");
  Gpt2PrepareOptions options = options_for({dir_ / "one.txt"});
  options.doc_separator = "\n\n";
  EXPECT_NE(error_of([&] { prepare_gpt2_dataset(options); }).find("--val-fraction 0.0005 gives 1 of 1 documents to val.bin"),
            std::string::npos);
  nanogpt::testing::write_text(dir_ / "bad.txt", "fine\n\nnot \xFF fine");
  options.inputs = {dir_ / "bad.txt", dir_ / "one.txt"};
  EXPECT_NE(error_of([&] { prepare_gpt2_dataset(options); }).find("bad.txt: invalid UTF-8 at byte offset 10"),
            std::string::npos);
  options.inputs = {dir_ / "missing.txt"};
  EXPECT_NE(error_of([&] { prepare_gpt2_dataset(options); }).find("--input '" + dir_ / "missing.txt" + "' does not exist"),
            std::string::npos);
  options.inputs = {dir_ / "one.txt"};
  options.doc_separator.clear();
  options.val_fraction = 1.5;
  EXPECT_NE(error_of([&] { prepare_gpt2_dataset(options); }).find("--val-fraction must be in (0, 1), got 1.5"),
            std::string::npos);
}
