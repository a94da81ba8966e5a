// Registering the caching allocator with Storage, and host <-> device copies (tensor_cuda.h).
#include "tensor/cuda/tensor_cuda.h"

#include <mutex>

#include "tensor/cuda/launch.h"
#include "tensor/cuda/memory.h"

namespace medtl::cuda {

void init() {
  static std::once_flag once;
  std::call_once(once, [] {
    Storage::register_allocator(DeviceType::CUDA, Storage::Allocator{&device_allocate, &device_release});
  });
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
    detail::DeviceGuard guard(device_index);
    // From pageable memory cudaMemcpyAsync returns once the driver has staged the bytes, so `src`
    // (which may be a temporary) can go away when this returns.
    MEDTL_CUDA_CHECK(cudaMemcpyAsync(out.device_raw_data(), src.device_raw_data(), nbytes, cudaMemcpyHostToDevice, detail::stream()));
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
    detail::DeviceGuard guard(gpu.device().index);
    MEDTL_CUDA_CHECK(cudaMemcpyAsync(out.device_raw_data(), gpu.device_raw_data(), nbytes, cudaMemcpyDeviceToHost, detail::stream()));
    MEDTL_CUDA_CHECK(cudaStreamSynchronize(detail::stream()));
  }
  return out;
}

void synchronize() { MEDTL_CUDA_CHECK(cudaDeviceSynchronize()); }

}  // namespace medtl::cuda
