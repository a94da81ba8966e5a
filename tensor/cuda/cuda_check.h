// Checks for CUDA runtime, cuBLAS and cuDNN calls: a failed call throws medtl::Error naming the
// call, the file and line, the library's own error text, and what to try. Only under
// --config=cuda: this header includes the CUDA headers (@local_cuda//:cuda_headers).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "tensor/error.h"

namespace medtl::cuda::detail {

// What to try when a call fails, by kind of failure.
inline const char* cuda_hint(cudaError_t status) {
  switch (status) {
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorCallRequiresNewerDriver:
    case cudaErrorSystemDriverMismatch:
    case cudaErrorCompatNotSupportedOnDevice:
      return "check `nvidia-smi`: a GPU must be visible and its driver must support CUDA 13 (driver 580 or newer)";
    case cudaErrorMemoryAllocation:
      return "the GPU is out of memory: use a smaller batch, or check `nvidia-smi` for other processes holding memory";
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorUnsupportedPtxVersion:
      return "the kernels are built for sm_90 (Hopper) with compute_90 PTX: this GPU is older; add its -gencode in tools/bazel/cuda.bzl";
    case cudaErrorInvalidDevice:
      return "the device index is out of range: medtl::cuda::device_count() says how many GPUs there are";
    default:
      return "check `nvidia-smi`, that the driver supports CUDA 13; rerun with CUDA_LAUNCH_BLOCKING=1 to find the failing kernel";
  }
}

inline const char* cublas_hint(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "cuBLAS could not start: check `nvidia-smi`, that the driver supports CUDA 13 and that libcublas.so.13 matches the toolkit";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "the GPU is out of memory: check `nvidia-smi` for other processes holding memory";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "a size, leading dimension or pointer passed to cuBLAS is wrong (cuBLAS is column-major)";
    default:
      return "check `nvidia-smi`, that the driver supports CUDA 13; rerun with CUBLAS_LOGINFO_DBG=1 CUBLAS_LOGDEST_DBG=stderr for cuBLAS's log";
  }
}

inline const char* cudnn_hint(cudnnStatus_t status) {
  switch (status) {
    case CUDNN_STATUS_NOT_INITIALIZED:
    case CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDA_DRIVER:
    case CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDART:
      return "cuDNN could not start: check `nvidia-smi`, that the driver supports CUDA 13 and that libcudnn.so.9 is the CUDA 13 build";
    case CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED:
    case CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH:
      return "cuDNN could not load its sub-libraries (libcudnn_*.so.9): they must sit beside libcudnn.so.9 or on LD_LIBRARY_PATH, all of one version";
    case CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED:
      return "the GPU is out of memory: check `nvidia-smi` for other processes holding memory";
    default:
      return "check `nvidia-smi`, that the driver supports CUDA 13; rerun with CUDNN_LOGLEVEL_DBG=2 CUDNN_LOGDEST_DBG=stderr for cuDNN's log";
  }
}

}  // namespace medtl::cuda::detail

// MEDTL_CUDA_CHECK(cudaMalloc(&p, n)): throws medtl::Error if the call does not return cudaSuccess.
// Also clears CUDA's last-error slot, so a later cudaGetLastError() does not report it again.
#define MEDTL_CUDA_CHECK(call)                                                                          \
  do {                                                                                                  \
    const cudaError_t medtl_cuda_status_ = (call);                                                      \
    if (medtl_cuda_status_ != cudaSuccess) {                                                            \
      (void)cudaGetLastError();                                                                         \
      ::medtl::detail::throw_error(                                                                     \
          __FILE__, __LINE__,                                                                           \
          ::medtl::str_cat("CUDA call `", #call, "` failed: ", cudaGetErrorName(medtl_cuda_status_), \
                           " (", static_cast<int>(medtl_cuda_status_), "): ",                           \
                           cudaGetErrorString(medtl_cuda_status_), ". ",                                \
                           ::medtl::cuda::detail::cuda_hint(medtl_cuda_status_)));                      \
    }                                                                                                   \
  } while (0)

// MEDTL_CUBLAS_CHECK(cublasSgemm(...)): throws medtl::Error unless CUBLAS_STATUS_SUCCESS.
#define MEDTL_CUBLAS_CHECK(call)                                                                       \
  do {                                                                                                 \
    const cublasStatus_t medtl_cublas_status_ = (call);                                                \
    if (medtl_cublas_status_ != CUBLAS_STATUS_SUCCESS) {                                               \
      ::medtl::detail::throw_error(                                                                    \
          __FILE__, __LINE__,                                                                          \
          ::medtl::str_cat("cuBLAS call `", #call, "` failed: ", cublasGetStatusName(medtl_cublas_status_), \
                           " (", static_cast<int>(medtl_cublas_status_), "): ",                         \
                           cublasGetStatusString(medtl_cublas_status_), ". ",                           \
                           ::medtl::cuda::detail::cublas_hint(medtl_cublas_status_)));                 \
    }                                                                                                  \
  } while (0)

// MEDTL_CUDNN_CHECK(cudnnCreate(&handle)): throws medtl::Error unless CUDNN_STATUS_SUCCESS.
#define MEDTL_CUDNN_CHECK(call)                                                                        \
  do {                                                                                                 \
    const cudnnStatus_t medtl_cudnn_status_ = (call);                                                  \
    if (medtl_cudnn_status_ != CUDNN_STATUS_SUCCESS) {                                                 \
      ::medtl::detail::throw_error(                                                                    \
          __FILE__, __LINE__,                                                                          \
          ::medtl::str_cat("cuDNN call `", #call, "` failed: ", cudnnGetErrorString(medtl_cudnn_status_), \
                           " (", static_cast<int>(medtl_cudnn_status_), "). ",                          \
                           ::medtl::cuda::detail::cudnn_hint(medtl_cudnn_status_)));                   \
    }                                                                                                  \
  } while (0)
