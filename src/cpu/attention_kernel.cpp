#include "cpu/attention_kernel.h"

#include <algorithm>
#include <cmath>
#include <cstring>

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

// The largest of p[0..n) (n >= 1) and the sum of p[0..n): 8 lanes at a time, the lanes
// combined at the end (a plain loop's one chain of dependent adds would be the limit).
NANOGPT_ALWAYS_INLINE float max_of(const float* p, int64_t n) {
  Vec8 acc = broadcast(p[0]);
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    const Vec8 x = load(p + j);
    acc = x > acc ? x : acc;
  }
  float max = acc[0];
  for (int l = 1; l < kLanes; ++l) max = acc[l] > max ? acc[l] : max;
  for (; j < n; ++j) max = p[j] > max ? p[j] : max;
  return max;
}

NANOGPT_ALWAYS_INLINE float sum_of(const float* p, int64_t n) {
  Vec8 acc[2] = {};
  int64_t j = 0;
  for (; j + 2 * kLanes <= n; j += 2 * kLanes) {
    acc[0] += load(p + j);
    acc[1] += load(p + j + kLanes);
  }
  if (j + kLanes <= n) {
    acc[0] += load(p + j);
    j += kLanes;
  }
  const Vec8 both = acc[0] + acc[1];
  float sum = 0.0f;
  for (int l = 0; l < kLanes; ++l) sum += both[l];
  for (; j < n; ++j) sum += p[j];
  return sum;
}

// Queries i0 .. i0 + kRows - 1: their scores over the keys the last of them sees, a softmax
// per row (zero past the keys a row sees), and the weighted sums of the values.
template <int kRows, int kVectors>
NANOGPT_ALWAYS_INLINE void forward_rows(const HeadShape& s, Rows q, const float* k_columns, Rows v,
                                        const DropoutMask& dropout, MutableRows out, float* lse, float* p,
                                        int64_t i0) {
  const int64_t stride = padded(s.keys), seen = visible_keys(s, i0 + kRows - 1);
  const float* x[kRows];
  float* o[kRows];
  for (int r = 0; r < kRows; ++r) {
    x[r] = q[i0 + r];
    o[r] = out[i0 + r];
  }
  row_scores<kRows>(x, k_columns, stride, 0, seen, s.dim, s.scale, p, stride);
  for (int r = 0; r < kRows; ++r) {
    const int64_t i = i0 + r, n = visible_keys(s, i);
    float* pr = p + r * stride;
    float max = max_of(pr, n);
    if (std::isnan(max)) max = 0.0f;  // let the NaN reach the output
    for (int64_t j = 0; j < n; ++j) pr[j] = exp_approx(pr[j] - max);
    const float sum = sum_of(pr, n);
    const float inverse = 1.0f / sum;
    for (int64_t j = 0; j < n; ++j) pr[j] *= inverse;
    if (dropout.keep) {
      const uint8_t* keep = dropout.keep + i * dropout.stride;
      for (int64_t j = 0; j < n; ++j) pr[j] *= keep[j] ? dropout.scale : 0.0f;
    }
    std::fill(pr + n, pr + seen, 0.0f);
    lse[i] = max + std::log(sum);
  }
  weighted_rows<kRows, kVectors>(p, stride, 0, seen, v, s.dim, o);
}

template <int kVectors>
NANOGPT_ALWAYS_INLINE void forward_loops(const HeadShape& s, Rows q, Rows k, Rows v, const DropoutMask& dropout,
                                         MutableRows out, float* lse, float* scratch) {
  float* k_columns = scratch;
  float* p = k_columns + s.dim * padded(s.keys);
  transpose_padded(k, s.keys, s.dim, padded(s.keys), k_columns);
  int64_t i = 0;
  for (; i + kRowBlock <= s.queries; i += kRowBlock) {
    forward_rows<kRowBlock, kVectors>(s, q, k_columns, v, dropout, out, lse, p, i);
  }
  for (; i < s.queries; ++i) forward_rows<1, kVectors>(s, q, k_columns, v, dropout, out, lse, p, i);
}

// The backward pass's scratch for one head, in one buffer of backward_scratch_floats.
struct BackwardScratch {
  float* q_columns;           // dim x padded(queries): the queries, transposed
  float* dout_columns;        // dim x padded(queries): d(out), transposed
  float* do_dot_o;            // padded(queries): sum_j p[j] * dp[j] per query, softmax backward's correction
  float* p;                   // kRowBlock x padded(queries): a block of keys' probabilities
  float* score_grads_by_key;  // keys x padded(queries)
  float* score_grads;         // queries x padded(keys): the same, transposed
  float* multipliers_by_key;  // with dropout, keys x padded(queries): 0 or 1 / (1 - p)
};

NANOGPT_ALWAYS_INLINE BackwardScratch backward_scratch(const HeadShape& s, float* scratch) {
  const int64_t query_stride = padded(s.queries);
  BackwardScratch w;
  w.q_columns = scratch;
  w.dout_columns = w.q_columns + s.dim * query_stride;
  w.do_dot_o = w.dout_columns + s.dim * query_stride;
  w.p = w.do_dot_o + query_stride;
  w.score_grads_by_key = w.p + kRowBlock * query_stride;
  w.score_grads = w.score_grads_by_key + s.keys * query_stride;
  w.multipliers_by_key = w.score_grads + s.queries * padded(s.keys);
  return w;
}

// Keys j0 .. j0 + kRows - 1: the probabilities and score gradients of every query that sees
// them, each key's as one contiguous row (scores over transposed queries, zero for the
// queries that do not see it), then dk and dv of those keys.
template <int kRows, int kVectors>
NANOGPT_ALWAYS_INLINE void backward_keys(const HeadShape& s, Rows q, Rows k, Rows v, const DropoutMask& dropout,
                                         Rows dout, const float* lse, MutableRows dk, MutableRows dv,
                                         const BackwardScratch& w, int64_t j0) {
  const int64_t query_stride = padded(s.queries);
  const int64_t first = first_query(s, j0), begin = first / kLanes * kLanes;
  float* ds = w.score_grads_by_key + j0 * query_stride;
  float* p = w.p;
  const float* kx[kRows];
  const float* vx[kRows];
  float* dkx[kRows];
  float* dvx[kRows];
  for (int r = 0; r < kRows; ++r) {
    kx[r] = k[j0 + r];
    vx[r] = v[j0 + r];
    dkx[r] = dk[j0 + r];
    dvx[r] = dv[j0 + r];
  }
  row_scores<kRows>(kx, w.q_columns, query_stride, begin, s.queries, s.dim, s.scale, p, query_stride);
  row_scores<kRows>(vx, w.dout_columns, query_stride, begin, s.queries, s.dim, 1.0f, ds, query_stride);
  for (int r = 0; r < kRows; ++r) {
    float* pr = p + r * query_stride;
    float* dsr = ds + r * query_stride;
    for (int64_t i = begin; i < s.queries; ++i) pr[i] = exp_approx(pr[i] - lse[i]);
    if (dropout.keep) {  // p becomes the kept probabilities that multiplied v in forward
      const float* multiplier = w.multipliers_by_key + (j0 + r) * query_stride;
      for (int64_t i = begin; i < s.queries; ++i) {
        const float kept = pr[i] * multiplier[i];
        dsr[i] = (kept * dsr[i] - pr[i] * w.do_dot_o[i]) * s.scale;
        pr[i] = kept;
      }
    } else {
      for (int64_t i = begin; i < s.queries; ++i) dsr[i] = pr[i] * (dsr[i] - w.do_dot_o[i]) * s.scale;
    }
    const int64_t unseen = first_query(s, j0 + r);
    std::fill(pr + first, pr + unseen, 0.0f);
    std::fill(dsr, dsr + unseen, 0.0f);
  }
  weighted_rows<kRows, kVectors>(ds + first, query_stride, 0, s.queries - first, {q[first], q.stride}, s.dim, dkx);
  weighted_rows<kRows, kVectors>(p + first, query_stride, 0, s.queries - first, {dout[first], dout.stride}, s.dim,
                                 dvx);
}

// Backward by blocks of keys (backward_keys); the score gradients are kept, transposed in
// tiles, and dq is summed from them by blocks of queries. Every output row is written once,
// and no pass walks a column of a (T, T) matrix.
template <int kVectors>
NANOGPT_ALWAYS_INLINE void backward_loops(const HeadShape& s, Rows q, Rows k, Rows v, const DropoutMask& dropout,
                                          Rows out, Rows dout, const float* lse, MutableRows dq, MutableRows dk,
                                          MutableRows dv, float* scratch) {
  const int64_t query_stride = padded(s.queries), key_stride = padded(s.keys);
  const BackwardScratch w = backward_scratch(s, scratch);
  if (dropout.keep) {
    for (int64_t i = 0; i < s.queries; ++i) {
      for (int64_t j = 0; j < s.keys; ++j) {
        w.multipliers_by_key[j * query_stride + i] = dropout.keep[i * dropout.stride + j] ? dropout.scale : 0.0f;
      }
    }
  }
  transpose_padded(q, s.queries, s.dim, query_stride, w.q_columns);
  transpose_padded(dout, s.queries, s.dim, query_stride, w.dout_columns);
  for (int64_t i = 0; i < s.queries; ++i) {
    float sum = 0.0f;
    for (int64_t d = 0; d < s.dim; ++d) sum += dout[i][d] * out[i][d];
    w.do_dot_o[i] = sum;
  }
  int64_t j = 0;
  for (; j + kRowBlock <= s.keys; j += kRowBlock) {
    backward_keys<kRowBlock, kVectors>(s, q, k, v, dropout, dout, lse, dk, dv, w, j);
  }
  for (; j < s.keys; ++j) backward_keys<1, kVectors>(s, q, k, v, dropout, dout, lse, dk, dv, w, j);
  transpose(w.score_grads_by_key, query_stride, s.keys, s.queries, w.score_grads, key_stride);
  int64_t i = 0;
  for (; i + kRowBlock <= s.queries; i += kRowBlock) {
    float* dqx[kRowBlock];
    for (int r = 0; r < kRowBlock; ++r) dqx[r] = dq[i + r];
    weighted_rows<kRowBlock, kVectors>(w.score_grads + i * key_stride, key_stride, 0, visible_keys(s, i + kRowBlock - 1),
                                       k, s.dim, dqx);
  }
  for (; i < s.queries; ++i) {
    float* dqx[1] = {dq[i]};
    weighted_rows<1, kVectors>(w.score_grads + i * key_stride, key_stride, 0, visible_keys(s, i), k, s.dim, dqx);
  }
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

NANOGPT_ALWAYS_INLINE void forward_head_any(const HeadShape& s, Rows q, Rows k, Rows v, const DropoutMask& dropout,
                                            MutableRows out, float* lse, float* scratch) {
#define NANOGPT_FORWARD(V) forward_loops<V>(s, q, k, v, dropout, out, lse, scratch)
  NANOGPT_FOR_VECTORS_PER_ROW(s.dim, NANOGPT_FORWARD)
#undef NANOGPT_FORWARD
}

NANOGPT_ALWAYS_INLINE void backward_head_any(const HeadShape& s, Rows q, Rows k, Rows v, const DropoutMask& dropout,
                                             Rows out, Rows dout, const float* lse, MutableRows dq, MutableRows dk,
                                             MutableRows dv, float* scratch) {
#define NANOGPT_BACKWARD(V) backward_loops<V>(s, q, k, v, dropout, out, dout, lse, dq, dk, dv, scratch)
  NANOGPT_FOR_VECTORS_PER_ROW(s.dim, NANOGPT_BACKWARD)
#undef NANOGPT_BACKWARD
}

NANOGPT_AVX2_FMA void forward_head_avx2(const HeadShape& s, Rows q, Rows k, Rows v, const DropoutMask& dropout,
                                         MutableRows out, float* lse, float* scratch) {
  forward_head_any(s, q, k, v, dropout, out, lse, scratch);
}
NANOGPT_AVX2_FMA void backward_head_avx2(const HeadShape& s, Rows q, Rows k, Rows v, const DropoutMask& dropout,
                                          Rows out, Rows dout, const float* lse, MutableRows dq, MutableRows dk,
                                          MutableRows dv, float* scratch) {
  backward_head_any(s, q, k, v, dropout, out, dout, lse, dq, dk, dv, scratch);
}

}  // namespace

void forward_head_baseline(const HeadShape& s, Rows q, Rows k, Rows v, const DropoutMask& dropout, MutableRows out,
                           float* lse, float* scratch) {
  forward_head_any(s, q, k, v, dropout, out, lse, scratch);
}
void backward_head_baseline(const HeadShape& s, Rows q, Rows k, Rows v, const DropoutMask& dropout, Rows out,
                            Rows dout, const float* lse, MutableRows dq, MutableRows dk, MutableRows dv,
                            float* scratch) {
  backward_head_any(s, q, k, v, dropout, out, dout, lse, dq, dk, dv, scratch);
}

int64_t forward_scratch_floats(const HeadShape& s) { return (s.dim + kRowBlock) * padded(s.keys); }
int64_t backward_scratch_floats(const HeadShape& s, bool dropout) {
  return (2 * s.dim + 1 + kRowBlock + s.keys * (dropout ? 2 : 1)) * padded(s.queries) + s.queries * padded(s.keys);
}

void forward_head(const HeadShape& s, Rows q, Rows k, Rows v, const DropoutMask& dropout, MutableRows out, float* lse,
                  float* scratch) {
  (cpu_has_avx2_fma() ? forward_head_avx2 : forward_head_baseline)(s, q, k, v, dropout, out, lse, scratch);
}

void backward_head(const HeadShape& s, Rows q, Rows k, Rows v, const DropoutMask& dropout, Rows out, Rows dout,
                   const float* lse, MutableRows dq, MutableRows dk, MutableRows dv, float* scratch) {
  (cpu_has_avx2_fma() ? backward_head_avx2 : backward_head_baseline)(s, q, k, v, dropout, out, dout, lse, dq, dk, dv,
                                                                      scratch);
}

}  // namespace nanogpt::attention_kernel
