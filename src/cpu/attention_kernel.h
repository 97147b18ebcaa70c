#pragma once
// Causal attention of one head over plain float rows: the loops behind
// fused_cpu_causal_attention (include/nanogpt/cpu/attention.h).
#include <cstdint>

namespace nanogpt::attention_kernel {

// Rows of `dim` contiguous floats, `stride` floats apart.
struct Rows {
  const float* data;
  int64_t stride;
  const float* operator[](int64_t i) const { return data + i * stride; }
};
struct MutableRows {
  float* data;
  int64_t stride;
  float* operator[](int64_t i) const { return data + i * stride; }
};

// Query row i sits at absolute position past + i and sees keys 0..past+i (at most keys - 1).
struct HeadShape {
  int64_t queries, keys, past, dim;
  float scale;
};

// Scratch floats that forward_head and backward_head need (backward: more with dropout).
int64_t forward_scratch_floats(const HeadShape& shape);
int64_t backward_scratch_floats(const HeadShape& shape, bool dropout);

// Attention dropout of one head: probability (i, j) is kept, times `scale`, where
// keep[i * stride + j] is nonzero, and zeroed elsewhere. No keep: no dropout.
struct DropoutMask {
  const uint8_t* keep = nullptr;
  int64_t stride = 0;
  float scale = 1.0f;
};

// out[i] = dropout(softmax(scale * q[i] . k[j], j visible)) @ v; lse[i] is that softmax's
// log-normaliser.
void forward_head(const HeadShape& shape, Rows q, Rows k, Rows v, const DropoutMask& dropout, MutableRows out,
                  float* lse, float* scratch);

// Gradients of forward_head given d(out): writes every row of dq (queries), dk and dv (keys).
void backward_head(const HeadShape& shape, Rows q, Rows k, Rows v, const DropoutMask& dropout, Rows out, Rows dout,
                   const float* lse, MutableRows dq, MutableRows dk, MutableRows dv, float* scratch);

// forward_head and backward_head as compiled for the baseline target (no AVX2, no FMA),
// whatever this CPU has: the copy other CPUs run, for tests.
void forward_head_baseline(const HeadShape& shape, Rows q, Rows k, Rows v, const DropoutMask& dropout,
                           MutableRows out, float* lse, float* scratch);
void backward_head_baseline(const HeadShape& shape, Rows q, Rows k, Rows v, const DropoutMask& dropout, Rows out,
                            Rows dout, const float* lse, MutableRows dq, MutableRows dk, MutableRows dv,
                            float* scratch);

}  // namespace nanogpt::attention_kernel
