#include "attention_kernel.h"

#include <algorithm>
#include <cmath>
#include <cstring>

// Every loop below runs along a contiguous row with no reduction across iterations, so GCC
// vectorises it without reordering any sum; the AVX2+FMA clone is picked at load time.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define NANOGPT_VECTOR_CLONES __attribute__((target_clones("arch=haswell", "default")))
#else
#define NANOGPT_VECTOR_CLONES
#endif
#define NANOGPT_INLINE inline __attribute__((always_inline))

namespace nanogpt::attention_kernel {

namespace {

NANOGPT_INLINE int64_t visible_keys(const HeadShape& s, int64_t query) {
  return std::min(s.past + query + 1, s.keys);
}

// dst[d * keys + j] = src[j][d]: keys along a contiguous row, for the score loops.
NANOGPT_INLINE void transpose(Rows src, int64_t keys, int64_t dim, float* dst) {
  for (int64_t j = 0; j < keys; ++j) {
    const float* row = src[j];
    for (int64_t d = 0; d < dim; ++d) dst[d * keys + j] = row[d];
  }
}

// scores[j] = scale * sum_d x[d] * columns[d * keys + j] for j < n.
NANOGPT_INLINE void dot_rows(const float* x, const float* columns, int64_t keys, int64_t n, int64_t dim, float scale,
                             float* scores) {
  std::fill(scores, scores + n, 0.0f);
  for (int64_t d = 0; d < dim; ++d) {
    const float xd = x[d] * scale;
    const float* column = columns + d * keys;
    for (int64_t j = 0; j < n; ++j) scores[j] += xd * column[j];
  }
}

// y[d] += a * x[d]
NANOGPT_INLINE void axpy(float a, const float* x, int64_t dim, float* y) {
  for (int64_t d = 0; d < dim; ++d) y[d] += a * x[d];
}

// x[j] = exp(x[j] - shift): Cephes' expf polynomial (about 1 ulp), branch-free so that it
// vectorises. NaN stays NaN.
NANOGPT_INLINE void exp_shifted(float* x, int64_t n, float shift) {
  constexpr float round_magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  for (int64_t j = 0; j < n; ++j) {
    float t = x[j] - shift;
    t = t < -87.3f ? -87.3f : t;
    t = t > 88.3f ? 88.3f : t;
    const float biased = t * 1.44269504088896341f + round_magic;
    const float whole = biased - round_magic;
    int32_t bits;
    std::memcpy(&bits, &biased, sizeof bits);
    const int32_t exponent_bits = (bits - 0x4B400000 + 127) << 23;
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
    x[j] = y * power;
  }
}

}  // namespace

int64_t forward_scratch_floats(const HeadShape& s) { return s.dim * s.keys + s.keys; }
int64_t backward_scratch_floats(const HeadShape& s) { return 2 * s.dim * s.keys + 2 * s.keys; }

NANOGPT_VECTOR_CLONES
void forward_head(const HeadShape& s, Rows q, Rows k, Rows v, MutableRows out, float* lse, float* scratch) {
  float* k_columns = scratch;
  float* p = scratch + s.dim * s.keys;
  transpose(k, s.keys, s.dim, k_columns);
  for (int64_t i = 0; i < s.queries; ++i) {
    const int64_t n = visible_keys(s, i);
    dot_rows(q[i], k_columns, s.keys, n, s.dim, s.scale, p);
    float max = p[0];
    for (int64_t j = 1; j < n; ++j) max = p[j] > max ? p[j] : max;
    if (std::isnan(max)) max = 0.0f;  // let the NaN reach the output
    exp_shifted(p, n, max);
    float sum = 0.0f;
    for (int64_t j = 0; j < n; ++j) sum += p[j];
    const float inverse = 1.0f / sum;
    float* o = out[i];
    std::fill(o, o + s.dim, 0.0f);
    for (int64_t j = 0; j < n; ++j) axpy(p[j] * inverse, v[j], s.dim, o);
    lse[i] = max + std::log(sum);
  }
}

NANOGPT_VECTOR_CLONES
void backward_head(const HeadShape& s, Rows q, Rows k, Rows v, Rows out, Rows dout, const float* lse,
                   MutableRows dq, MutableRows dk, MutableRows dv, float* scratch) {
  float* k_columns = scratch;
  float* v_columns = k_columns + s.dim * s.keys;
  float* p = v_columns + s.dim * s.keys;
  float* ds = p + s.keys;
  transpose(k, s.keys, s.dim, k_columns);
  transpose(v, s.keys, s.dim, v_columns);
  for (int64_t j = 0; j < s.keys; ++j) {
    std::fill(dk[j], dk[j] + s.dim, 0.0f);
    std::fill(dv[j], dv[j] + s.dim, 0.0f);
  }
  for (int64_t i = 0; i < s.queries; ++i) {
    const int64_t n = visible_keys(s, i);
    const float* do_i = dout[i];
    const float* o_i = out[i];
    float do_dot_o = 0.0f;  // sum_j p[j] * dp[j], the softmax backward's correction
    for (int64_t d = 0; d < s.dim; ++d) do_dot_o += do_i[d] * o_i[d];
    dot_rows(q[i], k_columns, s.keys, n, s.dim, s.scale, p);
    exp_shifted(p, n, lse[i]);
    dot_rows(do_i, v_columns, s.keys, n, s.dim, 1.0f, ds);
    for (int64_t j = 0; j < n; ++j) ds[j] = p[j] * (ds[j] - do_dot_o) * s.scale;
    float* dq_i = dq[i];
    std::fill(dq_i, dq_i + s.dim, 0.0f);
    const float* q_i = q[i];
    for (int64_t j = 0; j < n; ++j) {
      axpy(ds[j], k[j], s.dim, dq_i);
      axpy(ds[j], q_i, s.dim, dk[j]);
      axpy(p[j], do_i, s.dim, dv[j]);
    }
  }
}

}  // namespace nanogpt::attention_kernel
