// GPT-2 BPE against tiktoken: the reference cases, the pre-tokenizer, the merge order, the
// vocabulary files and their errors.
#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "nanogpt/tokenizer/bpe.h"
#include "nanogpt/base/fileio.h"
#include "nanogpt/tokenizer/pretokenize.h"
#include "nanogpt/base/utf8.h"
#include "test_util.h"

using namespace nanogpt;
using nanogpt::testing::TempDir;
using nanogpt::testing::error_of;
using nanogpt::testing::gpt2_vocab_dir;

namespace {


// The vocabulary, loaded once for the whole suite.
class BpeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!gpt2_vocab_dir().empty() && !bpe_) bpe_ = std::make_unique<Gpt2Bpe>(Gpt2Bpe::load(gpt2_vocab_dir()));
  }
  void SetUp() override {
    if (!bpe_) GTEST_SKIP() << "NANOGPT_SHARED_DATA/gpt2 (encoder.json, vocab.bpe) is not available";
  }
  static const Gpt2Bpe& bpe() { return *bpe_; }

 private:
  static std::unique_ptr<Gpt2Bpe> bpe_;
};
std::unique_ptr<Gpt2Bpe> BpeTest::bpe_;

struct BpeCase {
  std::string name, text;
  std::vector<uint32_t> ids;
  std::optional<std::vector<uint32_t>> ids_allowed_special;
};

// GoogleTest names the case by its name, not its bytes.
void PrintTo(const BpeCase& c, std::ostream* out) { *out << c.name; }

// tests/fixtures/bpe_cases.jsonl: a copy of shared/data/gpt2/bpe_cases.jsonl (tiktoken's ids).
std::vector<BpeCase> read_cases() {
  std::ifstream in(std::string(NANOGPT_SOURCE_DIR) + "/tests/fixtures/bpe_cases.jsonl");
  std::vector<BpeCase> cases;
  for (std::string line; std::getline(in, line);) {
    const auto json = nlohmann::json::parse(line);
    BpeCase c{json.at("name"), json.at("text"), json.at("ids"), std::nullopt};
    if (json.contains("ids_allowed_special")) c.ids_allowed_special = json.at("ids_allowed_special").get<std::vector<uint32_t>>();
    cases.push_back(std::move(c));
  }
  return cases;
}

class BpeReferenceCase : public BpeTest, public ::testing::WithParamInterface<BpeCase> {};

// tiktoken's _byte_pair_merge as written there: rank the byte string of each adjacent pair of
// parts, merge the lowest (leftmost first), rescan.
std::vector<uint32_t> reference_merge(const Gpt2Bpe& bpe, std::string_view piece) {
  if (bpe.token_id(piece) >= 0) return {static_cast<uint32_t>(bpe.token_id(piece))};
  std::vector<size_t> bounds;
  for (size_t i = 0; i <= piece.size(); ++i) bounds.push_back(i);
  while (bounds.size() > 2) {
    int64_t best_rank = -1;
    size_t best = 0;
    for (size_t i = 0; i + 2 < bounds.size(); ++i) {
      const int64_t rank = bpe.token_id(piece.substr(bounds[i], bounds[i + 2] - bounds[i]));
      if (rank >= 0 && (best_rank < 0 || rank < best_rank)) best_rank = rank, best = i;
    }
    if (best_rank < 0) break;
    bounds.erase(bounds.begin() + static_cast<std::ptrdiff_t>(best) + 1);
  }
  std::vector<uint32_t> ids;
  for (size_t i = 0; i + 1 < bounds.size(); ++i) {
    ids.push_back(static_cast<uint32_t>(bpe.token_id(piece.substr(bounds[i], bounds[i + 1] - bounds[i]))));
  }
  return ids;
}


}  // namespace

TEST_P(BpeReferenceCase, MatchesTiktoken) {
  const BpeCase& c = GetParam();
  EXPECT_EQ(bpe().encode_ordinary(c.text), c.ids);
  EXPECT_EQ(bpe().decode(c.ids), c.text);
  EXPECT_EQ(bpe().encode_ordinary_parallel(c.text, 3), c.ids);
  EXPECT_EQ(bpe().encode(c.text), c.ids_allowed_special.value_or(c.ids));
  EXPECT_EQ(bpe().encode(c.text, 2), c.ids_allowed_special.value_or(c.ids));
}

INSTANTIATE_TEST_SUITE_P(Bpe, BpeReferenceCase, ::testing::ValuesIn(read_cases()),
                         [](const ::testing::TestParamInfo<BpeCase>& info) { return info.param.name; });

TEST(Bpe, ReferenceCasesFixtureHasAll22Cases) { EXPECT_EQ(read_cases().size(), 22u); }

TEST(Pretokenize, SplitsLikeGpt2sPattern) {
  using Pieces = std::vector<std::string_view>;
  EXPECT_EQ(gpt2_pieces("Hello world"), (Pieces{"Hello", " world"}));
  EXPECT_EQ(gpt2_pieces("I'm they'll it's 'sorry"), (Pieces{"I", "'m", " they", "'ll", " it", "'s", " '", "sorry"}));
  EXPECT_EQ(gpt2_pieces("a   b"), (Pieces{"a", "  ", " b"}));      // \s+(?!\S) leaves one space
  EXPECT_EQ(gpt2_pieces("a\n\nb"), (Pieces{"a", "\n", "\n", "b"}));
  EXPECT_EQ(gpt2_pieces("a\tb  "), (Pieces{"a", "\t", "b", "  "}));  // trailing run stays whole
  EXPECT_EQ(gpt2_pieces("x!!'s 12 3.5"), (Pieces{"x", "!!'", "s", " 12", " 3", ".", "5"}));
  EXPECT_EQ(gpt2_pieces("a \xC2\x85" "b \xEF\xBB\xBF" "b"), (Pieces{"a", " ", "\xC2\x85", "b", " \xEF\xBB\xBF", "b"}));
  EXPECT_EQ(gpt2_pieces("日本語、中文"), (Pieces{"日本語", "、", "中文"}));
  EXPECT_EQ(gpt2_pieces(""), Pieces{});
}

TEST(Pretokenize, UnicodeClassesAreRustRegexOnes) {
  EXPECT_EQ(code_class(U'a'), CodeClass::kLetter);
  EXPECT_EQ(code_class(U'7'), CodeClass::kNumber);
  EXPECT_EQ(code_class(U'\x0B'), CodeClass::kSpace);    // \v is White_Space
  EXPECT_EQ(code_class(U'\x1C'), CodeClass::kOther);    // file separator is not
  EXPECT_EQ(code_class(0x85), CodeClass::kSpace);       // NEL: White_Space (not JavaScript's \s)
  EXPECT_EQ(code_class(0xFEFF), CodeClass::kOther);     // BOM: not White_Space (JavaScript's \s)
  EXPECT_EQ(code_class(0x3000), CodeClass::kSpace);
  EXPECT_EQ(code_class(0xBD), CodeClass::kNumber);      // ½ is No
  EXPECT_EQ(code_class(0x0345), CodeClass::kOther);     // a combining mark (Mn), Alphabetic but not L
  EXPECT_EQ(code_class(0x2EBF0), CodeClass::kLetter);   // CJK extension I, Unicode 15.1
  EXPECT_EQ(code_class(0x1C89), CodeClass::kLetter);    // Cyrillic TJE, Unicode 16.0 (tiktoken 1.0.22's tables)
  EXPECT_EQ(code_class(0x10D40), CodeClass::kNumber);   // Garay digit zero, Unicode 16.0
  EXPECT_EQ(code_class(0x10FFFF), CodeClass::kOther);
}

TEST(Pretokenize, InvalidUtf8IsRejectedWithItsOffset) {
  EXPECT_NE(error_of([] { gpt2_pieces("ab\xFF"); }).find("invalid UTF-8 at byte offset 2"), std::string::npos);
  EXPECT_THROW(gpt2_pieces("\xC0\xAF"), TokenizerError);          // overlong "/"
  EXPECT_THROW(gpt2_pieces("\xED\xA0\x80"), TokenizerError);      // a surrogate
  EXPECT_THROW(gpt2_pieces("x \xF4\x90\x80\x80"), TokenizerError);  // above U+10FFFF
  EXPECT_THROW(gpt2_pieces("\xE2\x82"), TokenizerError);          // cut short
  EXPECT_EQ(first_invalid_utf8("ok \xE2\x82\xAC ok"), std::string_view::npos);
  EXPECT_EQ(first_invalid_utf8("ok \xE2\x82"), 3u);
}

TEST(Pretokenize, TerminalOutputReplacesEachIllFormedSubpartOnce) {
  // as Python's bytes.decode("utf-8", "replace")
  EXPECT_EQ(replace_invalid_utf8("a\xFF" "b"), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(replace_invalid_utf8("\xF0\x9F\x98" "x"), "\xEF\xBF\xBD" "x");
  EXPECT_EQ(replace_invalid_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(replace_invalid_utf8("caf\xC3\xA9 \xF0\x9F\x98\x80"), "caf\xC3\xA9 \xF0\x9F\x98\x80");
}

TEST_F(BpeTest, MergesInTiktokensOrderOnLongAndRandomPieces) {
  const std::vector<std::string> letters = {"e", "t", "a", "o", "i", "n", "s", "h", "r", "th", "in", "\xC3\xA9", "\xD0\xB6", "\xE6\x97\xA5"};
  std::mt19937 rng(1337);
  for (int sample = 0; sample < 300; ++sample) {
    std::string piece;
    const int length = 1 + static_cast<int>(rng() % 200);
    for (int k = 0; k < length; ++k) piece += letters[rng() % letters.size()];
    ASSERT_EQ(gpt2_pieces(piece).size(), 1u);
    ASSERT_EQ(bpe().encode_ordinary(piece), reference_merge(bpe(), piece)) << piece;
  }
  const std::string long_run(5000, 'a');
  EXPECT_EQ(bpe().encode_ordinary(long_run), reference_merge(bpe(), long_run));
}

TEST_F(BpeTest, EndOfTextIsSpecialOnlyInEncode) {
  const auto hello = bpe().encode_ordinary("Hello");
  const auto world = bpe().encode_ordinary(" world");
  std::vector<uint32_t> expected = hello;
  expected.push_back(Gpt2Bpe::kEndOfText);
  expected.insert(expected.end(), world.begin(), world.end());
  EXPECT_EQ(bpe().encode("Hello<|endoftext|> world"), expected);
  EXPECT_EQ(bpe().decode(expected), "Hello<|endoftext|> world");
  EXPECT_EQ(bpe().encode_ordinary("<|endoftext|>").size(), 7u);
  EXPECT_EQ(bpe().token_id("<|endoftext|>"), -1);  // not a mergeable token, as in tiktoken
  EXPECT_EQ(bpe().vocab_size(), 50257u);
}

TEST_F(BpeTest, DecodeKeepsBytesOfACharacterCutBetweenTokens) {
  const auto ids = bpe().encode_ordinary("\xF0\x9F\x98\x80");  // 😀 is two tokens
  ASSERT_EQ(ids.size(), 2u);
  const std::string first = bpe().decode({ids[0]});
  EXPECT_EQ(first + bpe().decode({ids[1]}), "\xF0\x9F\x98\x80");
  EXPECT_NE(first_invalid_utf8(first), std::string_view::npos);
  EXPECT_NE(error_of([&] { bpe().decode({50257}); }).find("token id 50257 is outside"), std::string::npos);
}

TEST_F(BpeTest, ParallelEncodingEqualsOneThread) {
  const std::string text = read_file(nanogpt::testing::shared_data_dir() + "/tinyshakespeare/input.txt");
  const auto ids = bpe().encode_ordinary(text);
  EXPECT_EQ(ids.size(), 338025u);
  EXPECT_EQ(bpe().encode_ordinary_parallel(text, 2), ids);
  EXPECT_EQ(bpe().encode_ordinary_parallel(text, 7), ids);
  const std::string documents = text + "<|endoftext|>" + text;
  EXPECT_EQ(bpe().encode(documents, 3), bpe().encode(documents));
  EXPECT_NE(error_of([&] { bpe().encode_ordinary_parallel(text + std::string(200000, 'x') + "\xFF", 2); })
                .find(fmt::format("byte offset {}", text.size() + 200000)),
            std::string::npos);
}

TEST_F(BpeTest, PdBooksTokenCountsMatchTiktoken) {
  // pd_books/README.txt: tiktoken's gpt2 encode_ordinary length of each whole file
  const std::vector<std::pair<std::string, size_t>> books = {
      {"austen_emma.txt", 220986},         {"austen_mansfield_park.txt", 216334},
      {"austen_northanger_abbey.txt", 105383}, {"austen_persuasion.txt", 115079},
      {"austen_pride_and_prejudice.txt", 167305}, {"austen_sense_and_sensibility.txt", 168241},
      {"kjv_bible.txt", 1091511}};
  size_t total = 0;
  for (const auto& [name, tokens] : books) {
    const std::string text = read_file(nanogpt::testing::shared_data_dir() + "/pd_books/" + name);
    const auto ids = bpe().encode_ordinary(text);
    EXPECT_EQ(ids.size(), tokens) << name;
    EXPECT_EQ(bpe().decode(ids), text) << name;
    total += ids.size();
  }
  EXPECT_EQ(total, 2084839u);
}

TEST_F(BpeTest, MalformedVocabularyFilesAreNamed) {
  const std::string encoder = read_file(gpt2_vocab_dir() + "/encoder.json");
  const std::string merges = read_file(gpt2_vocab_dir() + "/vocab.bpe");
  const auto load_error = [](const std::string& e, const std::string& m) {
    return error_of([&] { Gpt2Bpe(e, m, "x/encoder.json", "x/vocab.bpe"); });
  };
  EXPECT_NE(load_error("{not json", merges).find("x/encoder.json: not valid JSON"), std::string::npos);
  EXPECT_NE(load_error("{\"a\": 0}", merges).find("x/encoder.json: 1 entries; expected a JSON object mapping"),
            std::string::npos);
  EXPECT_NE(load_error(encoder, "merges\n").find("x/vocab.bpe: line 1 is 'merges'; expected '#version: 0.2'"),
            std::string::npos);
  std::string swapped = merges;
  const std::string first_merge = "\nĠ t\n";
  swapped.replace(swapped.find(first_merge), first_merge.size(), "\nt Ġ\n");  // merge 1 made " t" (token 256); now "t "
  EXPECT_NE(load_error(encoder, swapped).find("x/vocab.bpe line 2: merge 't Ġ' is merge 1 and should make token 256"),
            std::string::npos);
  EXPECT_NE(load_error(encoder, merges.substr(0, merges.size() / 2)).find("merges; expected 50000"), std::string::npos);
  EXPECT_NE(error_of([] { Gpt2Bpe::load("/nonexistent"); }).find("/nonexistent/encoder.json"), std::string::npos);
}

TEST_F(BpeTest, VocabDirIsFoundFromOptionEnvironmentOrCache) {
  TempDir empty;
  EXPECT_NE(error_of([&] { find_gpt2_vocab_dir(empty.path().string()); }).find("has no encoder.json"), std::string::npos);
  EXPECT_EQ(find_gpt2_vocab_dir(gpt2_vocab_dir()), gpt2_vocab_dir());
  // the cache is filled by a download: here from a file:// address (curl reads those)
  if (std::system("command -v curl >/dev/null 2>&1") != 0) GTEST_SKIP() << "curl is not installed";
  TempDir cache;
  const nanogpt::testing::ScopedEnv xdg("XDG_CACHE_HOME", cache.path().string());
  const nanogpt::testing::ScopedEnv no_dir("NANOGPT_GPT2_VOCAB_DIR", "");
  {
    const nanogpt::testing::ScopedEnv url("NANOGPT_GPT2_VOCAB_URL", "http://127.0.0.1:9");  // nothing listens there
    const std::string error = error_of([] { find_gpt2_vocab_dir(""); });
    EXPECT_NE(error.find("downloading them from http://127.0.0.1:9 failed"), std::string::npos) << error;
    EXPECT_NE(error.find("Pass --vocab-dir DIR or set NANOGPT_GPT2_VOCAB_DIR"), std::string::npos) << error;
  }
  const nanogpt::testing::ScopedEnv url("NANOGPT_GPT2_VOCAB_URL", "file://" + gpt2_vocab_dir());
  const std::string cached = (cache.path() / "nanogpt-cpp" / "gpt2").string();
  EXPECT_EQ(find_gpt2_vocab_dir(""), cached);
  EXPECT_EQ(read_file(cached + "/vocab.bpe"), read_file(gpt2_vocab_dir() + "/vocab.bpe"));
  const nanogpt::testing::ScopedEnv env_dir("NANOGPT_GPT2_VOCAB_DIR", gpt2_vocab_dir());
  EXPECT_EQ(find_gpt2_vocab_dir(""), gpt2_vocab_dir());
}

TEST(TokenIds, TextAndUint16RoundTrip) {
  const std::vector<uint32_t> ids = {15496, 995, 0, 50256};
  EXPECT_EQ(format_token_ids(ids, TokenIdFormat::kText), "15496 995 0 50256\n");
  EXPECT_EQ(format_token_ids(ids, TokenIdFormat::kUint16), std::string("\x88\x3c\xe3\x03\x00\x00\x50\xc4", 8));
  EXPECT_EQ(parse_token_ids(" 15496  995\n0\t50256\n", TokenIdFormat::kText, "x"), ids);
  EXPECT_EQ(parse_token_ids(std::string("\x88\x3c\xe3\x03\x00\x00\x50\xc4", 8), TokenIdFormat::kUint16, "x"), ids);
  EXPECT_NE(error_of([] { parse_token_ids("12 1x3", TokenIdFormat::kText, "ids.txt"); })
                .find("ids.txt: '1x3' at byte offset 3 is not a token id"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_token_ids("abc", TokenIdFormat::kUint16, "ids.bin"); }).find("ids.bin: odd size (3 bytes)"),
            std::string::npos);
  EXPECT_THROW(token_id_format("json"), std::invalid_argument);
}
