// Matrix multiplication: GEMM on raw matrices and NumPy-style batched matmul on tensors.
//
// float32 runs through oneDNN's sgemm (the CPU fast path); float64 runs through a plain blocked
// loop (gradient checks and tests only need it on small shapes). A naive triple loop in
// tensor/cpu/matmul_reference.cc is the oracle tests compare both against.
#pragma once

#include "tensor/tensor.h"

namespace medtl::ops {

// C = alpha * op(A) @ op(B) + beta * C, row-major, op(X) = X or X^T.
// a: (M, K) or (K, M) if trans_a; b: (K, N) or (N, K) if trans_b; c: (M, N).
// Leading dimensions are the row strides in elements. beta == 0 ignores C's old contents (NaN
// included); K == 0 gives C = beta * C. A bad size or leading dimension throws medtl::Error
// (for float32 the message names the oneDNN call and its status).
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
          const double* b, int64_t ldb, double beta, double* c, int64_t ldc);

// numpy.matmul semantics: 1-D operands are promoted (and the added dim removed after); batch
// dims broadcast. a: (..., M, K), b: (..., K, N) -> (broadcast(...), M, N).
// Either operand may be transposed (e.g. x.transpose(-1, -2)) without a copy: a matrix whose
// last two strides are (1, rows) is passed to GEMM as transposed. Other layouts are copied first.
// The result is a new contiguous tensor; K == 0 gives zeros. Operands must share a dtype
// (float32 or float64) and live on the CPU.
// Threads: (B, M, K) @ (K, N) with row-major A folds into one GEMM of B*M rows; batches of small
// matrices (M*N*K <= 128^3) split the batch across threads, one single-threaded GEMM each;
// otherwise each GEMM is threaded inside. float64 is bit-identical for any thread count.
Tensor matmul(const Tensor& a, const Tensor& b);

// The plain triple loop, in double accumulation: the oracle for tests. Same semantics as matmul.
Tensor matmul_reference(const Tensor& a, const Tensor& b);

}  // namespace medtl::ops
