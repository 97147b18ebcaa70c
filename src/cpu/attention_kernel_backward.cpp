// The backward pass of the attention kernel (attention_kernel.h): dk and dv by blocks of
// keys, then dq from the transposed score gradients.
#include "cpu/attention_kernel.h"

#include <algorithm>

#include "cpu/attention_kernel_vectors.h"
#include "cpu/cpu_features.h"

namespace nanogpt::attention_kernel {

namespace {

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

NANOGPT_ALWAYS_INLINE void backward_head_any(const HeadShape& s, Rows q, Rows k, Rows v, const DropoutMask& dropout,
                                             Rows out, Rows dout, const float* lse, MutableRows dq, MutableRows dk,
                                             MutableRows dv, float* scratch) {
#define NANOGPT_BACKWARD(V) backward_loops<V>(s, q, k, v, dropout, out, dout, lse, dq, dk, dv, scratch)
  NANOGPT_FOR_VECTORS_PER_ROW(s.dim, NANOGPT_BACKWARD)
#undef NANOGPT_BACKWARD
}

NANOGPT_AVX2_FMA void backward_head_avx2(const HeadShape& s, Rows q, Rows k, Rows v, const DropoutMask& dropout,
                                          Rows out, Rows dout, const float* lse, MutableRows dq, MutableRows dk,
                                          MutableRows dv, float* scratch) {
  backward_head_any(s, q, k, v, dropout, out, dout, lse, dq, dk, dv, scratch);
}

}  // namespace

void backward_head_baseline(const HeadShape& s, Rows q, Rows k, Rows v, const DropoutMask& dropout, Rows out,
                            Rows dout, const float* lse, MutableRows dq, MutableRows dk, MutableRows dv,
                            float* scratch) {
  backward_head_any(s, q, k, v, dropout, out, dout, lse, dq, dk, dv, scratch);
}

int64_t backward_scratch_floats(const HeadShape& s, bool dropout) {
  return (2 * s.dim + 1 + kRowBlock + s.keys * (dropout ? 2 : 1)) * padded(s.queries) + s.queries * padded(s.keys);
}

void backward_head(const HeadShape& s, Rows q, Rows k, Rows v, const DropoutMask& dropout, Rows out, Rows dout,
                   const float* lse, MutableRows dq, MutableRows dk, MutableRows dv, float* scratch) {
  (cpu_has_avx2_fma() ? backward_head_avx2 : backward_head_baseline)(s, q, k, v, dropout, out, dout, lse, dq, dk, dv,
                                                                      scratch);
}

}  // namespace nanogpt::attention_kernel
