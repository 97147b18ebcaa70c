#include "attention_kernel.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu_features.h"

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
NANOGPT_ALWAYS_INLINE Vec8 broadcast(float x) { return Vec8{} + x; }
NANOGPT_ALWAYS_INLINE int64_t padded(int64_t n) { return (n + kLanes - 1) / kLanes * kLanes; }

NANOGPT_ALWAYS_INLINE int64_t visible_keys(const HeadShape& s, int64_t query) {
  return std::min(s.past + query + 1, s.keys);
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

// scores[j] = scale * sum_d x[d] * columns[d * stride + j] for j in [begin, padded(end)),
// begin a multiple of 8; the entries past end are not meant to be used. Blocks of 8 vectors
// keep 8 independent multiply-add chains in flight (an FMA's latency is 4 or 5 cycles, and
// two issue per cycle); the rest of the row is one block of 1 to 7 vectors.
template <int kBlock>
NANOGPT_ALWAYS_INLINE void score_block(const float* x, const float* columns, int64_t stride, int64_t j, int64_t dim,
                                       float scale, float* scores) {
  Vec8 acc[kBlock] = {};
  for (int64_t d = 0; d < dim; ++d) {
    const Vec8 b = broadcast(x[d] * scale);
    const float* c = columns + d * stride + j;
#pragma GCC unroll 8
    for (int v = 0; v < kBlock; ++v) acc[v] += b * load(c + v * kLanes);
  }
#pragma GCC unroll 8
  for (int v = 0; v < kBlock; ++v) store(scores + j + v * kLanes, acc[v]);
}

NANOGPT_ALWAYS_INLINE void row_scores(const float* x, const float* columns, int64_t stride, int64_t begin,
                                      int64_t end, int64_t dim, float scale, float* scores) {
  const int64_t width = padded(end);
  int64_t j = begin;
  for (; j + 8 * kLanes <= width; j += 8 * kLanes) score_block<8>(x, columns, stride, j, dim, scale, scores);
  switch ((width - j) / kLanes) {  // the last 1 to 7 vectors in one pass over d
    case 7: score_block<7>(x, columns, stride, j, dim, scale, scores); break;
    case 6: score_block<6>(x, columns, stride, j, dim, scale, scores); break;
    case 5: score_block<5>(x, columns, stride, j, dim, scale, scores); break;
    case 4: score_block<4>(x, columns, stride, j, dim, scale, scores); break;
    case 3: score_block<3>(x, columns, stride, j, dim, scale, scores); break;
    case 2: score_block<2>(x, columns, stride, j, dim, scale, scores); break;
    case 1: score_block<1>(x, columns, stride, j, dim, scale, scores); break;
    default: break;
  }
}

// out = sum_{i in [begin, end)} w[i * w_stride] * rows[i], a row of kVectors * 8 floats held
// in registers; kVectors == 0 is the plain loop for any dim.
template <int kVectors>
NANOGPT_ALWAYS_INLINE void weighted_rows(const float* w, int64_t w_stride, int64_t begin, int64_t end, Rows rows,
                                         int64_t dim, float* out) {
  if constexpr (kVectors == 0) {
    std::fill(out, out + dim, 0.0f);
    for (int64_t i = begin; i < end; ++i) {
      const float wi = w[i * w_stride];
      const float* r = rows[i];
      for (int64_t d = 0; d < dim; ++d) out[d] += wi * r[d];
    }
  } else {
    // Short rows get a second set of accumulators (odd i) so that 8 chains are in flight.
    constexpr int kSets = kVectors <= 4 ? 2 : 1;
    Vec8 acc[kSets][kVectors] = {};
    int64_t i = begin;
    for (; i + kSets <= end; i += kSets) {
#pragma GCC unroll 2
      for (int set = 0; set < kSets; ++set) {
        const Vec8 b = broadcast(w[(i + set) * w_stride]);
        const float* r = rows[i + set];
#pragma GCC unroll 16
        for (int v = 0; v < kVectors; ++v) acc[set][v] += b * load(r + v * kLanes);
      }
    }
    if (i < end) {
      const Vec8 b = broadcast(w[i * w_stride]);
      const float* r = rows[i];
#pragma GCC unroll 16
      for (int v = 0; v < kVectors; ++v) acc[0][v] += b * load(r + v * kLanes);
    }
#pragma GCC unroll 16
    for (int v = 0; v < kVectors; ++v) {
      Vec8 sum = acc[0][v];
      if constexpr (kSets == 2) sum += acc[1][v];
      store(out + v * kLanes, sum);
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

template <int kVectors>
NANOGPT_ALWAYS_INLINE void forward_loops(const HeadShape& s, Rows q, Rows k, Rows v, const DropoutMask& dropout,
                                         MutableRows out, float* lse, float* scratch) {
  const int64_t stride = padded(s.keys);
  float* k_columns = scratch;
  float* p = k_columns + s.dim * stride;
  transpose_padded(k, s.keys, s.dim, stride, k_columns);
  for (int64_t i = 0; i < s.queries; ++i) {
    const int64_t n = visible_keys(s, i);
    row_scores(q[i], k_columns, stride, 0, n, s.dim, s.scale, p);
    float max = p[0];
    for (int64_t j = 1; j < n; ++j) max = p[j] > max ? p[j] : max;
    if (std::isnan(max)) max = 0.0f;  // let the NaN reach the output
    for (int64_t j = 0; j < n; ++j) p[j] = exp_approx(p[j] - max);
    float sum = 0.0f;
    for (int64_t j = 0; j < n; ++j) sum += p[j];
    const float inverse = 1.0f / sum;
    for (int64_t j = 0; j < n; ++j) p[j] *= inverse;
    if (dropout.keep) {
      const uint8_t* keep = dropout.keep + i * dropout.stride;
      for (int64_t j = 0; j < n; ++j) p[j] *= keep[j] ? dropout.scale : 0.0f;
    }
    weighted_rows<kVectors>(p, 1, 0, n, v, s.dim, out[i]);
    lse[i] = max + std::log(sum);
  }
}

// Backward key by key: for key j, the probabilities and score gradients of every query that
// sees it come out as one contiguous row (scores over transposed queries), from which dk[j]
// and dv[j] are summed in registers; the score gradients are kept, transposed in tiles, and
// dq is summed from them row by row. Every output row is written once, and no pass walks a
// column of a (T, T) matrix.
template <int kVectors>
NANOGPT_ALWAYS_INLINE void backward_loops(const HeadShape& s, Rows q, Rows k, Rows v, const DropoutMask& dropout,
                                          Rows out, Rows dout, const float* lse, MutableRows dq, MutableRows dk,
                                          MutableRows dv, float* scratch) {
  const int64_t query_stride = padded(s.queries), key_stride = padded(s.keys);
  float* q_columns = scratch;
  float* dout_columns = q_columns + s.dim * query_stride;
  float* do_dot_o = dout_columns + s.dim * query_stride;  // sum_j p[j] * dp[j] per query: softmax backward's correction
  float* p = do_dot_o + query_stride;
  float* score_grads_by_key = p + query_stride;                              // keys x query_stride
  float* score_grads = score_grads_by_key + s.keys * query_stride;           // queries x key_stride
  float* multipliers_by_key = score_grads + s.queries * key_stride;          // dropout: keys x query_stride
  if (dropout.keep) {
    for (int64_t i = 0; i < s.queries; ++i) {
      for (int64_t j = 0; j < s.keys; ++j) {
        multipliers_by_key[j * query_stride + i] = dropout.keep[i * dropout.stride + j] ? dropout.scale : 0.0f;
      }
    }
  }
  transpose_padded(q, s.queries, s.dim, query_stride, q_columns);
  transpose_padded(dout, s.queries, s.dim, query_stride, dout_columns);
  for (int64_t i = 0; i < s.queries; ++i) {
    float sum = 0.0f;
    for (int64_t d = 0; d < s.dim; ++d) sum += dout[i][d] * out[i][d];
    do_dot_o[i] = sum;
  }
  for (int64_t j = 0; j < s.keys; ++j) {
    const int64_t first = std::min(std::max<int64_t>(0, j - s.past), s.queries);  // the queries that see key j
    const int64_t begin = first / kLanes * kLanes;
    float* ds = score_grads_by_key + j * query_stride;
    row_scores(k[j], q_columns, query_stride, begin, s.queries, s.dim, s.scale, p);
    for (int64_t i = begin; i < s.queries; ++i) p[i] = exp_approx(p[i] - lse[i]);
    row_scores(v[j], dout_columns, query_stride, begin, s.queries, s.dim, 1.0f, ds);
    if (dropout.keep) {  // p becomes the kept probabilities that multiplied v in forward
      const float* multiplier = multipliers_by_key + j * query_stride;
      for (int64_t i = begin; i < s.queries; ++i) {
        const float kept = p[i] * multiplier[i];
        ds[i] = (kept * ds[i] - p[i] * do_dot_o[i]) * s.scale;
        p[i] = kept;
      }
    } else {
      for (int64_t i = begin; i < s.queries; ++i) ds[i] = p[i] * (ds[i] - do_dot_o[i]) * s.scale;
    }
    weighted_rows<kVectors>(ds, 1, first, s.queries, q, s.dim, dk[j]);
    weighted_rows<kVectors>(p, 1, first, s.queries, dout, s.dim, dv[j]);
  }
  transpose(score_grads_by_key, query_stride, s.keys, s.queries, score_grads, key_stride);
  for (int64_t i = 0; i < s.queries; ++i) {
    weighted_rows<kVectors>(score_grads + i * key_stride, 1, 0, visible_keys(s, i), k, s.dim, dq[i]);
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
void forward_head_baseline(const HeadShape& s, Rows q, Rows k, Rows v, const DropoutMask& dropout, MutableRows out,
                           float* lse, float* scratch) {
  forward_head_any(s, q, k, v, dropout, out, lse, scratch);
}
NANOGPT_AVX2_FMA void backward_head_avx2(const HeadShape& s, Rows q, Rows k, Rows v, const DropoutMask& dropout,
                                          Rows out, Rows dout, const float* lse, MutableRows dq, MutableRows dk,
                                          MutableRows dv, float* scratch) {
  backward_head_any(s, q, k, v, dropout, out, dout, lse, dq, dk, dv, scratch);
}
void backward_head_baseline(const HeadShape& s, Rows q, Rows k, Rows v, const DropoutMask& dropout, Rows out,
                            Rows dout, const float* lse, MutableRows dq, MutableRows dk, MutableRows dv,
                            float* scratch) {
  backward_head_any(s, q, k, v, dropout, out, dout, lse, dq, dk, dv, scratch);
}

}  // namespace

int64_t forward_scratch_floats(const HeadShape& s) { return s.dim * padded(s.keys) + padded(s.keys); }
int64_t backward_scratch_floats(const HeadShape& s, bool dropout) {
  return (2 * s.dim + 2 + s.keys * (dropout ? 2 : 1)) * padded(s.queries) + s.queries * padded(s.keys);
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
