// libFuzzer target for the GPT-2 BPE tokenizer: any bytes either encode (and then decode
// back to the same bytes) or raise TokenizerError for invalid UTF-8; never crash or hang.
// Needs GPT-2's encoder.json and vocab.bpe in $NANOGPT_GPT2_VOCAB_DIR. Run by tools/fuzz_pickle.sh.
#include <cstdlib>
#include <memory>
#include <string>

#include "nanogpt/tokenizer/bpe.h"

namespace {
std::unique_ptr<nanogpt::Gpt2Bpe> bpe;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* dir = std::getenv("NANOGPT_GPT2_VOCAB_DIR");
  if (dir == nullptr) std::abort();
  bpe = std::make_unique<nanogpt::Gpt2Bpe>(nanogpt::Gpt2Bpe::load(dir));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto ids = bpe->encode_ordinary(text);
    if (bpe->decode(ids) != text) std::abort();  // the round trip is exact
    const auto with_special = bpe->encode(text);
    if (bpe->decode(with_special) != text) std::abort();
  } catch (const nanogpt::TokenizerError&) {
  }
  return 0;
}
