#include "nanogpt/tokenizer/pretokenize.h"

#include "nanogpt/base/utf8.h"

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

}  // namespace nanogpt
