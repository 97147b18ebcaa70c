#include "nanogpt/tokenizer/pretokenize.h"

#include <algorithm>
#include <array>

#include <fmt/format.h>

#include "nanogpt/tokenizer/char_tokenizer.h"

namespace nanogpt {

namespace {

struct ClassRange {
  char32_t first, last;
  CodeClass cls;
};

constexpr ClassRange kClassRanges[] = {
#include "tokenizer/unicode_classes.inc"
};

// ASCII: White_Space is \t \n \v \f \r and space (not the separators 0x1C-0x1F).
constexpr std::array<CodeClass, 128> ascii_classes() {
  std::array<CodeClass, 128> table{};
  for (int c = 0; c < 128; ++c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
      table[c] = CodeClass::kLetter;
    } else if (c >= '0' && c <= '9') {
      table[c] = CodeClass::kNumber;
    } else if (c == ' ' || (c >= '\t' && c <= '\r')) {
      table[c] = CodeClass::kSpace;
    } else {
      table[c] = CodeClass::kOther;
    }
  }
  return table;
}
constexpr std::array<CodeClass, 128> kAsciiClasses = ascii_classes();

// Byte length of the well-formed UTF-8 sequence at `i` (as Rust's str accepts it: no
// overlong forms, no surrogates, nothing above U+10FFFF), 0 when it is not one.
size_t utf8_length_at(const unsigned char* s, size_t n, size_t i, char32_t& cp) {
  const unsigned c = s[i];
  const auto cont = [&](size_t k) { return i + k < n && (s[i + k] & 0xC0) == 0x80; };
  if (c < 0xC2) return 0;  // ASCII is handled by the caller; 0x80-0xC1 never start a character
  if (c < 0xE0) {
    if (!cont(1)) return 0;
    cp = ((c & 0x1Fu) << 6) | (s[i + 1] & 0x3Fu);
    return 2;
  }
  if (c < 0xF0) {
    if (!cont(1) || !cont(2)) return 0;
    cp = ((c & 0x0Fu) << 12) | ((s[i + 1] & 0x3Fu) << 6) | (s[i + 2] & 0x3Fu);
    return cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF) ? 0 : 3;
  }
  if (c < 0xF5) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    cp = ((c & 0x07u) << 18) | ((s[i + 1] & 0x3Fu) << 12) | ((s[i + 2] & 0x3Fu) << 6) | (s[i + 3] & 0x3Fu);
    return cp < 0x10000 || cp > 0x10FFFF ? 0 : 4;
  }
  return 0;
}

struct Char {
  CodeClass cls;
  size_t length;
};

Char char_at(std::string_view text, size_t i) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  if (s[i] < 0x80) return {kAsciiClasses[s[i]], 1};
  char32_t cp = 0;
  const size_t length = utf8_length_at(s, text.size(), i, cp);
  if (length == 0) throw TokenizerError(fmt::format("invalid UTF-8 at byte offset {}", i));
  return {code_class(cp), length};
}

// 's 't 're 've 'm 'll 'd at the start of `rest` (which starts with an apostrophe): its length, else 0.
size_t contraction_length(std::string_view rest) {
  if (rest.size() < 2) return 0;
  const char c = rest[1];
  if (c == 's' || c == 't' || c == 'm' || c == 'd') return 2;
  if (rest.size() < 3) return 0;
  const char d = rest[2];
  return (c == 'r' && d == 'e') || (c == 'v' && d == 'e') || (c == 'l' && d == 'l') ? 3 : 0;
}

}  // namespace

CodeClass code_class(char32_t code_point) {
  if (code_point < 0x80) return kAsciiClasses[code_point];
  const auto* end = std::end(kClassRanges);
  const auto* it = std::upper_bound(std::begin(kClassRanges), end, code_point,
                                    [](char32_t cp, const ClassRange& r) { return cp < r.first; });
  if (it == std::begin(kClassRanges)) return CodeClass::kOther;
  --it;
  return code_point <= it->last ? it->cls : CodeClass::kOther;
}

size_t Gpt2PieceScanner::class_run_end(size_t pos, CodeClass cls) const {
  const auto* s = reinterpret_cast<const unsigned char*>(text_.data());
  const size_t n = text_.size();
  while (pos < n) {
    if (s[pos] < 0x80) {
      if (kAsciiClasses[s[pos]] != cls) break;
      ++pos;
      continue;
    }
    const Char ch = char_at(text_, pos);
    if (ch.cls != cls) break;
    pos += ch.length;
  }
  return pos;
}

// \s+(?!\S) takes a whitespace run but leaves its last character to the next piece when
// a non-space follows; a single whitespace character before a non-space is \s+ alone.
size_t Gpt2PieceScanner::space_piece_end(size_t pos) const {
  const size_t start = pos;
  size_t last = pos;
  while (pos < text_.size()) {
    const Char ch = char_at(text_, pos);
    if (ch.cls != CodeClass::kSpace) break;
    last = pos;
    pos += ch.length;
  }
  if (pos == text_.size()) return pos;
  return last > start ? last : pos;
}

bool Gpt2PieceScanner::next(std::string_view& piece) {
  const size_t n = text_.size();
  if (pos_ >= n) return false;
  const size_t start = pos_;
  size_t end = text_[start] == '\'' ? start + contraction_length(text_.substr(start)) : start;
  if (end == start) {
    // " ?" then a run of letters, numbers or others; else whitespace
    size_t body = start;
    CodeClass cls = char_at(text_, start).cls;
    if (text_[start] == ' ' && start + 1 < n) {
      const CodeClass next_cls = char_at(text_, start + 1).cls;
      if (next_cls != CodeClass::kSpace) body = start + 1, cls = next_cls;
    }
    end = cls == CodeClass::kSpace ? space_piece_end(start) : class_run_end(body, cls);
  }
  piece = text_.substr(start, end - start);
  pos_ = end;
  return true;
}

std::vector<std::string_view> gpt2_pieces(std::string_view text) {
  std::vector<std::string_view> pieces;
  Gpt2PieceScanner scanner(text);
  std::string_view piece;
  while (scanner.next(piece)) pieces.push_back(piece);
  return pieces;
}

size_t first_invalid_utf8(std::string_view bytes) {
  const auto* s = reinterpret_cast<const unsigned char*>(bytes.data());
  for (size_t i = 0; i < bytes.size();) {
    if (s[i] < 0x80) {
      ++i;
      continue;
    }
    char32_t cp = 0;
    const size_t length = utf8_length_at(s, bytes.size(), i, cp);
    if (length == 0) return i;
    i += length;
  }
  return std::string_view::npos;
}

std::string replace_invalid_utf8(std::string_view bytes) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  const auto* s = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  std::string out;
  out.reserve(n);
  for (size_t i = 0; i < n;) {
    const unsigned c = s[i];
    if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    // the well-formed sequences of Unicode's table 3-7: length and range of the second byte
    size_t length = 0;
    unsigned low = 0x80, high = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) length = 2;
    else if (c >= 0xE0 && c <= 0xEF) length = 3, low = c == 0xE0 ? 0xA0 : 0x80, high = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) length = 4, low = c == 0xF0 ? 0x90 : 0x80, high = c == 0xF4 ? 0x8F : 0xBF;
    size_t valid = length == 0 ? 0 : 1;  // bytes of the longest well-formed prefix
    while (valid > 0 && valid < length && i + valid < n) {
      const unsigned b = s[i + valid];
      if (b < (valid == 1 ? low : 0x80) || b > (valid == 1 ? high : 0xBF)) break;
      ++valid;
    }
    if (length > 0 && valid == length) {
      out.append(bytes.substr(i, length));
      i += length;
    } else {
      out += kReplacement;  // one U+FFFD per maximal ill-formed subpart
      i += valid > 0 ? valid : 1;
    }
  }
  return out;
}

}  // namespace nanogpt
