#pragma once
// GPT-2's pre-tokenizer: splits UTF-8 text into the pieces that tiktoken's pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// finds, with leftmost-first alternation as Rust's fancy-regex runs it, and the Unicode
// classes of Rust's regex crate: \s is White_Space, \p{L} and \p{N} are general categories.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace nanogpt {

enum class CodeClass : unsigned char { kOther, kLetter, kNumber, kSpace };

// The class of one code point, from tables generated out of the Unicode Character
// Database (tools/gen_unicode_classes.py).
CodeClass code_class(char32_t code_point);

// Walks `text` piece by piece; every byte of the text belongs to exactly one piece.
// Throws TokenizerError naming the byte offset of invalid UTF-8.
class Gpt2PieceScanner {
 public:
  explicit Gpt2PieceScanner(std::string_view text) : text_(text) {}
  // Sets `piece` to the next piece; false at the end of the text.
  bool next(std::string_view& piece);

 private:
  size_t class_run_end(size_t pos, CodeClass cls) const;
  size_t space_piece_end(size_t pos) const;

  std::string_view text_;
  size_t pos_ = 0;
};

// All pieces of `text`, in order.
std::vector<std::string_view> gpt2_pieces(std::string_view text);

}  // namespace nanogpt
