// The forward pass of the attention kernel (attention_kernel.h): scores, softmax, dropout
// and the weighted sum of the values, by blocks of queries.
#include "cpu/attention_kernel.h"

#include <algorithm>
#include <cmath>

#include "cpu/attention_kernel_vectors.h"
#include "cpu/cpu_features.h"

namespace nanogpt::attention_kernel {

namespace {

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

NANOGPT_ALWAYS_INLINE void forward_head_any(const HeadShape& s, Rows q, Rows k, Rows v, const DropoutMask& dropout,
                                            MutableRows out, float* lse, float* scratch) {
#define NANOGPT_FORWARD(V) forward_loops<V>(s, q, k, v, dropout, out, lse, scratch)
  NANOGPT_FOR_VECTORS_PER_ROW(s.dim, NANOGPT_FORWARD)
#undef NANOGPT_FORWARD
}

NANOGPT_AVX2_FMA void forward_head_avx2(const HeadShape& s, Rows q, Rows k, Rows v, const DropoutMask& dropout,
                                         MutableRows out, float* lse, float* scratch) {
  forward_head_any(s, q, k, v, dropout, out, lse, scratch);
}

}  // namespace

void forward_head_baseline(const HeadShape& s, Rows q, Rows k, Rows v, const DropoutMask& dropout, MutableRows out,
                           float* lse, float* scratch) {
  forward_head_any(s, q, k, v, dropout, out, lse, scratch);
}

int64_t forward_scratch_floats(const HeadShape& s) { return (s.dim + kRowBlock) * padded(s.keys); }

void forward_head(const HeadShape& s, Rows q, Rows k, Rows v, const DropoutMask& dropout, MutableRows out, float* lse,
                  float* scratch) {
  (cpu_has_avx2_fma() ? forward_head_avx2 : forward_head_baseline)(s, q, k, v, dropout, out, lse, scratch);
}

}  // namespace nanogpt::attention_kernel
