#include <gtest/gtest.h>

#include <cstdlib>

#include "nanogpt/base/fileio.h"
#include "nanogpt/formats/pickle.h"
#include "nanogpt/tokenizer/char_tokenizer.h"
#include "test_util.h"

using namespace nanogpt;
using nanogpt::testing::TempDir;

namespace {

// pickle.dumps({'vocab_size': 3, 'itos': {0: 'a', 1: '\n', 2: 'é'}, 'stoi': {...}}) by
// Python 3.11, protocols 2 (= 3 but for the header byte) and 4 (= 5 but for the header).
const std::string kMetaProtocol2 = std::string(
    "\x80\x02\x7d\x71\x00\x28\x58\x0a\x00\x00\x00vocab_size\x71\x01\x4b\x03\x58\x04\x00\x00\x00itos\x71\x02\x7d"
    "\x71\x03\x28\x4b\x00\x58\x01\x00\x00\x00\x61\x71\x04\x4b\x01\x58\x01\x00\x00\x00\x0a\x71\x05\x4b\x02\x58\x02"
    "\x00\x00\x00\xc3\xa9\x71\x06\x75\x58\x04\x00\x00\x00stoi\x71\x07\x7d\x71\x08\x28\x68\x04\x4b\x00\x68\x05\x4b"
    "\x01\x68\x06\x4b\x02\x75\x75\x2e",
    102);
const std::string kMetaProtocol4 = std::string(
    "\x80\x04\x95\x49\x00\x00\x00\x00\x00\x00\x00\x7d\x94\x28\x8c\x0avocab_size\x94\x4b\x03\x8c\x04itos\x94\x7d"
    "\x94\x28\x4b\x00\x8c\x01\x61\x94\x4b\x01\x8c\x01\x0a\x94\x4b\x02\x8c\x02\xc3\xa9\x94\x75\x8c\x04stoi\x94\x7d"
    "\x94\x28\x68\x04\x4b\x00\x68\x05\x4b\x01\x68\x06\x4b\x02\x75\x75\x2e",
    84);

std::string pickle_error(const std::string& data) {
  try {
    parse_pickle(data, "x.pkl");
  } catch (const PickleError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Pickle, ReadsNanoGPTMetaInProtocols2And4) {
  for (const std::string* data : {&kMetaProtocol2, &kMetaProtocol4}) {
    PickleRef root = parse_pickle(*data, "meta.pkl");
    ASSERT_EQ(root->kind, PickleValue::Kind::dict);
    EXPECT_EQ(root->get("vocab_size")->integer, 3);
    const PickleRef itos = root->get("itos");
    ASSERT_EQ(itos->entries.size(), 3u);
    EXPECT_EQ(itos->entries[2].first->integer, 2);
    EXPECT_EQ(itos->entries[2].second->text, "é");
    const PickleRef stoi = root->get("stoi");
    EXPECT_EQ(stoi->entries[1].first->text, "\n");  // a memo reference to the same string
    EXPECT_EQ(stoi->entries[1].first, itos->entries[1].second);
  }
}

TEST(Pickle, ReadsEveryPlainType) {
  // pickle.dumps({'x': [1, -2, 300, 70000, -70000, 2**40, 1.5, None, True, False, (1, 2), b'by', 'ü'*300]}, protocol=4)
  std::string data("\x80\x04\x95\x9d\x02\x00\x00\x00\x00\x00\x00\x7d\x94\x8c\x01\x78\x94\x5d\x94\x28\x4b\x01\x4a\xfe\xff"
                   "\xff\xff\x4d\x2c\x01\x4a\x70\x11\x01\x00\x4a\x90\xee\xfe\xff\x8a\x06\x00\x00\x00\x00\x00\x01\x47\x3f"
                   "\xf8\x00\x00\x00\x00\x00\x00\x4e\x88\x89\x4b\x01\x4b\x02\x86\x94\x43\x02\x62\x79\x94\x58\x58\x02\x00"
                   "\x00",
                   76);
  for (int i = 0; i < 300; ++i) data += "\xc3\xbc";
  data += std::string("\x94\x65\x73\x2e", 4);
  const PickleRef list = parse_pickle(data, "mixed.pkl")->get("x");
  ASSERT_EQ(list->kind, PickleValue::Kind::list);
  ASSERT_EQ(list->items.size(), 13u);
  const std::vector<int64_t> integers = {1, -2, 300, 70000, -70000, int64_t{1} << 40};
  for (size_t k = 0; k < integers.size(); ++k) EXPECT_EQ(list->items[k]->integer, integers[k]) << k;
  EXPECT_EQ(list->items[6]->floating, 1.5);
  EXPECT_EQ(list->items[7]->kind, PickleValue::Kind::none);
  EXPECT_TRUE(list->items[8]->boolean);
  EXPECT_FALSE(list->items[9]->boolean);
  EXPECT_EQ(list->items[10]->kind, PickleValue::Kind::tuple);
  EXPECT_EQ(list->items[10]->items[1]->integer, 2);
  EXPECT_EQ(list->items[11]->kind, PickleValue::Kind::bytes);
  EXPECT_EQ(list->items[11]->text, "by");
  EXPECT_EQ(list->items[12]->text.size(), 600u);
}

TEST(Pickle, RefusesGlobalsAndBadData) {
  // pickle protocol 0 for os.system('echo hi'): a global and a call, never executed
  EXPECT_NE(pickle_error("cos\nsystem\n(S'echo hi'\ntR.").find("would build an object or call a global"),
            std::string::npos);
  EXPECT_NE(pickle_error(std::string("\x80\x04\x8c\x05posix\x8c\x06system\x93.", 18)).find("opcode 0x93"),
            std::string::npos);
  EXPECT_NE(pickle_error(kMetaProtocol4.substr(0, 40)).find("unexpected end of data (truncated file?)"),
            std::string::npos);
  EXPECT_NE(pickle_error("").find("x.pkl: bad pickle at byte 0"), std::string::npos);
  EXPECT_NE(pickle_error("u.").find("no MARK"), std::string::npos);
  EXPECT_NE(pickle_error("h\x05.").find("memo entry 5 does not exist"), std::string::npos);
  EXPECT_NE(pickle_error("\xff").find("unsupported pickle opcode 0xff"), std::string::npos);
  EXPECT_NE(pickle_error(std::string("]\x94(h\x00" "e.", 7)).find("a structure that contains itself"), std::string::npos);
  EXPECT_NE(pickle_error(std::string(1002, ']') + std::string(1001, 'a') + ".").find("nesting deeper than 1000"),
            std::string::npos);
  EXPECT_EQ(pickle_error(std::string(1000, ']') + std::string(999, 'a') + "."), "");
  // nesting built through the memo, each list appended while still empty: the depth is
  // only known once the whole structure is
  auto le32 = [](uint32_t k) { return std::string{char(k & 0xff), char((k >> 8) & 0xff), char(k >> 16), char(k >> 24)}; };
  std::string chain = "]r" + le32(0);
  for (uint32_t k = 1; k <= 1100; ++k) {  // appended piece by piece: GCC 12 warns (falsely) on "j" + le32(...)
    chain += 'j';
    chain += le32(k - 1);
    chain += "]r";
    chain += le32(k);
    chain += 'a';
  }
  EXPECT_NE(pickle_error(chain + "j" + le32(0) + ".").find("nesting deeper than 1000"), std::string::npos);
}

TEST(Pickle, DatasetMetaFromNanoGPTMetaPkl) {
  TempDir dir;
  nanogpt::testing::write_text(dir / "meta.pkl", kMetaProtocol4);
  const auto meta = read_dataset_meta(dir.path().string());
  ASSERT_TRUE(meta.has_value());
  EXPECT_EQ(meta->vocab_size, 3);
  EXPECT_EQ(meta->tokenizer, "char");
  const CharTokenizer tokenizer(meta->itos);
  EXPECT_EQ(tokenizer.decode({0, 1, 2}), "a\né");
  // meta.json wins when both are there
  write_meta_json(dir / "meta.json", DatasetMeta{2, "char", {U'x', U'y'}});
  EXPECT_EQ(read_dataset_meta(dir.path().string())->vocab_size, 2);
  nanogpt::testing::write_text(dir / "bad.pkl", kMetaProtocol4.substr(0, 30));
  EXPECT_THROW(read_meta_pkl(dir / "bad.pkl"), TokenizerError);
  nanogpt::testing::write_text(dir / "list.pkl", std::string("\x80\x04]\x94.", 5));
  try {
    read_meta_pkl(dir / "list.pkl");
    FAIL();
  } catch (const TokenizerError& e) {
    EXPECT_NE(std::string(e.what()).find("list.pkl: not a dict"), std::string::npos);
  }
}

TEST(Pickle, WrittenMetaPklRoundTrips) {
  TempDir dir;
  const DatasetMeta meta{4, "char", {U'\n', U' ', U'é', U'🙂'}};
  write_meta_pkl(dir / "meta.pkl", meta);
  const DatasetMeta back = read_meta_pkl(dir / "meta.pkl");
  EXPECT_EQ(back.vocab_size, 4);
  EXPECT_EQ(back.itos, meta.itos);
  const PickleRef stoi = parse_pickle(read_file(dir / "meta.pkl"), "meta.pkl")->get("stoi");
  ASSERT_EQ(stoi->entries.size(), 4u);
  EXPECT_EQ(stoi->entries[3].first->text, "🙂");
  EXPECT_EQ(stoi->entries[3].second->integer, 3);
}

TEST(Pickle, WrittenMetaPklLoadsInPython) {
  TempDir dir;
  write_meta_pkl(dir / "meta.pkl", DatasetMeta{3, "char", {U'\n', U'a', U'é'}});
  const std::string check =
      NANOGPT_PYTHON " -c \"import pickle; m = pickle.load(open('" + (dir / "meta.pkl") +
      "', 'rb')); assert m == {'vocab_size': 3, 'itos': {0: '\\n', 1: 'a', 2: '\\u00e9'}, 'stoi': {'\\n': 0, 'a': 1, "
      "'\\u00e9': 2}}, m\"";
  EXPECT_EQ(std::system(check.c_str()), 0) << check;
}
