#pragma once
// The vector code that the forward and backward passes of the attention kernel share
// (attention_kernel_forward.cpp, attention_kernel_backward.cpp): 8-float vectors, transposes,
// the blocked row products, exp, and the dispatch on the row width. All of it is inlined into
// each pass's AVX2 and baseline copies.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "cpu/attention_kernel.h"
#include "cpu/cpu_features.h"

// Every product is a row times a small matrix with the result kept in vector registers:
// scores run along 8 keys at a time over columns of a transposed, zero-padded copy of the
// keys; weighted sums of rows keep the head_size / 8 accumulators of a row in registers.
namespace nanogpt::attention_kernel {

namespace {

typedef float Vec8 __attribute__((vector_size(32)));
typedef float UnalignedVec8 __attribute__((vector_size(32), aligned(4), may_alias));
constexpr int64_t kLanes = 8;

NANOGPT_ALWAYS_INLINE Vec8 load(const float* p) { return *reinterpret_cast<const UnalignedVec8*>(p); }
NANOGPT_ALWAYS_INLINE void store(float* p, Vec8 v) { *reinterpret_cast<UnalignedVec8*>(p) = v; }
// A shuffle of lane 0: GCC 12 builds x - Vec8{} or Vec8{x, ..., x} inside a target("avx2")
// function from eight inserts (its AVX1 sequence), this becomes one vbroadcastss.
NANOGPT_ALWAYS_INLINE Vec8 broadcast(float x) {
  const Vec8 first = {x};
  return __builtin_shufflevector(first, first, 0, 0, 0, 0, 0, 0, 0, 0);
}
NANOGPT_ALWAYS_INLINE int64_t padded(int64_t n) { return (n + kLanes - 1) / kLanes * kLanes; }

NANOGPT_ALWAYS_INLINE int64_t visible_keys(const HeadShape& s, int64_t query) {
  return std::min(s.past + query + 1, s.keys);
}

// The first query row that sees key j (the rows before it do not): visible_keys' inverse.
NANOGPT_ALWAYS_INLINE int64_t first_query(const HeadShape& s, int64_t key) {
  return std::min(std::max<int64_t>(0, key - s.past), s.queries);
}

// dst[c * dst_stride + r] = src[r * src_stride + c] for an 8 x 8 tile: the unpack, shuffle and
// 128-bit permute network (24 shuffles for 64 floats instead of 64 scalar moves);
// __builtin_shufflevector is the spelling GCC (12 and later) and clang share.
NANOGPT_ALWAYS_INLINE void transpose_8x8(const float* src, int64_t src_stride, float* dst, int64_t dst_stride) {
  Vec8 r[8], t[8], u[8];
  for (int i = 0; i < 8; ++i) r[i] = load(src + i * src_stride);
  for (int i = 0; i < 8; i += 2) {
    t[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
    t[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
  }
  for (int i = 0; i < 8; i += 4) {
    for (int h = 0; h < 2; ++h) {
      u[i + 2 * h] = __builtin_shufflevector(t[i + h], t[i + h + 2], 0, 1, 8, 9, 4, 5, 12, 13);
      u[i + 2 * h + 1] = __builtin_shufflevector(t[i + h], t[i + h + 2], 2, 3, 10, 11, 6, 7, 14, 15);
    }
  }
  for (int c = 0; c < 4; ++c) {
    store(dst + c * dst_stride, __builtin_shufflevector(u[c], u[c + 4], 0, 1, 2, 3, 8, 9, 10, 11));
    store(dst + (c + 4) * dst_stride, __builtin_shufflevector(u[c], u[c + 4], 4, 5, 6, 7, 12, 13, 14, 15));
  }
}

// dst[j * dst_stride + i] = src[i * src_stride + j] for i < rows, j < cols: whole 8 x 8 tiles
// through transpose_8x8, the edges one float at a time.
NANOGPT_ALWAYS_INLINE void transpose(const float* src, int64_t src_stride, int64_t rows, int64_t cols, float* dst,
                                     int64_t dst_stride) {
  const int64_t full_rows = rows / kLanes * kLanes, full_cols = cols / kLanes * kLanes;
  for (int64_t i = 0; i < full_rows; i += kLanes) {
    for (int64_t j = 0; j < full_cols; j += kLanes) {
      transpose_8x8(src + i * src_stride + j, src_stride, dst + j * dst_stride + i, dst_stride);
    }
    for (int64_t j = full_cols; j < cols; ++j) {
      for (int64_t r = i; r < i + kLanes; ++r) dst[j * dst_stride + r] = src[r * src_stride + j];
    }
  }
  for (int64_t i = full_rows; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) dst[j * dst_stride + i] = src[i * src_stride + j];
  }
}

// columns[d * stride + j] = src[j][d] for j < keys, 0 up to the padded width.
NANOGPT_ALWAYS_INLINE void transpose_padded(Rows src, int64_t keys, int64_t dim, int64_t stride, float* columns) {
  for (int64_t d = 0; d < dim; ++d) std::fill(columns + d * stride + keys, columns + (d + 1) * stride, 0.0f);
  transpose(src.data, src.stride, keys, dim, columns, stride);
}

// A block of kRows rows (queries in forward, keys in backward) goes through the products
// together: each vector of the shared operand is loaded once for all of them, so the loops
// read a quarter of what row-at-a-time loops read (at 256 keys and head size 64 the
// transposed keys are 64 KiB, past the L1 cache; row at a time, the loads were the limit).
constexpr int kRowBlock = 4;

// scores[r * scores_stride + j] = scale * sum_d x[r][d] * columns[d * stride + j] for the
// kBlock vectors from j. Every operand vector feeds kRows multiply-adds; kRows * kBlock
// independent chains are in flight (an FMA's latency is 4 or 5 cycles, two issue per cycle).
template <int kRows, int kBlock>
NANOGPT_ALWAYS_INLINE void score_block(const float* const* x, const float* columns, int64_t stride, int64_t j,
                                       int64_t dim, float scale, float* scores, int64_t scores_stride) {
  Vec8 acc[kRows][kBlock] = {};
  for (int64_t d = 0; d < dim; ++d) {
    const float* c = columns + d * stride + j;
    Vec8 column[kBlock];
#pragma GCC unroll 8
    for (int v = 0; v < kBlock; ++v) column[v] = load(c + v * kLanes);
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) {
      const Vec8 b = broadcast(x[r][d] * scale);
#pragma GCC unroll 8
      for (int v = 0; v < kBlock; ++v) acc[r][v] += b * column[v];
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < kBlock; ++v) store(scores + r * scores_stride + j + v * kLanes, acc[r][v]);
  }
}

// The scores of kRows rows over keys [begin, padded(end)), begin a multiple of 8; entries
// past end are not meant to be used. One row takes 8 vectors per pass (8 chains), a block
// of rows 3 (12 chains, with the operand vectors, in 16 registers); the rest of a row goes
// in one pass.
template <int kRows>
NANOGPT_ALWAYS_INLINE void row_scores(const float* const* x, const float* columns, int64_t stride, int64_t begin,
                                      int64_t end, int64_t dim, float scale, float* scores, int64_t scores_stride) {
  constexpr int kMaxBlock = kRows == 1 ? 8 : 3;
  const int64_t width = padded(end);
  int64_t j = begin;
  for (; j + kMaxBlock * kLanes <= width; j += kMaxBlock * kLanes) {
    score_block<kRows, kMaxBlock>(x, columns, stride, j, dim, scale, scores, scores_stride);
  }
#define NANOGPT_SCORE_TAIL(N)                                                              \
  case N:                                                                                  \
    if constexpr (N < kMaxBlock) {                                                         \
      score_block<kRows, N>(x, columns, stride, j, dim, scale, scores, scores_stride);     \
    }                                                                                      \
    break;
  switch ((width - j) / kLanes) {  // the last 1 to kMaxBlock - 1 vectors in one pass over d
    NANOGPT_SCORE_TAIL(7)
    NANOGPT_SCORE_TAIL(6)
    NANOGPT_SCORE_TAIL(5)
    NANOGPT_SCORE_TAIL(4)
    NANOGPT_SCORE_TAIL(3)
    NANOGPT_SCORE_TAIL(2)
    NANOGPT_SCORE_TAIL(1)
    default: break;
  }
#undef NANOGPT_SCORE_TAIL
}

// out[r] = sum_{i in [begin, end)} w[r * w_stride + i] * rows[i] for kRows rows of weights,
// over rows of kVectors * 8 floats; kVectors == 0 is the plain loop for any dim. One output
// row keeps all its vectors in registers (and a second set over odd i for short rows, so
// that 8 chains are in flight); a block of rows goes 2 vectors of the row at a time (8
// chains), each vector of rows[i] loaded once for the block.
template <int kRows, int kVectors>
NANOGPT_ALWAYS_INLINE void weighted_rows(const float* w, int64_t w_stride, int64_t begin, int64_t end, Rows rows,
                                         int64_t dim, float* const* out) {
  if constexpr (kVectors == 0) {
    for (int r = 0; r < kRows; ++r) {
      const float* wr = w + r * w_stride;
      std::fill(out[r], out[r] + dim, 0.0f);
      for (int64_t i = begin; i < end; ++i) {
        const float* row = rows[i];
        for (int64_t d = 0; d < dim; ++d) out[r][d] += wr[i] * row[d];
      }
    }
  } else if constexpr (kRows == 1) {
    constexpr int kSets = kVectors <= 4 ? 2 : 1;
    Vec8 acc[kSets][kVectors] = {};
    int64_t i = begin;
    for (; i + kSets <= end; i += kSets) {
#pragma GCC unroll 2
      for (int set = 0; set < kSets; ++set) {
        const Vec8 b = broadcast(w[i + set]);
        const float* r = rows[i + set];
#pragma GCC unroll 16
        for (int v = 0; v < kVectors; ++v) acc[set][v] += b * load(r + v * kLanes);
      }
    }
    if (i < end) {
      const Vec8 b = broadcast(w[i]);
      const float* r = rows[i];
#pragma GCC unroll 16
      for (int v = 0; v < kVectors; ++v) acc[0][v] += b * load(r + v * kLanes);
    }
#pragma GCC unroll 16
    for (int v = 0; v < kVectors; ++v) {
      Vec8 sum = acc[0][v];
      if constexpr (kSets == 2) sum += acc[1][v];
      store(out[0] + v * kLanes, sum);
    }
  } else {
    constexpr int kChunk = kVectors % 2 == 0 ? 2 : 1;
    for (int c = 0; c < kVectors; c += kChunk) {
      Vec8 acc[kRows][kChunk] = {};
      for (int64_t i = begin; i < end; ++i) {
        const float* row = rows[i] + c * kLanes;
        Vec8 part[kChunk];
#pragma GCC unroll 2
        for (int u = 0; u < kChunk; ++u) part[u] = load(row + u * kLanes);
#pragma GCC unroll 4
        for (int r = 0; r < kRows; ++r) {
          const Vec8 b = broadcast(w[r * w_stride + i]);
#pragma GCC unroll 2
          for (int u = 0; u < kChunk; ++u) acc[r][u] += b * part[u];
        }
      }
#pragma GCC unroll 4
      for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 2
        for (int u = 0; u < kChunk; ++u) store(out[r] + (c + u) * kLanes, acc[r][u]);
      }
    }
  }
}

// exp(t): Cephes' expf polynomial (about 1 ulp), branch-free so that loops over it
// vectorise. NaN stays NaN.
NANOGPT_ALWAYS_INLINE float exp_approx(float t) {
  constexpr float round_magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  t = t < -87.3f ? -87.3f : t;
  t = t > 88.3f ? 88.3f : t;
  const float biased = t * 1.44269504088896341f + round_magic;
  const float whole = biased - round_magic;
  uint32_t bits;  // unsigned: a NaN's bits must wrap, not overflow
  std::memcpy(&bits, &biased, sizeof bits);
  const uint32_t exponent_bits = (bits - 0x4B400000u + 127u) << 23;
  float power;
  std::memcpy(&power, &exponent_bits, sizeof power);
  const float r = t - whole * 0.693359375f + whole * 2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  return y * power;
}

// The number of vectors in a row where it is a multiple of 8 up to 128 floats (every GPT
// head size in practice), else 0: the loops then take the row width at run time. A switch
// rather than a generic lambda, so that everything inlines into the AVX2 function.
NANOGPT_ALWAYS_INLINE int vectors_per_row(int64_t dim) {
  const int64_t vectors = dim % kLanes == 0 ? dim / kLanes : 0;
  return vectors == 1 || vectors == 2 || vectors == 4 || vectors == 6 || vectors == 8 || vectors == 12 ||
                 vectors == 16
             ? static_cast<int>(vectors)
             : 0;
}

#define NANOGPT_FOR_VECTORS_PER_ROW(dim, CALL) \
  switch (vectors_per_row(dim)) {             \
    case 1: CALL(1); break;                    \
    case 2: CALL(2); break;                    \
    case 4: CALL(4); break;                    \
    case 6: CALL(6); break;                    \
    case 8: CALL(8); break;                    \
    case 12: CALL(12); break;                  \
    case 16: CALL(16); break;                  \
    default: CALL(0); break;                   \
  }

}  // namespace

}  // namespace nanogpt::attention_kernel
