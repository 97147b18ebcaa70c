#include "nanogpt/base/utf8.h"

namespace nanogpt {

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
