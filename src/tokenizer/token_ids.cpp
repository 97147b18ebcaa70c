// Token ids as text or uint16 bytes (`nanogpt tokenize`), and the encoding benchmark.
#include <algorithm>
#include <chrono>
#include <stdexcept>

#include <fmt/format.h>

#include "nanogpt/tokenizer/bpe.h"

namespace nanogpt {

TokenIdFormat token_id_format(const std::string& name) {
  if (name == "text") return TokenIdFormat::kText;
  if (name == "uint16") return TokenIdFormat::kUint16;
  throw std::invalid_argument(fmt::format("--format must be text or uint16, got '{}'", name));
}

std::string format_token_ids(const std::vector<uint32_t>& ids, TokenIdFormat format) {
  std::string out;
  if (format == TokenIdFormat::kUint16) {
    out.resize(ids.size() * 2);
    for (size_t i = 0; i < ids.size(); ++i) {
      out[2 * i] = static_cast<char>(ids[i] & 0xFF);
      out[2 * i + 1] = static_cast<char>(ids[i] >> 8);
    }
    return out;
  }
  out.reserve(ids.size() * 6);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) out += ' ';
    out += std::to_string(ids[i]);
  }
  out += '\n';
  return out;
}

std::vector<uint32_t> parse_token_ids(std::string_view data, TokenIdFormat format, const std::string& origin) {
  std::vector<uint32_t> ids;
  if (format == TokenIdFormat::kUint16) {
    if (data.size() % 2 != 0) {
      throw TokenizerError(fmt::format("{}: odd size ({} bytes); expected uint16 token ids", origin, data.size()));
    }
    for (size_t i = 0; i < data.size(); i += 2) {
      ids.push_back(static_cast<unsigned char>(data[i]) | (static_cast<uint32_t>(static_cast<unsigned char>(data[i + 1])) << 8));
    }
    return ids;
  }
  const auto is_space = [](char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; };
  for (size_t i = 0; i < data.size();) {
    if (is_space(data[i])) {
      ++i;
      continue;
    }
    const size_t start = i;
    uint64_t id = 0;
    while (i < data.size() && !is_space(data[i])) {
      if (data[i] < '0' || data[i] > '9' || i - start >= 9) {
        while (i < data.size() && !is_space(data[i])) ++i;
        throw TokenizerError(fmt::format("{}: '{}' at byte offset {} is not a token id; expected decimal ids "
                                         "separated by spaces",
                                         origin, data.substr(start, std::min<size_t>(i - start, 40)), start));
      }
      id = id * 10 + static_cast<uint64_t>(data[i++] - '0');
    }
    ids.push_back(static_cast<uint32_t>(id));
  }
  return ids;
}

EncodeBenchmark benchmark_encoding(const Gpt2Bpe& bpe, const std::vector<std::string>& texts, int threads, int repeats) {
  EncodeBenchmark result;
  for (const auto& text : texts) result.bytes += static_cast<int64_t>(text.size());
  for (int run = 0; run < std::max(1, repeats); ++run) {
    const auto start = std::chrono::steady_clock::now();
    int64_t tokens = 0;
    for (const auto& text : texts) {
      tokens += static_cast<int64_t>(threads > 1 ? bpe.encode_ordinary_parallel(text, threads).size()
                                                 : bpe.encode_ordinary(text).size());
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (run == 0 || seconds < result.best_seconds) result.best_seconds = seconds;
    result.tokens = tokens;
  }
  return result;
}

}  // namespace nanogpt
