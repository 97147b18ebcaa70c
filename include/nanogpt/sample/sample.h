#pragma once
// nanoGPT's sample.py: load out_dir/ckpt.pt, encode the start text with the dataset's
// vocabulary (its char vocabulary, else GPT-2 BPE with <|endoftext|> allowed, as sample.py
// falls back to tiktoken's gpt2 when there is no meta.pkl), generate and decode.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace nanogpt {

struct SampleOptions {
  std::string out_dir = "out";
  std::string start = "\n";  // or "FILE:path"
  int64_t num_samples = 10;
  int64_t max_new_tokens = 500;
  double temperature = 0.8;
  std::optional<int64_t> top_k = 200;
  int64_t seed = 1337;
  std::string device = "cpu";
  std::string data_dir;      // empty: the data_dir of the checkpoint's config
  std::string init_from = "resume";  // or gpt2, gpt2-medium, gpt2-large, gpt2-xl (sample.py's init_from)
  std::string pretrained_dir;        // with gpt2*: the Hugging Face folder (see pretrained.h)
  std::string vocab_dir;     // GPT-2's encoder.json and vocab.bpe; empty: find_gpt2_vocab_dir's search
  bool use_kv_cache = true;
  int64_t num_threads = 0;   // 0: all hardware threads
};

// Calls `emit` with each decoded sample (start text included, as sample.py prints it). With
// GPT-2 BPE a sample is bytes, not always valid UTF-8 (a character may be cut at the end).
void sample(const SampleOptions& options, const std::function<void(const std::string&)>& emit);

}  // namespace nanogpt
