#include "test_util.h"

#include "nanogpt/prepare.h"

namespace nanogpt::testing {

void make_char_dataset(const std::string& dir, int repeats) {
  std::filesystem::create_directories(dir);
  std::string text;
  for (int i = 0; i < repeats; ++i) text += "to be or not to be, that is the question.\n";
  write_text(dir + "/input.txt", text);
  prepare_char_dataset(dir + "/input.txt", dir);
}

}  // namespace nanogpt::testing
