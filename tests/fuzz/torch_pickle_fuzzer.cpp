// libFuzzer target for the torch.save pickle reader (data.pkl of ckpt.pt): any input must
// parse or raise PickleError, never crash, hang, read out of bounds or run a global.
// Built and run by tools/fuzz_pickle.sh.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "nanogpt/formats/torch_pickle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  std::vector<nanogpt::TensorRecipe> recipes;
  try {
    (void)nanogpt::parse_torch_pickle(bytes, "fuzz", recipes);
  } catch (const nanogpt::PickleError&) {
  }
  return 0;
}
