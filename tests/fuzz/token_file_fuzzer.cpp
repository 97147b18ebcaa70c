// libFuzzer target for the token-file reader (TokenFile, batch_at, draw_batch_offsets) and
// meta.json: a batch holds the file's ids at its offsets, each below the vocabulary size, y
// one token ahead of x; anything else must be a DataError (a TokenizerError for meta.json).
// Run by tools/fuzz.sh.
//
// An input starting with '{' is a meta.json. Any other: bytes 0-1 the vocabulary size
// (little-endian, 0 = unchecked), byte 2 block_size - 1, byte 3 the batch size drawn, bytes
// 4-11 one offset (little-endian int64), the rest the token file.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <tuple>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "nanogpt/data/data.h"
#include "nanogpt/tokenizer/char_tokenizer.h"

namespace {

constexpr size_t kHeaderBytes = 12;

void check(bool ok, const char* broken) {
  if (ok) return;
  std::fprintf(stderr, "token_file_fuzzer: %s\n", broken);
  std::abort();
}

std::string write_temp_file(const char* name, const uint8_t* data, size_t size) {
  const std::string path = "/tmp/nanogpt-token-file-fuzz-" + std::to_string(::getpid()) + "-" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), size);
  return path;
}

uint64_t read_le(const uint8_t* bytes, int count) {
  uint64_t value = 0;
  for (int i = count - 1; i >= 0; --i) value = (value << 8) | bytes[i];
  return value;
}

void fuzz_meta_json(const uint8_t* data, size_t size) {
  const std::string path = write_temp_file("meta.json", data, size);
  try {
    const nanogpt::DatasetMeta meta = nanogpt::read_meta_json(path);
    check(meta.vocab_size >= 1 && meta.vocab_size <= 65536, "meta.json read with vocab_size outside 1..65536");
    check(meta.tokenizer != "char" || static_cast<int64_t>(meta.itos.size()) == meta.vocab_size,
          "meta.json read with itos not of vocab_size entries");
  } catch (const nanogpt::TokenizerError&) {
  }
}

// Whether the block_size + 1 tokens at `offset` are in the file and all below vocab_size.
bool window_is_valid(const std::vector<uint16_t>& tokens, int64_t offset, int64_t block_size, int64_t vocab_size) {
  const auto count = static_cast<int64_t>(tokens.size());
  if (offset < 0 || offset >= count || block_size >= count - offset) return false;
  for (int64_t t = offset; t <= offset + block_size; ++t) {
    if (vocab_size > 0 && tokens[t] >= vocab_size) return false;
  }
  return true;
}

// The windows at `offsets` when every one is valid, else a DataError.
void check_batch(const nanogpt::TokenFile& file, const std::vector<uint16_t>& tokens, const at::Tensor& offsets,
                 int64_t block_size) {
  const int64_t batch_size = offsets.size(0);
  const auto offset = offsets.accessor<int64_t, 1>();
  bool valid = true;
  for (int64_t b = 0; b < batch_size; ++b) {
    valid = valid && window_is_valid(tokens, offset[b], block_size, file.vocab_size());
  }
  at::Tensor x, y;
  try {
    std::tie(x, y) = nanogpt::batch_at(file, offsets, block_size);
  } catch (const nanogpt::DataError&) {
    check(!valid, "DataError for windows that are in the file and within the vocabulary");
    return;
  }
  check(valid, "a batch returned for a window past the end or with an id outside the vocabulary");
  check(x.sizes() == at::IntArrayRef({batch_size, block_size}) && y.sizes() == x.sizes(), "batch of the wrong shape");
  check(x.scalar_type() == at::kLong && y.scalar_type() == at::kLong, "batch not int64");
  const auto xs = x.accessor<int64_t, 2>(), ys = y.accessor<int64_t, 2>();
  for (int64_t b = 0; b < batch_size; ++b) {
    for (int64_t t = 0; t < block_size; ++t) {
      const int64_t x_id = xs[b][t], y_id = ys[b][t];
      check(x_id == tokens[offset[b] + t] && y_id == tokens[offset[b] + t + 1], "batch does not hold the file's ids");
      for (const int64_t id : {x_id, y_id}) {
        check(id >= 0 && (file.vocab_size() == 0 || id < file.vocab_size()), "id outside the vocabulary");
      }
    }
  }
}

at::Tensor offsets_of(const std::vector<int64_t>& values) {
  at::Tensor offsets = at::empty({static_cast<int64_t>(values.size())}, at::kLong);
  for (size_t i = 0; i < values.size(); ++i) offsets.data_ptr<int64_t>()[i] = values[i];
  return offsets;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 0 && data[0] == '{') {
    fuzz_meta_json(data, size);
    return 0;
  }
  if (size < kHeaderBytes) return 0;
  const auto vocab_size = static_cast<int64_t>(read_le(data, 2));
  const int64_t block_size = 1 + data[2];
  const int64_t drawn_batch_size = data[3] % 8;
  const auto raw_offset = static_cast<int64_t>(read_le(data + 4, 8));
  const uint8_t* body = data + kHeaderBytes;
  const size_t body_size = size - kHeaderBytes;
  std::vector<uint16_t> tokens(body_size / 2);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<uint16_t>(read_le(body + 2 * i, 2));

  const std::string path = write_temp_file("tokens.bin", body, body_size);
  try {
    const nanogpt::TokenFile file(path, vocab_size);
    check(body_size > 0 && body_size % 2 == 0, "TokenFile opened an empty or odd-sized file");
    check(file.size() == static_cast<int64_t>(tokens.size()), "TokenFile size is not bytes / 2");
    const int64_t last_offset = file.size() - block_size - 1;
    for (const std::vector<int64_t>& offsets : std::vector<std::vector<int64_t>>{
             {0}, {last_offset}, {last_offset + 1}, {raw_offset}, {0, last_offset}, {raw_offset, 0}}) {
      check_batch(file, tokens, offsets_of(offsets), block_size);
    }
    at::Generator generator = at::detail::createCPUGenerator(raw_offset);
    at::Tensor drawn;
    try {
      drawn = nanogpt::draw_batch_offsets(file, drawn_batch_size, block_size, generator);
    } catch (const nanogpt::DataError&) {
      check(file.size() <= block_size, "draw_batch_offsets refused a file longer than block_size");
      return 0;
    }
    check(drawn.size(0) == drawn_batch_size, "draw_batch_offsets drew the wrong number of offsets");
    const auto drawn_offset = drawn.accessor<int64_t, 1>();
    for (int64_t b = 0; b < drawn_batch_size; ++b) {
      check(drawn_offset[b] >= 0 && drawn_offset[b] <= last_offset, "draw_batch_offsets drew an offset past the end");
    }
    check_batch(file, tokens, drawn, block_size);
  } catch (const nanogpt::DataError&) {
    // TokenFile refused the file: only an empty or odd-sized one may be refused.
    check(body_size == 0 || body_size % 2 != 0, "TokenFile refused a non-empty file of whole tokens");
  }
  return 0;
}
