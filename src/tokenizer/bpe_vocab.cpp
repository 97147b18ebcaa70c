// GPT-2's vocabulary files: reading and checking encoder.json and vocab.bpe, and finding
// (or downloading) the folder that holds them.
#include <array>
#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "nanogpt/tokenizer/bpe.h"
#include "nanogpt/base/fileio.h"

namespace nanogpt {

namespace fs = std::filesystem;

const char* const kGpt2VocabUrl = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main";

namespace {

// GPT-2's bytes_to_unicode, inverted: printable bytes stand for themselves, the other 68
// bytes for U+0100 upwards in byte order. Index: code point; value: byte, or -1.
std::array<int, 324> unicode_to_byte() {
  std::array<int, 324> table;
  table.fill(-1);
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    table[printable ? b : next++] = b;
  }
  return table;
}

// A key of encoder.json or a half of a vocab.bpe line, back to the bytes it stands for.
std::string to_bytes(const std::string& text, const std::array<int, 324>& table, const std::string& where) {
  std::string bytes;
  for (char32_t cp : decode_utf8(text, where)) {
    if (cp >= table.size() || table[cp] < 0) {
      throw TokenizerError(fmt::format("{}: '{}' has U+{:04X}, which is not in GPT-2's byte-to-unicode alphabet",
                                       where, text, static_cast<uint32_t>(cp)));
    }
    bytes += static_cast<char>(table[cp]);
  }
  return bytes;
}

std::vector<std::string> read_encoder_json(const std::string& text, const std::string& origin,
                                           const std::array<int, 324>& table) {
  const std::string expected = "expected a JSON object mapping each GPT-2 token to its id 0..50256";
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw TokenizerError(fmt::format("{}: not valid JSON ({}); {}", origin, e.what(), expected));
  }
  if (!json.is_object() || json.size() != Gpt2Bpe::kEndOfText + 1) {
    throw TokenizerError(fmt::format("{}: {} entries; {}", origin, json.is_object() ? json.size() : 0, expected));
  }
  std::vector<std::string> bytes_by_id(json.size());
  std::vector<bool> seen(json.size(), false);
  for (const auto& [key, value] : json.items()) {
    if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() >= int64_t(json.size())) {
      throw TokenizerError(fmt::format("{}: token '{}' has id {}; {}", origin, key, value.dump(), expected));
    }
    const auto id = value.get<size_t>();
    if (seen[id]) throw TokenizerError(fmt::format("{}: id {} is given to two tokens; {}", origin, id, expected));
    seen[id] = true;
    bytes_by_id[id] = id == Gpt2Bpe::kEndOfText ? key : to_bytes(key, table, origin);
  }
  if (bytes_by_id[Gpt2Bpe::kEndOfText] != Gpt2Bpe::kEndOfTextText) {
    throw TokenizerError(fmt::format("{}: id {} is '{}'; expected '<|endoftext|>' (GPT-2's vocabulary)", origin,
                                     Gpt2Bpe::kEndOfText, bytes_by_id[Gpt2Bpe::kEndOfText]));
  }
  for (size_t id = 0; id < 256; ++id) {
    if (bytes_by_id[id].size() != 1) {
      throw TokenizerError(fmt::format("{}: id {} is '{}'; expected a single byte (GPT-2's ids 0..255 are the bytes)",
                                       origin, id, bytes_by_id[id]));
    }
  }
  return bytes_by_id;
}

// tiktoken builds the ranks from vocab.bpe (merge k makes token 256 + k) and checks that they
// equal encoder.json's ids; so does this.
void check_merges(const std::string& text, const std::string& origin, const std::vector<std::string>& bytes_by_id,
                  const std::array<int, 324>& table) {
  size_t line_start = 0, line_number = 0, merges = 0;
  while (line_start < text.size()) {
    size_t line_end = text.find('\n', line_start);
    if (line_end == std::string::npos) line_end = text.size();
    std::string line = text.substr(line_start, line_end - line_start);
    line_start = line_end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line_number == 1) {
      if (line.rfind("#version", 0) != 0) {
        throw TokenizerError(fmt::format("{}: line 1 is '{}'; expected '#version: 0.2' and then one merge per line",
                                         origin, line));
      }
      continue;
    }
    if (line.empty()) continue;
    const std::string where = fmt::format("{} line {}", origin, line_number);
    const size_t space = line.find(' ');
    if (space == std::string::npos || space == 0 || line.find(' ', space + 1) != std::string::npos) {
      throw TokenizerError(fmt::format("{}: '{}'; expected two tokens separated by one space", where, line));
    }
    const std::string merged = to_bytes(line.substr(0, space), table, where) + to_bytes(line.substr(space + 1), table, where);
    const size_t id = 256 + merges++;
    if (id >= Gpt2Bpe::kEndOfText || bytes_by_id[id] != merged) {
      throw TokenizerError(fmt::format("{}: merge '{}' is merge {} and should make token {} of encoder.json, which is "
                                       "'{}'; the files do not belong together",
                                       where, line, merges, id, id < bytes_by_id.size() ? bytes_by_id[id] : "none"));
    }
  }
  if (256 + merges != Gpt2Bpe::kEndOfText) {
    throw TokenizerError(fmt::format("{}: {} merges; expected {} (one per token of encoder.json after the 256 bytes)",
                                     origin, merges, Gpt2Bpe::kEndOfText - 256));
  }
}

bool has_vocab_files(const fs::path& dir) {
  return fs::is_regular_file(dir / "encoder.json") && fs::is_regular_file(dir / "vocab.bpe");
}

std::string checked_vocab_dir(const std::string& dir, const std::string& source) {
  for (const char* name : {"encoder.json", "vocab.bpe"}) {
    if (!fs::is_regular_file(fs::path(dir) / name)) {
      throw TokenizerError(fmt::format("{} '{}' has no {}; expected GPT-2's encoder.json and vocab.bpe there",
                                       source, dir, name));
    }
  }
  return dir;
}

fs::path vocab_cache_dir() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  if (xdg != nullptr && *xdg != '\0') return fs::path(xdg) / "nanogpt-cpp" / "gpt2";
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0') {
    throw TokenizerError("no GPT-2 vocabulary: neither --vocab-dir, NANOGPT_GPT2_VOCAB_DIR, XDG_CACHE_HOME nor HOME is set");
  }
  return fs::path(home) / ".cache" / "nanogpt-cpp" / "gpt2";
}

}  // namespace

std::vector<std::string> read_gpt2_vocab(const std::string& encoder_json, const std::string& vocab_bpe,
                                         const std::string& encoder_origin, const std::string& merges_origin) {
  const std::array<int, 324> table = unicode_to_byte();
  std::vector<std::string> bytes_by_id = read_encoder_json(encoder_json, encoder_origin, table);
  check_merges(vocab_bpe, merges_origin, bytes_by_id, table);
  return bytes_by_id;
}

Gpt2Bpe Gpt2Bpe::load(const std::string& vocab_dir) {
  const std::string encoder_path = (fs::path(vocab_dir) / "encoder.json").string();
  const std::string merges_path = (fs::path(vocab_dir) / "vocab.bpe").string();
  try {
    const std::string encoder_json = read_file(encoder_path);
    return Gpt2Bpe(encoder_json, read_file(merges_path), encoder_path, merges_path);
  } catch (const IoError& e) {
    throw TokenizerError(fmt::format("{} (expected GPT-2's encoder.json and vocab.bpe in '{}')", e.what(), vocab_dir));
  }
}

std::string find_gpt2_vocab_dir(const std::string& vocab_dir) {
  if (!vocab_dir.empty()) return checked_vocab_dir(vocab_dir, "vocab dir");
  const char* env = std::getenv("NANOGPT_GPT2_VOCAB_DIR");
  if (env != nullptr && *env != '\0') return checked_vocab_dir(env, "NANOGPT_GPT2_VOCAB_DIR");
  const fs::path cache = vocab_cache_dir();
  if (has_vocab_files(cache)) return cache.string();
  const char* url_env = std::getenv("NANOGPT_GPT2_VOCAB_URL");
  const std::string base_url = url_env != nullptr && *url_env != '\0' ? url_env : kGpt2VocabUrl;
  try {
    fs::create_directories(cache);
    for (const char* name : {"encoder.json", "vocab.bpe"}) {
      if (!fs::is_regular_file(cache / name)) download_file(base_url + "/" + name, (cache / name).string());
    }
  } catch (const std::exception& e) {
    throw TokenizerError(fmt::format(
        "no GPT-2 vocabulary: '{}' has no encoder.json and vocab.bpe, and downloading them from {} failed: {}. "
        "Pass --vocab-dir DIR or set NANOGPT_GPT2_VOCAB_DIR to a folder with both files, or copy them into '{}'",
        cache.string(), base_url, e.what(), cache.string()));
  }
  return cache.string();
}

}  // namespace nanogpt
