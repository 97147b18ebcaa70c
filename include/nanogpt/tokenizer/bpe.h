#pragma once
// GPT-2's byte-level BPE, exact to tiktoken's "gpt2" encoding: the text is split into
// pieces by GPT-2's pattern (pretokenize.h), and each piece's bytes are merged by rank as
// tiktoken's `_byte_pair_merge` does. The vocabulary is OpenAI's encoder.json + vocab.bpe.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "nanogpt/tokenizer/char_tokenizer.h"  // TokenizerError

namespace nanogpt {

// Pieces already merged and their tokens. One per thread: it is not thread-safe. It forgets
// everything when it holds max_pieces, so memory stays bounded on any corpus.
class BpeCache {
 public:
  explicit BpeCache(size_t max_pieces = 1 << 18);
  ~BpeCache();
  BpeCache(BpeCache&&) noexcept;
  // The cached tokens of `piece`, or nullptr; `count` receives their number.
  const uint32_t* find(std::string_view piece, size_t& count) const;
  void insert(std::string_view piece, const uint32_t* ids, size_t count);

 private:
  struct Table;
  std::unique_ptr<Table> table_;
  size_t max_pieces_;
};

class Gpt2Bpe {
 public:
  static constexpr uint32_t kEndOfText = 50256;
  static constexpr std::string_view kEndOfTextText = "<|endoftext|>";

  // Reads `vocab_dir`/encoder.json and `vocab_dir`/vocab.bpe. Errors name the file and
  // what was expected there.
  static Gpt2Bpe load(const std::string& vocab_dir);
  // From the two files' contents; `encoder_origin`/`merges_origin` name them in errors.
  Gpt2Bpe(const std::string& encoder_json, const std::string& vocab_bpe, const std::string& encoder_origin,
          const std::string& merges_origin);
  ~Gpt2Bpe();
  Gpt2Bpe(Gpt2Bpe&&) noexcept;
  Gpt2Bpe& operator=(Gpt2Bpe&&) noexcept;

  size_t vocab_size() const;  // 50257 for GPT-2

  // tiktoken's encode_ordinary: "<|endoftext|>" in the text is plain text. The text must be
  // UTF-8; invalid UTF-8 throws TokenizerError naming the byte offset.
  std::vector<uint32_t> encode_ordinary(std::string_view text) const;
  // The same, appending to `ids` and reusing `cache` across calls.
  void encode_ordinary(std::string_view text, BpeCache& cache, std::vector<uint32_t>& ids) const;
  // The same ids, with the text cut into chunks at piece boundaries and encoded on `threads` threads.
  std::vector<uint32_t> encode_ordinary_parallel(std::string_view text, int threads) const;
  // tiktoken's encode(text, allowed_special={"<|endoftext|>"}), as nanoGPT's sample.py calls it:
  // each "<|endoftext|>" becomes kEndOfText. The text between is encoded on `threads` threads.
  std::vector<uint32_t> encode(std::string_view text, int threads = 1) const;

  // The bytes of the tokens. They need not be valid UTF-8: a character may span tokens.
  std::string decode(const std::vector<uint32_t>& ids) const;
  std::string_view token_bytes(uint32_t id) const;
  // The token whose bytes are exactly `bytes` (kEndOfText excluded), or -1.
  int64_t token_id(std::string_view bytes) const;

 private:
  struct Tables;
  void encode_piece(std::string_view piece, BpeCache& cache, std::vector<uint32_t>& ids) const;
  void merge_piece(std::string_view piece, std::vector<uint32_t>& ids) const;
  std::unique_ptr<const Tables> tables_;
};

// The tokens' byte strings by id, read from encoder.json (GPT-2's byte-to-unicode keys) and
// checked against vocab.bpe (merge k makes token 256 + k), as tiktoken checks them.
std::vector<std::string> read_gpt2_vocab(const std::string& encoder_json, const std::string& vocab_bpe,
                                         const std::string& encoder_origin, const std::string& merges_origin);

// How `nanogpt tokenize` reads and writes token ids: decimal text ("15496 995\n": one line,
// single spaces), or raw little-endian uint16 as nanoGPT's .bin files.
enum class TokenIdFormat { kText, kUint16 };
// "text" or "uint16"; throws std::invalid_argument naming the value otherwise.
TokenIdFormat token_id_format(const std::string& name);
std::string format_token_ids(const std::vector<uint32_t>& ids, TokenIdFormat format);
// Throws TokenizerError naming `origin` and the offending bytes.
std::vector<uint32_t> parse_token_ids(std::string_view data, TokenIdFormat format, const std::string& origin);

// The encoding throughput of `texts`, each encoded as one call: encode_ordinary on one
// thread, encode_ordinary_parallel on more. The fastest of `repeats` runs counts.
struct EncodeBenchmark {
  int64_t bytes = 0;
  int64_t tokens = 0;
  double best_seconds = 0;
  double megabytes_per_second() const { return best_seconds > 0 ? static_cast<double>(bytes) / best_seconds / 1e6 : 0; }
};
EncodeBenchmark benchmark_encoding(const Gpt2Bpe& bpe, const std::vector<std::string>& texts, int threads, int repeats);

// OpenAI's public address of encoder.json and vocab.bpe (NANOGPT_GPT2_VOCAB_URL overrides it).
extern const char* const kGpt2VocabUrl;

// The folder holding encoder.json and vocab.bpe: `vocab_dir` when not empty, else
// $NANOGPT_GPT2_VOCAB_DIR, else the cache folder ($XDG_CACHE_HOME or ~/.cache)/nanogpt-cpp/gpt2,
// filled by a download when the files are missing there. Errors say which places were tried.
std::string find_gpt2_vocab_dir(const std::string& vocab_dir);

}  // namespace nanogpt
