#pragma once
// Open-addressing hash maps for the BPE hot path (internal to the tokenizer): byte strings
// looked up by string_view without building a std::string, and token pairs packed in 64 bits.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace nanogpt::detail {

inline uint64_t mix64(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}

inline uint64_t hash_bytes(std::string_view s) {
  uint64_t h = 0x9E3779B97F4A7C15ULL ^ (s.size() * 0xbf58476d1ce4e5b9ULL);
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t word;
    std::memcpy(&word, s.data() + i, 8);
    h = (h ^ word) * 0x94d049bb133111ebULL;
    h ^= h >> 29;
  }
  if (i < s.size()) {
    uint64_t word = 0;
    std::memcpy(&word, s.data() + i, s.size() - i);
    h = (h ^ word) * 0x94d049bb133111ebULL;
  }
  return mix64(h);
}

// Byte string -> uint64 value. Keys live in one arena; the table doubles at half load.
class BytesMap {
 public:
  explicit BytesMap(size_t expected_keys = 1024) { reset(expected_keys); }

  const uint64_t* find(std::string_view key) const {
    const uint64_t h = hash_bytes(key);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& slot = slots_[i];
      if (slot.length == kEmpty) return nullptr;
      if (slot.hash == static_cast<uint32_t>(h) && slot.length == key.size() &&
          std::memcmp(arena_.data() + slot.offset, key.data(), key.size()) == 0) {
        return &slot.value;
      }
    }
  }

  // `key` must not be in the map yet.
  void insert(std::string_view key, uint64_t value) {
    if (2 * (size_ + 1) > slots_.size()) grow();
    place(hash_bytes(key), static_cast<uint32_t>(arena_.size()), static_cast<uint32_t>(key.size()), value);
    arena_.append(key);
  }

  size_t size() const { return size_; }
  size_t arena_bytes() const { return arena_.size(); }
  void reset(size_t expected_keys) {
    size_t capacity = 16;
    while (capacity < 2 * expected_keys) capacity *= 2;
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
    size_ = 0;
    arena_.clear();
  }

 private:
  static constexpr uint32_t kEmpty = UINT32_MAX;
  struct Slot {
    uint32_t hash = 0;
    uint32_t offset = 0;
    uint32_t length = kEmpty;
    uint64_t value = 0;
  };

  void place(uint64_t h, uint32_t offset, uint32_t length, uint64_t value) {
    size_t i = h & mask_;
    while (slots_[i].length != kEmpty) i = (i + 1) & mask_;
    slots_[i] = Slot{static_cast<uint32_t>(h), offset, length, value};
    ++size_;
  }

  void grow() {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(old.size() * 2, Slot{});
    mask_ = slots_.size() - 1;
    size_ = 0;
    for (const Slot& slot : old) {
      if (slot.length == kEmpty) continue;
      place(hash_bytes(std::string_view(arena_.data() + slot.offset, slot.length)), slot.offset, slot.length,
            slot.value);
    }
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
  std::string arena_;
};

// (left token, right token) -> merged token; filled once, read-only afterwards.
class PairMap {
 public:
  explicit PairMap(size_t expected_keys) {
    size_t capacity = 16;
    while (capacity < 2 * expected_keys) capacity *= 2;
    keys_.assign(capacity, kEmpty);
    values_.assign(capacity, 0);
    mask_ = capacity - 1;
  }
  static uint64_t key_of(uint32_t left, uint32_t right) { return (uint64_t{left} << 32) | right; }

  void insert(uint32_t left, uint32_t right, uint32_t merged) {
    const uint64_t key = key_of(left, right);
    size_t i = mix64(key) & mask_;
    while (keys_[i] != kEmpty && keys_[i] != key) i = (i + 1) & mask_;
    keys_[i] = key;
    values_[i] = merged;
  }
  // The merged token, or UINT32_MAX when the pair does not merge.
  uint32_t find(uint32_t left, uint32_t right) const {
    const uint64_t key = key_of(left, right);
    for (size_t i = mix64(key) & mask_;; i = (i + 1) & mask_) {
      if (keys_[i] == key) return values_[i];
      if (keys_[i] == kEmpty) return UINT32_MAX;
    }
  }

 private:
  static constexpr uint64_t kEmpty = UINT64_MAX;
  std::vector<uint64_t> keys_;
  std::vector<uint32_t> values_;
  size_t mask_ = 0;
};

}  // namespace nanogpt::detail
