#pragma once
// Character-level vocabulary (nanoGPT's shakespeare_char `meta`): sorted distinct code
// points, ids are positions. Stored as meta.json in the dataset folder.
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace nanogpt {

struct TokenizerError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// UTF-8 text to code points; throws TokenizerError naming `origin` on invalid UTF-8.
std::vector<char32_t> decode_utf8(const std::string& text, const std::string& origin);
std::string encode_utf8(char32_t code_point);

class CharTokenizer {
 public:
  // The sorted distinct characters of `text`, as nanoGPT's prepare.py builds them.
  static CharTokenizer from_text(const std::vector<char32_t>& text);
  explicit CharTokenizer(std::vector<char32_t> itos);

  int64_t vocab_size() const { return static_cast<int64_t>(itos_.size()); }
  // Throws TokenizerError naming a character that is not in the vocabulary.
  std::vector<int64_t> encode(const std::string& text) const;
  std::vector<uint16_t> encode(const std::vector<char32_t>& text) const;
  std::string decode(const std::vector<int64_t>& ids) const;
  const std::vector<char32_t>& itos() const { return itos_; }

 private:
  std::vector<char32_t> itos_;
  std::unordered_map<char32_t, int64_t> stoi_;
};

// The dataset's meta.json: {"vocab_size": N, "tokenizer": "char", "itos": ["\n", " ", ...]},
// or {"vocab_size": 50257, "tokenizer": "gpt2"} for GPT-2 BPE.
struct DatasetMeta {
  int64_t vocab_size = 0;
  std::string tokenizer;       // "char", "gpt2", or "none" (a meta.pkl with vocab_size only)
  std::vector<char32_t> itos;  // char vocabulary
};

void write_meta_json(const std::string& path, const DatasetMeta& meta);

// nanoGPT's meta.pkl for a char vocabulary: {'vocab_size', 'itos': {id: char}, 'stoi': {char: id}}.
void write_meta_pkl(const std::string& path, const DatasetMeta& meta);

// nanoGPT's meta.pkl (a pickled dict: vocab_size, itos {int: char}, stoi), read without Python.
DatasetMeta read_meta_pkl(const std::string& path);

// The dataset folder's vocabulary: meta.json, else nanoGPT's meta.pkl, else none.
std::optional<DatasetMeta> read_dataset_meta(const std::string& data_dir);
// Throws TokenizerError naming the file and the field when it is malformed.
DatasetMeta read_meta_json(const std::string& path);

}  // namespace nanogpt
