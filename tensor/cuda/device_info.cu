// Device and library queries. Everything here works without a GPU except device_name and
// compute_capability, which need a valid index.
#include "tensor/cuda/device_info.h"

#include <library_types.h>

#include "tensor/cuda/cuda_check.h"

namespace medtl::cuda {
namespace {

// cudaGetDeviceCount's status: cudaSuccess, or why there is no GPU to use.
cudaError_t count_devices(int* count) {
  *count = 0;
  const cudaError_t status = cudaGetDeviceCount(count);
  if (status != cudaSuccess) {
    *count = 0;
    (void)cudaGetLastError();  // do not leave the error for the next checked call to report
  }
  return status;
}

void check_index(int index) {
  const int count = device_count();
  MEDTL_CHECK(count > 0, "CUDA device ", index, " requested but no GPU is usable: ", no_device_reason());
  MEDTL_CHECK(index >= 0 && index < count, "CUDA device index ", index, " is out of range: this process sees ",
              count, " GPU(s), indices 0..", count - 1, " (CUDA_VISIBLE_DEVICES can hide some)");
}

}  // namespace

int device_count() {
  int count = 0;
  count_devices(&count);
  return count;
}

std::string no_device_reason() {
  int count = 0;
  const cudaError_t status = count_devices(&count);
  if (status == cudaSuccess && count > 0) return "";
  if (status == cudaSuccess) return "the CUDA driver reports no GPU; check `nvidia-smi` and CUDA_VISIBLE_DEVICES";
  return str_cat("cudaGetDeviceCount: ", cudaGetErrorName(status), ": ", cudaGetErrorString(status), "; ",
                 detail::cuda_hint(status));
}

std::string device_name(int index) {
  check_index(index);
  cudaDeviceProp prop{};
  MEDTL_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  return prop.name;
}

int compute_capability(int index) {
  check_index(index);
  int major = 0, minor = 0;
  MEDTL_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, index));
  MEDTL_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, index));
  return major * 10 + minor;
}

int runtime_version() {
  int version = 0;
  MEDTL_CUDA_CHECK(cudaRuntimeGetVersion(&version));
  return version;
}

int driver_version() {
  int version = 0;
  if (cudaDriverGetVersion(&version) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return version;
}

int cublas_version() {
  int major = 0, minor = 0, patch = 0;
  MEDTL_CUBLAS_CHECK(cublasGetProperty(MAJOR_VERSION, &major));
  MEDTL_CUBLAS_CHECK(cublasGetProperty(MINOR_VERSION, &minor));
  MEDTL_CUBLAS_CHECK(cublasGetProperty(PATCH_LEVEL, &patch));
  return major * 10000 + minor * 100 + patch;
}

int64_t cudnn_version() { return static_cast<int64_t>(cudnnGetVersion()); }

std::string version_summary() {
  const int rt = runtime_version(), drv = driver_version(), blas = cublas_version();
  const int64_t dnn = cudnn_version();
  std::string out = str_cat("cudart ", rt / 1000, ".", rt % 1000 / 10, ", driver ");
  out += drv > 0 ? str_cat(drv / 1000, ".", drv % 1000 / 10) : std::string("none");
  out += str_cat(", cuBLAS ", blas / 10000, ".", blas % 10000 / 100, ".", blas % 100, ", cuDNN ", dnn / 10000, ".",
                 dnn % 10000 / 100, ".", dnn % 100);
  const int count = device_count();
  if (count == 0) return out + ", no GPU (" + no_device_reason() + ")";
  out += str_cat(", ", count, " GPU(s):");
  for (int i = 0; i < count; ++i) out += str_cat(" [", i, "] ", device_name(i), " sm_", compute_capability(i));
  return out;
}

}  // namespace medtl::cuda
