#pragma once
// Dataset preparation: nanoGPT's data/shakespeare_char/prepare.py, and with GPT-2 BPE its
// data/shakespeare/prepare.py and data/openwebtext/prepare.py.
#include <cstdint>
#include <string>
#include <vector>

namespace nanogpt {

struct PreparedDataset {
  int64_t vocab_size = 0;
  int64_t train_tokens = 0;
  int64_t val_tokens = 0;
};

// Python's text-mode reading: "\r\n" and lone "\r" become "\n".
std::string universal_newlines(std::string text);

// Reads UTF-8 `input_path`, builds the sorted character vocabulary, splits the characters
// 90/10 and writes train.bin, val.bin (uint16) and meta.json into `out_dir`.
PreparedDataset prepare_char_dataset(const std::string& input_path, const std::string& out_dir);

struct Gpt2PrepareOptions {
  std::vector<std::string> inputs;  // UTF-8 text files
  std::string out_dir;
  std::string vocab_dir;            // holds encoder.json and vocab.bpe
  double val_fraction = -1;         // < 0: 0.1 for one text, 0.0005 for documents (nanoGPT's)
  std::string doc_separator;        // with it, each file holds several documents
  uint64_t seed = 2357;             // nanoGPT's openwebtext split seed
  int threads = 0;                  // 0: all hardware threads
  bool progress = false;            // a progress bar on stderr
};

struct PreparedGpt2Dataset {
  int64_t train_tokens = 0;
  int64_t val_tokens = 0;
  int64_t documents = 0;      // 1 for a single text
  int64_t val_documents = 0;  // 0 for a single text
};

// One input and no separator: nanoGPT's data/shakespeare/prepare.py, the first 90% of the
// characters (`val_fraction` 0.1) to train.bin and the rest to val.bin, each encoded with
// encode_ordinary. Otherwise documents (each file, or each part between separators), as in
// nanoGPT's openwebtext/prepare.py: each encoded and followed by <|endoftext|>, a seeded
// ceil(val_fraction * documents) of them to val.bin, the others to train.bin, in input order,
// streamed and encoded on `threads` threads. Both write uint16 files and meta.json
// (tokenizer "gpt2"). Text is read as Python's text mode reads it ("\r\n" -> "\n").
PreparedGpt2Dataset prepare_gpt2_dataset(const Gpt2PrepareOptions& options);

// The public address nanoGPT downloads Tiny Shakespeare from.
extern const char* const kTinyShakespeareUrl;


}  // namespace nanogpt
