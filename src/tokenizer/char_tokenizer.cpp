#include "nanogpt/tokenizer/char_tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "nanogpt/base/fileio.h"
#include "nanogpt/formats/pickle.h"
#include "nanogpt/base/json_integer.h"

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
  if (meta.tokenizer == "char") {
    nlohmann::json itos = nlohmann::json::array();
    for (char32_t c : meta.itos) itos.push_back(encode_utf8(c));
    j["itos"] = itos;
  }
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
    const nlohmann::json& vocab_size = j.at("vocab_size");
    const std::optional<int64_t> checked = json_integer_in(vocab_size, 1, 65536);
    if (!checked) {
      throw TokenizerError(
          fmt::format("{}: vocab_size must be an integer in 1..65536, got {}", path, vocab_size.dump()));
    }
    meta.vocab_size = *checked;
    meta.tokenizer = j.value("tokenizer", std::string("char"));
    if (meta.tokenizer != "char" && meta.tokenizer != "gpt2") {
      throw TokenizerError(fmt::format("{}: tokenizer must be \"char\" or \"gpt2\", got \"{}\"", path, meta.tokenizer));
    }
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
    std::string why = e.what();  // "[json.exception.type_error.302] type must be string, but is number"
    if (why.rfind("[json.exception.", 0) == 0 && why.find("] ") != std::string::npos) why = why.substr(why.find("] ") + 2);
    throw TokenizerError(fmt::format("{}: expected fields vocab_size (integer) and itos (list of characters): {}",
                                     path, why));
  }
  if (meta.tokenizer == "char" && static_cast<int64_t>(meta.itos.size()) != meta.vocab_size) {
    throw TokenizerError(fmt::format("{}: itos has {} entries but vocab_size is {}", path, meta.itos.size(),
                                     meta.vocab_size));
  }
  return meta;
}

}  // namespace nanogpt

namespace nanogpt {

void write_meta_pkl(const std::string& path, const DatasetMeta& meta) {
  std::vector<std::pair<PickleRef, PickleRef>> itos, stoi;
  for (size_t id = 0; id < meta.itos.size(); ++id) {
    itos.emplace_back(pickle_int(static_cast<int64_t>(id)), pickle_string(encode_utf8(meta.itos[id])));
    stoi.emplace_back(pickle_string(encode_utf8(meta.itos[id])), pickle_int(static_cast<int64_t>(id)));
  }
  const PickleRef root = pickle_dict({{pickle_string("vocab_size"), pickle_int(meta.vocab_size)},
                                      {pickle_string("itos"), pickle_dict(std::move(itos))},
                                      {pickle_string("stoi"), pickle_dict(std::move(stoi))}});
  const std::string bytes = write_pickle(*root);
  write_file_atomically(path, [&](std::ostream& out) { out.write(bytes.data(), static_cast<std::streamsize>(bytes.size())); });
}

DatasetMeta read_meta_pkl(const std::string& path) {
  std::string data;
  try {
    data = read_file(path);
  } catch (const IoError& e) {
    throw TokenizerError(e.what());
  }
  PickleRef root;
  try {
    root = parse_pickle(data, path);
  } catch (const PickleError& e) {
    throw TokenizerError(e.what());
  }
  const auto fail = [&](const std::string& why) {
    throw TokenizerError(fmt::format("{}: {} (expected nanoGPT's meta: a dict with vocab_size and itos)", path, why));
  };
  if (root->kind != PickleValue::Kind::dict) fail("not a dict");
  const PickleRef vocab = root->get("vocab_size");
  if (!vocab || vocab->kind != PickleValue::Kind::integer) fail("no integer 'vocab_size'");
  DatasetMeta meta;
  meta.vocab_size = vocab->integer;
  if (meta.vocab_size <= 0 || meta.vocab_size > 65536) fail(fmt::format("vocab_size {} is not in 1..65536", meta.vocab_size));
  const PickleRef itos = root->get("itos");
  if (!itos) {
    meta.tokenizer = "none";  // a vocabulary size only
    return meta;
  }
  if (itos->kind != PickleValue::Kind::dict) fail("'itos' is not a dict");
  meta.tokenizer = "char";
  meta.itos.assign(static_cast<size_t>(meta.vocab_size), U'\0');
  std::vector<bool> seen(meta.itos.size(), false);
  for (const auto& [id, ch] : itos->entries) {
    if (id->kind != PickleValue::Kind::integer || id->integer < 0 || id->integer >= meta.vocab_size) {
      fail("an 'itos' key is not an id below vocab_size");
    }
    if (ch->kind != PickleValue::Kind::string) fail(fmt::format("itos[{}] is not a string", id->integer));
    const auto cps = decode_utf8(ch->text, path);
    if (cps.size() != 1) fail(fmt::format("itos[{}] is not one character", id->integer));
    meta.itos[static_cast<size_t>(id->integer)] = cps[0];
    seen[static_cast<size_t>(id->integer)] = true;
  }
  if (std::find(seen.begin(), seen.end(), false) != seen.end()) fail("'itos' does not cover every id below vocab_size");
  return meta;
}

std::optional<DatasetMeta> read_dataset_meta(const std::string& data_dir) {
  const std::filesystem::path dir(data_dir);
  if (std::filesystem::exists(dir / "meta.json")) return read_meta_json((dir / "meta.json").string());
  if (std::filesystem::exists(dir / "meta.pkl")) return read_meta_pkl((dir / "meta.pkl").string());
  return std::nullopt;
}

}  // namespace nanogpt
