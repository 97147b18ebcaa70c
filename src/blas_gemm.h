#pragma once
// Row-major float32 products through the sgemm_ of the BLAS LibTorch calls, from any thread and
// without ATen's dispatcher: the blocks of the split products (split_linear.h, float_products.h).
#include <cstdint>

namespace nanogpt::blas_gemm {

// Whether the process has a Fortran sgemm_ (OpenBLAS, the reference BLAS, ...).
bool available();

// Row-major c (rows x cols, row stride ldc) = op(a) @ op(b) + beta * c. op(a) is (rows x inner):
// a itself with row stride lda, or when a_transposed the transpose of a stored (inner x rows);
// likewise op(b), (inner x cols). Every size must fit a Fortran int.
void gemm(bool a_transposed, bool b_transposed, int64_t rows, int64_t cols, int64_t inner, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

}  // namespace nanogpt::blas_gemm
