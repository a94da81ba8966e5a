// The CUDA allocator, host <-> device copies, and the elementwise add kernel.
#include "tensor/cuda/tensor_cuda.h"

#include <algorithm>
#include <cstdio>
#include <mutex>

#include "tensor/cuda/cuda_check.h"
#include "tensor/cuda/device_info.h"

namespace medtl::cuda {
namespace {

// Makes `index` the current GPU for its lifetime, then restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int index) {
    MEDTL_CUDA_CHECK(cudaGetDevice(&previous_));
    if (index != previous_) MEDTL_CUDA_CHECK(cudaSetDevice(index));
    changed_ = index != previous_;
  }
  ~DeviceGuard() {
    if (changed_) (void)cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  bool changed_ = false;
};

void* cuda_allocate(int64_t nbytes, int device_index) {
  if (nbytes == 0) return nullptr;
  const int count = device_count();
  MEDTL_CHECK(count > 0, "cannot allocate ", nbytes, " bytes on cuda:", device_index, ": ", no_device_reason());
  MEDTL_CHECK(device_index >= 0 && device_index < count, "cannot allocate on cuda:", device_index, ": this process sees ",
              count, " GPU(s)");
  DeviceGuard guard(device_index);
  void* ptr = nullptr;
  MEDTL_CUDA_CHECK(cudaMalloc(&ptr, static_cast<size_t>(nbytes)));
  return ptr;
}

// Called from Storage's destructor: must not throw. At process exit the runtime may already be
// unloaded (cudaErrorCudartUnloading), which frees everything anyway.
void cuda_release(void* ptr, int /*device_index*/) {
  if (ptr == nullptr) return;
  const cudaError_t status = cudaFree(ptr);
  if (status != cudaSuccess && status != cudaErrorCudartUnloading) {
    (void)cudaGetLastError();
    std::fprintf(stderr, "medtl: warning: cudaFree failed: %s: %s\n", cudaGetErrorName(status),
                 cudaGetErrorString(status));
  }
}

// Grid-stride loop: any n with a bounded grid.
__global__ void add_float_kernel(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ out,
                                 int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = a[i] + b[i];
}

}  // namespace

void init() {
  static std::once_flag once;
  std::call_once(once, [] { Storage::register_allocator(DeviceType::CUDA, Storage::Allocator{&cuda_allocate, &cuda_release}); });
}

Tensor copy_to_device(const Tensor& cpu, int device_index) {
  MEDTL_CHECK(cpu.defined(), "cuda::copy_to_device: the tensor is undefined");
  MEDTL_CHECK(cpu.device().is_cpu(), "cuda::copy_to_device: expected a CPU tensor, got ", cpu.str(),
              "; use copy_to_host first to move it between GPUs");
  init();
  const Tensor src = cpu.contiguous();
  Tensor out = empty(src.shape(), src.dtype(), Device::cuda(device_index));
  const size_t nbytes = static_cast<size_t>(src.numel() * dtype_size(src.dtype()));
  if (nbytes > 0) {
    DeviceGuard guard(device_index);
    MEDTL_CUDA_CHECK(cudaMemcpy(out.raw_data(), src.raw_data(), nbytes, cudaMemcpyHostToDevice));
  }
  return out;
}

Tensor copy_to_host(const Tensor& gpu) {
  MEDTL_CHECK(gpu.defined(), "cuda::copy_to_host: the tensor is undefined");
  MEDTL_CHECK(gpu.device().is_cuda(), "cuda::copy_to_host: expected a CUDA tensor, got ", gpu.str());
  MEDTL_CHECK(gpu.is_contiguous(), "cuda::copy_to_host: ", gpu.str(), " is not contiguous (strides ",
              shape_str(gpu.strides()), "); only contiguous GPU tensors can be copied so far");
  Tensor out = empty(gpu.shape(), gpu.dtype());
  const size_t nbytes = static_cast<size_t>(gpu.numel() * dtype_size(gpu.dtype()));
  if (nbytes > 0) {
    DeviceGuard guard(gpu.device().index);
    MEDTL_CUDA_CHECK(cudaMemcpy(out.raw_data(), gpu.raw_data(), nbytes, cudaMemcpyDeviceToHost));
  }
  return out;
}

Tensor add(const Tensor& a, const Tensor& b) {
  MEDTL_CHECK(a.defined() && b.defined(), "cuda::add: an operand is undefined");
  MEDTL_CHECK(a.device().is_cuda() && a.device() == b.device(), "cuda::add: both operands must be on the same GPU, got ",
              a.str(), " and ", b.str(), "; move them with cuda::copy_to_device");
  MEDTL_CHECK(a.dtype() == DType::Float32 && b.dtype() == DType::Float32, "cuda::add: only float32 so far, got ",
              a.str(), " and ", b.str());
  MEDTL_CHECK(a.shape() == b.shape(), "cuda::add: shapes differ: ", shape_str(a.shape()), " vs ", shape_str(b.shape()),
              " (no broadcasting on the GPU yet)");
  MEDTL_CHECK(a.is_contiguous() && b.is_contiguous(), "cuda::add: operands must be contiguous, got strides ",
              shape_str(a.strides()), " and ", shape_str(b.strides()));
  Tensor out = empty(a.shape(), DType::Float32, a.device());
  const int64_t n = a.numel();
  if (n == 0) return out;
  DeviceGuard guard(a.device().index);
  constexpr int kThreads = 256;
  const int64_t blocks = std::min<int64_t>((n + kThreads - 1) / kThreads, 65535);  // the grid-stride loop covers the rest
  add_float_kernel<<<static_cast<unsigned>(blocks), kThreads>>>(a.data<float>(), b.data<float>(), out.data<float>(), n);
  MEDTL_CUDA_CHECK(cudaGetLastError());
  return out;
}

void synchronize() { MEDTL_CUDA_CHECK(cudaDeviceSynchronize()); }

}  // namespace medtl::cuda
