// cuBLAS handles and float32 GEMM (tensor/cuda/blas_cuda.h).
#include "tensor/cuda/blas_cuda.h"

#include <limits>
#include <map>

#include "tensor/cuda/launch.h"
#include "tensor/cuda/tensor_cuda.h"
#include "tensor/determinism.h"

namespace medtl::cuda {
namespace {

// One handle and workspace per (thread, GPU): a cuBLAS handle must not be used by two threads at
// once, and per-thread handles need no lock.
struct Blas {
  cublasHandle_t handle = nullptr;
  void* workspace = nullptr;
};

Blas& blas_for(int device_index) {
  // Leaked at thread exit on purpose: destroying handles while the CUDA runtime unloads fails.
  thread_local std::map<int, Blas> handles;
  Blas& blas = handles[device_index];
  if (blas.handle == nullptr) {
    MEDTL_CUBLAS_CHECK(cublasCreate(&blas.handle));
    // Not from the caching allocator: the workspace lives as long as the handle, on every stream.
    MEDTL_CUDA_CHECK(cudaMalloc(&blas.workspace, static_cast<size_t>(kCublasWorkspaceBytes)));
    // Atomics would make some kernels' sums order-dependent. (Off is cuBLAS's default; say so.)
    MEDTL_CUBLAS_CHECK(cublasSetAtomicsMode(blas.handle, CUBLAS_ATOMICS_NOT_ALLOWED));
  }
  return blas;
}

// Prepares the calling thread's handle for a call on the current stream, in the current mode.
cublasHandle_t prepared_handle(int device_index) {
  Blas& blas = blas_for(device_index);
  MEDTL_CUBLAS_CHECK(cublasSetStream(blas.handle, detail::stream()));
  // cublasSetStream resets the workspace to cuBLAS's own pool: set ours again after it, every call.
  MEDTL_CUBLAS_CHECK(cublasSetWorkspace(blas.handle, blas.workspace, static_cast<size_t>(kCublasWorkspaceBytes)));
  // CUBLAS_DEFAULT_MATH computes float32 GEMMs in float32 (no TF32); fast mode allows TF32 tensor
  // cores (10-bit mantissa products, about 1e-3 relative error).
  MEDTL_CUBLAS_CHECK(
      cublasSetMathMode(blas.handle, deterministic() ? CUBLAS_DEFAULT_MATH : CUBLAS_TF32_TENSOR_OP_MATH));
  return blas.handle;
}

int checked_int(int64_t v, const char* what) {
  MEDTL_CHECK(v >= 0 && v <= std::numeric_limits<int>::max(), "cuda::gemm: ", what, " = ", v,
              " does not fit cuBLAS's 32-bit int; split the matrix");
  return static_cast<int>(v);
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc, int device_index) {
  MEDTL_CHECK(m >= 0 && n >= 0 && k >= 0, "cuda::gemm: negative size m ", m, ", n ", n, ", k ", k);
  MEDTL_CHECK(lda >= std::max<int64_t>(1, trans_a ? m : k) && ldb >= std::max<int64_t>(1, trans_b ? k : n) &&
                  ldc >= std::max<int64_t>(1, n),
              "cuda::gemm: leading dimensions too small: lda ", lda, ", ldb ", ldb, ", ldc ", ldc, " for m ", m, ", n ",
              n, ", k ", k, (trans_a ? ", A transposed" : ""), (trans_b ? ", B transposed" : ""));
  if (m == 0 || n == 0) return;
  detail::DeviceGuard guard(device_index);
  cublasHandle_t handle = prepared_handle(device_index);
  // cuBLAS is column-major: a row-major X is X^T to it. Compute C^T = op(B)^T op(A)^T, i.e. pass B
  // first, with the roles of m and n swapped. (k == 0: cuBLAS scales C by beta, as ops::gemm.)
  MEDTL_CUBLAS_CHECK(cublasSgemm(handle, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                 checked_int(n, "n"), checked_int(m, "m"), checked_int(k, "k"), &alpha, b,
                                 checked_int(ldb, "ldb"), a, checked_int(lda, "lda"), &beta, c,
                                 checked_int(ldc, "ldc")));
}

Tensor matmul(const Tensor& a, const Tensor& b) {
  const char* op = "cuda::matmul";
  detail::check_float_gpu(op, "a", a);
  detail::check_float_gpu(op, "b", b);
  detail::check_same_device(op, a, b);
  const bool ok_rank = (a.dim() == 2 && b.dim() == 2) || (a.dim() == 3 && (b.dim() == 2 || b.dim() == 3));
  MEDTL_CHECK(ok_rank, op, ": supports (M, K) @ (K, N), (B, M, K) @ (B, K, N) and (B, M, K) @ (K, N); got ",
              shape_str(a.shape()), " @ ", shape_str(b.shape()));
  const int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  MEDTL_CHECK(b.size(-2) == k, op, ": inner dimensions differ: ", shape_str(a.shape()), " @ ", shape_str(b.shape()));
  MEDTL_CHECK(b.dim() == 2 || b.size(0) == a.size(0), op, ": batch sizes differ: ", shape_str(a.shape()), " @ ",
              shape_str(b.shape()), " (no batch broadcasting on the GPU yet)");
  init();
  Shape out_shape = a.shape();
  out_shape.back() = n;
  Tensor out = empty(out_shape, DType::Float32, a.device());
  const int dev = a.device().index;
  const float* pa = a.device_data<float>();
  const float* pb = b.device_data<float>();
  float* pc = out.device_data<float>();
  if (out.numel() == 0) return out;
  if (k == 0) {
    // An empty sum: zeros, without relying on how cuBLAS treats beta = 0 with k = 0.
    detail::DeviceGuard guard(dev);
    MEDTL_CUDA_CHECK(cudaMemsetAsync(pc, 0, static_cast<size_t>(out.numel()) * sizeof(float), detail::stream()));
    return out;
  }
  if (a.dim() == 2 || b.dim() == 2) {
    // (B, M, K) row-major is (B*M, K): one GEMM.
    gemm(false, false, out.numel() / n, n, k, 1.0f, pa, k, pb, n, 0.0f, pc, n, dev);
    return out;
  }
  const int64_t batch = a.size(0);
  detail::DeviceGuard guard(dev);
  cublasHandle_t handle = prepared_handle(dev);
  const float alpha = 1.0f, beta = 0.0f;
  MEDTL_CUBLAS_CHECK(cublasSgemmStridedBatched(
      handle, CUBLAS_OP_N, CUBLAS_OP_N, checked_int(n, "n"), checked_int(m, "m"), checked_int(k, "k"), &alpha, pb,
      checked_int(n, "ldb"), k * n, pa, checked_int(k, "lda"), m * k, &beta, pc,
      checked_int(n, "ldc"), m * n, checked_int(batch, "batch")));
  return out;
}

}  // namespace medtl::cuda
