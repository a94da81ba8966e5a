// float32 GEMM and matmul on GPU tensors through cuBLAS, configured for reproducible results:
// a fixed workspace per handle, no atomics, and in deterministic mode (medtl::deterministic(),
// the default) plain float32 math with TF32 off. Plain C++ header; defined only under --config=cuda.
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace medtl::cuda {

// C = alpha * op(A) @ op(B) + beta * C on device pointers of GPU `device_index`, row-major, with the
// contract of ops::gemm (tensor/ops/matmul.h): a: (M, K) or (K, M) if trans_a; b: (K, N) or (N, K)
// if trans_b; c: (M, N); leading dimensions are row strides in elements. Queued on the current
// stream.
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc, int device_index = 0);

// a: (M, K), b: (K, N) -> (M, N); a: (B, M, K), b: (B, K, N) -> (B, M, N); a: (B, M, K), b: (K, N)
// -> (B, M, N) (folded into one GEMM of B*M rows). float32, contiguous, one GPU. K == 0 gives zeros.
Tensor matmul(const Tensor& a, const Tensor& b);

// Bytes of the fixed cuBLAS workspace each handle gets (set with cublasSetWorkspace: cuBLAS then
// never picks a workspace of its own, whose size could vary and change the kernel it runs).
constexpr int64_t kCublasWorkspaceBytes = int64_t{32} << 20;  // 32 MiB: NVIDIA's advice for Hopper

}  // namespace medtl::cuda
