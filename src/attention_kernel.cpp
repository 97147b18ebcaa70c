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

// columns[d * stride + j] = src[j][d] for j < keys, 0 up to the padded width.
NANOGPT_ALWAYS_INLINE void transpose_padded(Rows src, int64_t keys, int64_t dim, int64_t stride, float* columns) {
  for (int64_t d = 0; d < dim; ++d) std::fill(columns + d * stride + keys, columns + (d + 1) * stride, 0.0f);
  for (int64_t j = 0; j < keys; ++j) {
    const float* row = src[j];
    for (int64_t d = 0; d < dim; ++d) columns[d * stride + j] = row[d];
  }
}

// scores[j] = scale * sum_d x[d] * columns[d * stride + j] for j in [begin, padded(end)),
// begin a multiple of 8; the entries past end are not meant to be used.
NANOGPT_ALWAYS_INLINE void row_scores(const float* x, const float* columns, int64_t stride, int64_t begin,
                                      int64_t end, int64_t dim, float scale, float* scores) {
  const int64_t width = padded(end);
  int64_t j = begin;
  for (; j + 4 * kLanes <= width; j += 4 * kLanes) {
    Vec8 a0{}, a1{}, a2{}, a3{};
    for (int64_t d = 0; d < dim; ++d) {
      const Vec8 b = broadcast(x[d] * scale);
      const float* c = columns + d * stride + j;
      a0 += b * load(c);
      a1 += b * load(c + kLanes);
      a2 += b * load(c + 2 * kLanes);
      a3 += b * load(c + 3 * kLanes);
    }
    store(scores + j, a0);
    store(scores + j + kLanes, a1);
    store(scores + j + 2 * kLanes, a2);
    store(scores + j + 3 * kLanes, a3);
  }
  for (; j < width; j += kLanes) {  // two chains over even and odd d: the adds' latency halves
    Vec8 even{}, odd{};
    int64_t d = 0;
    for (; d + 1 < dim; d += 2) {
      even += broadcast(x[d] * scale) * load(columns + d * stride + j);
      odd += broadcast(x[d + 1] * scale) * load(columns + (d + 1) * stride + j);
    }
    if (d < dim) even += broadcast(x[d] * scale) * load(columns + d * stride + j);
    store(scores + j, even + odd);
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
    Vec8 acc[kVectors] = {};
    for (int64_t i = begin; i < end; ++i) {
      const Vec8 b = broadcast(w[i * w_stride]);
      const float* r = rows[i];
#pragma GCC unroll 16
      for (int v = 0; v < kVectors; ++v) acc[v] += b * load(r + v * kLanes);
    }
#pragma GCC unroll 16
    for (int v = 0; v < kVectors; ++v) store(out + v * kLanes, acc[v]);
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

// dst[j * dst_stride + i] = src[i * src_stride + j] for i < rows, j < cols, in 8 x 8 tiles.
NANOGPT_ALWAYS_INLINE void transpose_tiles(const float* src, int64_t src_stride, int64_t rows, int64_t cols,
                                           float* dst, int64_t dst_stride) {
  for (int64_t i0 = 0; i0 < rows; i0 += kLanes) {
    for (int64_t j0 = 0; j0 < cols; j0 += kLanes) {
      for (int64_t i = i0; i < std::min(i0 + kLanes, rows); ++i) {
        for (int64_t j = j0; j < std::min(j0 + kLanes, cols); ++j) dst[j * dst_stride + i] = src[i * src_stride + j];
      }
    }
  }
}

template <int kVectors>
NANOGPT_ALWAYS_INLINE void forward_loops(const HeadShape& s, Rows q, Rows k, Rows v, MutableRows out, float* lse,
                                         float* scratch) {
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
NANOGPT_ALWAYS_INLINE void backward_loops(const HeadShape& s, Rows q, Rows k, Rows v, Rows out, Rows dout,
                                          const float* lse, MutableRows dq, MutableRows dk, MutableRows dv,
                                          float* scratch) {
  const int64_t query_stride = padded(s.queries), key_stride = padded(s.keys);
  float* q_columns = scratch;
  float* dout_columns = q_columns + s.dim * query_stride;
  float* do_dot_o = dout_columns + s.dim * query_stride;  // sum_j p[j] * dp[j] per query: softmax backward's correction
  float* p = do_dot_o + query_stride;
  float* score_grads_by_key = p + query_stride;                              // keys x query_stride
  float* score_grads = score_grads_by_key + s.keys * query_stride;           // queries x key_stride
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
    for (int64_t i = begin; i < s.queries; ++i) ds[i] = p[i] * (ds[i] - do_dot_o[i]) * s.scale;
    weighted_rows<kVectors>(ds, 1, first, s.queries, q, s.dim, dk[j]);
    weighted_rows<kVectors>(p, 1, first, s.queries, dout, s.dim, dv[j]);
  }
  transpose_tiles(score_grads_by_key, query_stride, s.keys, s.queries, score_grads, key_stride);
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

NANOGPT_ALWAYS_INLINE void forward_head_any(const HeadShape& s, Rows q, Rows k, Rows v, MutableRows out, float* lse,
                                            float* scratch) {
#define NANOGPT_FORWARD(V) forward_loops<V>(s, q, k, v, out, lse, scratch)
  NANOGPT_FOR_VECTORS_PER_ROW(s.dim, NANOGPT_FORWARD)
#undef NANOGPT_FORWARD
}

NANOGPT_ALWAYS_INLINE void backward_head_any(const HeadShape& s, Rows q, Rows k, Rows v, Rows out, Rows dout,
                                             const float* lse, MutableRows dq, MutableRows dk, MutableRows dv,
                                             float* scratch) {
#define NANOGPT_BACKWARD(V) backward_loops<V>(s, q, k, v, out, dout, lse, dq, dk, dv, scratch)
  NANOGPT_FOR_VECTORS_PER_ROW(s.dim, NANOGPT_BACKWARD)
#undef NANOGPT_BACKWARD
}

NANOGPT_AVX2_FMA void forward_head_avx2(const HeadShape& s, Rows q, Rows k, Rows v, MutableRows out, float* lse,
                                         float* scratch) {
  forward_head_any(s, q, k, v, out, lse, scratch);
}
void forward_head_baseline(const HeadShape& s, Rows q, Rows k, Rows v, MutableRows out, float* lse, float* scratch) {
  forward_head_any(s, q, k, v, out, lse, scratch);
}
NANOGPT_AVX2_FMA void backward_head_avx2(const HeadShape& s, Rows q, Rows k, Rows v, Rows out, Rows dout,
                                          const float* lse, MutableRows dq, MutableRows dk, MutableRows dv,
                                          float* scratch) {
  backward_head_any(s, q, k, v, out, dout, lse, dq, dk, dv, scratch);
}
void backward_head_baseline(const HeadShape& s, Rows q, Rows k, Rows v, Rows out, Rows dout, const float* lse,
                            MutableRows dq, MutableRows dk, MutableRows dv, float* scratch) {
  backward_head_any(s, q, k, v, out, dout, lse, dq, dk, dv, scratch);
}

}  // namespace

int64_t forward_scratch_floats(const HeadShape& s) { return s.dim * padded(s.keys) + padded(s.keys); }
int64_t backward_scratch_floats(const HeadShape& s) {
  return (2 * s.dim + 2 + s.keys) * padded(s.queries) + s.queries * padded(s.keys);
}

void forward_head(const HeadShape& s, Rows q, Rows k, Rows v, MutableRows out, float* lse, float* scratch) {
  (cpu_has_avx2_fma() ? forward_head_avx2 : forward_head_baseline)(s, q, k, v, out, lse, scratch);
}

void backward_head(const HeadShape& s, Rows q, Rows k, Rows v, Rows out, Rows dout, const float* lse,
                   MutableRows dq, MutableRows dk, MutableRows dv, float* scratch) {
  (cpu_has_avx2_fma() ? backward_head_avx2 : backward_head_baseline)(s, q, k, v, out, dout, lse, dq, dk, dv, scratch);
}

}  // namespace nanogpt::attention_kernel
