#include "blas_gemm.h"

#include <dlfcn.h>

#include <stdexcept>

namespace nanogpt::blas_gemm {

namespace {

using Sgemm = void (*)(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
                       const int*, const float*, const int*, const float*, float*, const int*);

// resolved in the process, where LibTorch's BLAS is: this library does not link one itself
Sgemm process_sgemm() {
  static const auto sgemm = reinterpret_cast<Sgemm>(dlsym(RTLD_DEFAULT, "sgemm_"));
  return sgemm;
}

}  // namespace

bool available() { return process_sgemm() != nullptr; }

void gemm(bool a_transposed, bool b_transposed, int64_t rows, int64_t cols, int64_t inner, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const Sgemm sgemm = process_sgemm();
  if (sgemm == nullptr) throw std::runtime_error("blas_gemm: the process has no sgemm_");
  // Fortran's sgemm is column-major, where a row-major matrix is its transpose: c.T = op(b).T @ op(a).T
  const char op_b = b_transposed ? 'T' : 'N', op_a = a_transposed ? 'T' : 'N';
  const int m = static_cast<int>(cols), n = static_cast<int>(rows), k = static_cast<int>(inner);
  const int lb = static_cast<int>(ldb), la = static_cast<int>(lda), lc = static_cast<int>(ldc);
  const float one = 1.0f;
  sgemm(&op_b, &op_a, &m, &n, &k, &one, b, &lb, a, &la, &beta, c, &lc);
}

}  // namespace nanogpt::blas_gemm
