#include "nanogpt/tokenizer.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "nanogpt/fileio.h"

namespace nanogpt {

std::vector<char32_t> decode_utf8(const std::string& text, const std::string& origin) {
  std::vector<char32_t> out;
  out.reserve(text.size());
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = s[i];
    int extra = 0;
    char32_t cp = 0;
    if (c < 0x80) {
      cp = c;
    } else if ((c & 0xE0) == 0xC0) {
      extra = 1, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3, cp = c & 0x07;
    } else {
      throw TokenizerError(fmt::format("{}: invalid UTF-8 byte 0x{:02x} at offset {}", origin, c, i));
    }
    for (int k = 1; k <= extra; ++k) {
      if (i + k >= n || (s[i + k] & 0xC0) != 0x80) {
        throw TokenizerError(fmt::format("{}: invalid UTF-8 sequence at offset {}", origin, i));
      }
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    out.push_back(cp);
    i += 1 + extra;
  }
  return out;
}

std::string encode_utf8(char32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

CharTokenizer CharTokenizer::from_text(const std::vector<char32_t>& text) {
  std::set<char32_t> chars(text.begin(), text.end());
  return CharTokenizer(std::vector<char32_t>(chars.begin(), chars.end()));
}

CharTokenizer::CharTokenizer(std::vector<char32_t> itos) : itos_(std::move(itos)) {
  if (itos_.size() > 65536) {
    throw TokenizerError(fmt::format("a character vocabulary of {} entries does not fit uint16 token files",
                                     itos_.size()));
  }
  for (size_t i = 0; i < itos_.size(); ++i) stoi_[itos_[i]] = static_cast<int64_t>(i);
}

std::vector<uint16_t> CharTokenizer::encode(const std::vector<char32_t>& text) const {
  std::vector<uint16_t> ids;
  ids.reserve(text.size());
  for (char32_t c : text) {
    auto it = stoi_.find(c);
    if (it == stoi_.end()) {
      throw TokenizerError(fmt::format("character U+{:04X} ('{}') is not in the vocabulary",
                                       static_cast<uint32_t>(c), encode_utf8(c)));
    }
    ids.push_back(static_cast<uint16_t>(it->second));
  }
  return ids;
}

std::vector<int64_t> CharTokenizer::encode(const std::string& text) const {
  const auto ids = encode(decode_utf8(text, "text"));
  return std::vector<int64_t>(ids.begin(), ids.end());
}

std::string CharTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string out;
  for (int64_t id : ids) {
    if (id < 0 || id >= vocab_size()) {
      throw TokenizerError(fmt::format("token id {} is outside the vocabulary (0..{})", id, vocab_size() - 1));
    }
    out += encode_utf8(itos_[id]);
  }
  return out;
}

void write_meta_json(const std::string& path, const DatasetMeta& meta) {
  nlohmann::json j;
  j["vocab_size"] = meta.vocab_size;
  j["tokenizer"] = meta.tokenizer;
  nlohmann::json itos = nlohmann::json::array();
  for (char32_t c : meta.itos) itos.push_back(encode_utf8(c));
  j["itos"] = itos;
  write_file_atomically(path, [&](std::ostream& out) { out << j.dump(1) << "\n"; });
}

DatasetMeta read_meta_json(const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw TokenizerError(fmt::format("{}: not valid JSON: {}", path, e.what()));
  } catch (const IoError& e) {
    throw TokenizerError(e.what());
  }
  DatasetMeta meta;
  try {
    meta.vocab_size = j.at("vocab_size").get<int64_t>();
    meta.tokenizer = j.value("tokenizer", std::string("char"));
    if (meta.tokenizer == "char") {
      for (const auto& entry : j.at("itos")) {
        const auto cps = decode_utf8(entry.get<std::string>(), path);
        if (cps.size() != 1) {
          throw TokenizerError(fmt::format("{}: each 'itos' entry must be one character, got '{}'", path,
                                           entry.get<std::string>()));
        }
        meta.itos.push_back(cps[0]);
      }
    }
  } catch (const nlohmann::json::exception& e) {
    throw TokenizerError(fmt::format("{}: expected fields vocab_size (integer) and itos (list of characters): {}",
                                     path, e.what()));
  }
  if (meta.vocab_size <= 0 || meta.vocab_size > 65536) {
    throw TokenizerError(fmt::format("{}: vocab_size must be in 1..65536, got {}", path, meta.vocab_size));
  }
  if (meta.tokenizer == "char" && static_cast<int64_t>(meta.itos.size()) != meta.vocab_size) {
    throw TokenizerError(fmt::format("{}: itos has {} entries but vocab_size is {}", path, meta.itos.size(),
                                     meta.vocab_size));
  }
  return meta;
}

}  // namespace nanogpt
