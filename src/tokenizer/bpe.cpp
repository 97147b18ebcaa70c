#include "nanogpt/tokenizer/bpe.h"

#include <algorithm>
#include <array>
#include <queue>
#include <thread>

#include <fmt/format.h>

#include "tokenizer/bytes_map.h"
#include "nanogpt/tokenizer/pretokenize.h"

namespace nanogpt {

// Pieces longer than this are merged every time (they are rare and would crowd the cache).
constexpr size_t kMaxCachedPieceBytes = 64;

struct BpeCache::Table {
  detail::BytesMap pieces;     // piece -> (offset into ids) << 8 | token count
  std::vector<uint32_t> ids;
};

BpeCache::BpeCache(size_t max_pieces) : table_(std::make_unique<Table>()), max_pieces_(max_pieces) {}
BpeCache::~BpeCache() = default;
BpeCache::BpeCache(BpeCache&&) noexcept = default;

const uint32_t* BpeCache::find(std::string_view piece, size_t& count) const {
  const uint64_t* value = table_->pieces.find(piece);
  if (value == nullptr) return nullptr;
  count = *value & 0xFF;
  return table_->ids.data() + (*value >> 8);
}

void BpeCache::insert(std::string_view piece, const uint32_t* ids, size_t count) {
  if (count > 0xFF) return;
  if (table_->pieces.size() >= max_pieces_) {
    table_->pieces.reset(1024);
    table_->ids.clear();
  }
  table_->pieces.insert(piece, (uint64_t{table_->ids.size()} << 8) | count);
  table_->ids.insert(table_->ids.end(), ids, ids + count);
}

struct Gpt2Bpe::Tables {
  std::vector<std::string> bytes_by_id;
  detail::BytesMap ids_by_bytes{Gpt2Bpe::kEndOfText};  // every token but <|endoftext|>: tiktoken's mergeable ranks
  detail::PairMap merges{0};                            // (left, right) -> the token of their concatenated bytes
  std::array<uint32_t, 256> byte_ids{};                 // the token of each single byte
};

Gpt2Bpe::Gpt2Bpe(const std::string& encoder_json, const std::string& vocab_bpe, const std::string& encoder_origin,
                 const std::string& merges_origin) {
  auto tables = std::make_unique<Tables>();
  tables->bytes_by_id = read_gpt2_vocab(encoder_json, vocab_bpe, encoder_origin, merges_origin);
  for (uint32_t id = 0; id < kEndOfText; ++id) tables->ids_by_bytes.insert(tables->bytes_by_id[id], id);
  for (uint32_t id = 0; id < 256; ++id) tables->byte_ids[static_cast<unsigned char>(tables->bytes_by_id[id][0])] = id;
  // tiktoken merges two adjacent parts when their concatenated bytes are a token, ranked by
  // that token's id; listing every split of every token into two tokens gives the same pairs.
  std::vector<std::array<uint32_t, 3>> pairs;
  for (uint32_t id = 256; id < kEndOfText; ++id) {
    const std::string_view bytes = tables->bytes_by_id[id];
    for (size_t cut = 1; cut < bytes.size(); ++cut) {
      const uint64_t* left = tables->ids_by_bytes.find(bytes.substr(0, cut));
      const uint64_t* right = tables->ids_by_bytes.find(bytes.substr(cut));
      if (left && right) pairs.push_back({static_cast<uint32_t>(*left), static_cast<uint32_t>(*right), id});
    }
  }
  tables->merges = detail::PairMap(pairs.size());
  for (const auto& [left, right, merged] : pairs) tables->merges.insert(left, right, merged);
  tables_ = std::move(tables);
}

Gpt2Bpe::~Gpt2Bpe() = default;
Gpt2Bpe::Gpt2Bpe(Gpt2Bpe&&) noexcept = default;
Gpt2Bpe& Gpt2Bpe::operator=(Gpt2Bpe&&) noexcept = default;

size_t Gpt2Bpe::vocab_size() const { return tables_->bytes_by_id.size(); }

int64_t Gpt2Bpe::token_id(std::string_view bytes) const {
  const uint64_t* id = tables_->ids_by_bytes.find(bytes);
  return id ? static_cast<int64_t>(*id) : -1;
}

std::string_view Gpt2Bpe::token_bytes(uint32_t id) const {
  if (id >= vocab_size()) {
    throw TokenizerError(fmt::format("token id {} is outside GPT-2's vocabulary (0..{})", id, vocab_size() - 1));
  }
  return tables_->bytes_by_id[id];
}

// tiktoken's _byte_pair_merge: while some adjacent pair of parts concatenates to a token,
// merge the pair with the lowest rank (the leftmost among equals). A heap ordered by (rank,
// start of the left part) with stale entries skipped finds that pair in O(log n) per merge.
void Gpt2Bpe::merge_piece(std::string_view piece, std::vector<uint32_t>& ids) const {
  const size_t n = piece.size();
  std::vector<uint32_t> token(n), next(n), prev(n);  // parts, by the index of their first byte
  for (size_t i = 0; i < n; ++i) {
    token[i] = tables_->byte_ids[static_cast<unsigned char>(piece[i])];
    next[i] = static_cast<uint32_t>(i + 1);
    prev[i] = static_cast<uint32_t>(i - 1);
  }
  using Candidate = std::pair<uint32_t, uint32_t>;  // (merged token = rank, left part)
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  const auto push = [&](size_t left) {
    if (left >= n || next[left] >= n) return;
    const uint32_t merged = tables_->merges.find(token[left], token[next[left]]);
    if (merged != UINT32_MAX) heap.push({merged, static_cast<uint32_t>(left)});
  };
  for (size_t i = 0; i + 1 < n; ++i) push(i);
  std::vector<bool> alive(n, true);
  while (!heap.empty()) {
    const auto [merged, left] = heap.top();
    heap.pop();
    const uint32_t right = next[left];
    if (!alive[left] || right >= n || tables_->merges.find(token[left], token[right]) != merged) continue;
    token[left] = merged;
    alive[right] = false;
    next[left] = next[right];
    if (next[right] < n) prev[next[right]] = left;
    if (left > 0) push(prev[left]);
    push(left);
  }
  for (size_t i = 0; i < n; i = next[i]) ids.push_back(token[i]);
}

void Gpt2Bpe::encode_piece(std::string_view piece, BpeCache& cache, std::vector<uint32_t>& ids) const {
  if (const uint64_t* id = tables_->ids_by_bytes.find(piece)) {  // tiktoken looks the whole piece up first
    ids.push_back(static_cast<uint32_t>(*id));
    return;
  }
  const bool cacheable = piece.size() <= kMaxCachedPieceBytes;
  size_t count = 0;
  if (cacheable) {
    if (const uint32_t* cached = cache.find(piece, count)) {
      ids.insert(ids.end(), cached, cached + count);
      return;
    }
  }
  const size_t before = ids.size();
  merge_piece(piece, ids);
  if (cacheable) cache.insert(piece, ids.data() + before, ids.size() - before);
}

void Gpt2Bpe::encode_ordinary(std::string_view text, BpeCache& cache, std::vector<uint32_t>& ids) const {
  Gpt2PieceScanner scanner(text);
  std::string_view piece;
  while (scanner.next(piece)) encode_piece(piece, cache, ids);
}

std::vector<uint32_t> Gpt2Bpe::encode_ordinary(std::string_view text) const {
  std::vector<uint32_t> ids;
  ids.reserve(text.size() / 4);
  BpeCache cache;
  encode_ordinary(text, cache, ids);
  return ids;
}

std::vector<uint32_t> Gpt2Bpe::encode(std::string_view text, int threads) const {
  std::vector<uint32_t> ids;
  BpeCache cache;
  const auto encode_segment = [&](std::string_view segment) {
    if (threads <= 1) return encode_ordinary(segment, cache, ids);
    const std::vector<uint32_t> segment_ids = encode_ordinary_parallel(segment, threads);
    ids.insert(ids.end(), segment_ids.begin(), segment_ids.end());
  };
  size_t start = 0;
  for (size_t found; (found = text.find(kEndOfTextText, start)) != std::string_view::npos;
       start = found + kEndOfTextText.size()) {
    encode_segment(text.substr(start, found - start));
    ids.push_back(kEndOfText);
  }
  encode_segment(text.substr(start));
  return ids;
}

std::string Gpt2Bpe::decode(const std::vector<uint32_t>& ids) const {
  std::string bytes;
  for (uint32_t id : ids) bytes.append(token_bytes(id));
  return bytes;
}

namespace {

bool is_ascii_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

// A cut just after a newline that sits between two ASCII non-space characters ("x\ny") keeps
// every piece as the whole scan finds it: the newline is a piece of its own both ways.
size_t next_safe_cut(std::string_view text, size_t from) {
  for (size_t nl = text.find('\n', std::max<size_t>(from, 1)); nl != std::string_view::npos && nl + 1 < text.size();
       nl = text.find('\n', nl + 1)) {
    const auto before = static_cast<unsigned char>(text[nl - 1]), after = static_cast<unsigned char>(text[nl + 1]);
    if (before < 0x80 && after < 0x80 && !is_ascii_space(before) && !is_ascii_space(after)) return nl + 1;
  }
  return text.size();
}

}  // namespace

std::vector<uint32_t> Gpt2Bpe::encode_ordinary_parallel(std::string_view text, int threads) const {
  constexpr size_t kMinChunkBytes = 1 << 16;
  const size_t chunk_count = std::max<size_t>(1, std::min<size_t>(threads * 4, text.size() / kMinChunkBytes));
  if (threads <= 1 || chunk_count <= 1) return encode_ordinary(text);
  std::vector<size_t> cuts{0};
  for (size_t k = 1; k < chunk_count; ++k) {
    const size_t cut = next_safe_cut(text, std::max(cuts.back() + 1, text.size() * k / chunk_count));
    if (cut >= text.size()) break;
    cuts.push_back(cut);
  }
  cuts.push_back(text.size());
  std::vector<std::vector<uint32_t>> chunk_ids(cuts.size() - 1);
  std::vector<std::exception_ptr> errors(threads);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      try {
        BpeCache cache;
        for (size_t c = t; c < chunk_ids.size(); c += threads) {
          encode_ordinary(text.substr(cuts[c], cuts[c + 1] - cuts[c]), cache, chunk_ids[c]);
        }
      } catch (...) {
        errors[t] = std::current_exception();
      }
    });
  }
  for (auto& worker : workers) worker.join();
  for (const auto& error : errors) {
    if (error) return encode_ordinary(text);  // throws again, naming the offset in the whole text
  }
  std::vector<uint32_t> ids;
  for (const auto& part : chunk_ids) ids.insert(ids.end(), part.begin(), part.end());
  return ids;
}

}  // namespace nanogpt
