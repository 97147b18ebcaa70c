// libFuzzer target for the pickle reader: any input must parse or raise PickleError,
// never crash, hang or read out of bounds. Built and run by tools/fuzz_pickle.sh.
#include <cstddef>
#include <cstdint>
#include <string>

#include "nanogpt/formats/pickle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    const nanogpt::PickleRef value = nanogpt::parse_pickle(bytes, "fuzz");
    (void)nanogpt::write_pickle(*value);  // whatever parses can be written back
  } catch (const nanogpt::PickleError&) {
  }
  return 0;
}
