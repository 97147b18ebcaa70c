#pragma once
// UTF-8 as Rust's str and Python's codecs accept it: no overlong forms, no surrogates, nothing
// above U+10FFFF.
#include <cstddef>
#include <string>
#include <string_view>

namespace nanogpt {

// Byte length of the well-formed sequence at s[i] (s[i] >= 0x80) and its code point in `cp`;
// 0 when it is not one.
size_t utf8_length_at(const unsigned char* s, size_t n, size_t i, char32_t& cp);

// The byte offset of the first ill-formed UTF-8 sequence in `bytes`, or npos when it is all
// well-formed (no overlong forms, surrogates or code points above U+10FFFF).
size_t first_invalid_utf8(std::string_view bytes);

// `bytes` with each ill-formed UTF-8 subsequence replaced by U+FFFD (as Python's
// errors="replace" does), for printing to a terminal; files keep the exact bytes.
std::string replace_invalid_utf8(std::string_view bytes);

}  // namespace nanogpt
