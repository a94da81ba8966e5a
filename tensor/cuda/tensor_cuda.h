// Tensors on CUDA GPUs: the device allocator, host <-> device copies, and a first kernel.
// Plain C++: no CUDA headers. Defined only under --config=cuda (//tensor/cuda:cuda).
#pragma once

#include "tensor/tensor.h"

namespace medtl::cuda {

// Registers the cudaMalloc/cudaFree allocator with Storage for DeviceType::CUDA, so that
// empty(shape, dtype, Device::cuda(i)) and friends work. Call once before making GPU tensors;
// calling again does nothing. (Explicit, not a static initialiser: the linker would drop that.)
// The functions below call it themselves. Needs no GPU: allocating without one throws.
void init();

// A contiguous copy of a CPU tensor on GPU `device_index` (any dtype; strided input is made
// contiguous on the CPU first).
Tensor copy_to_device(const Tensor& cpu, int device_index = 0);

// A CPU copy of a contiguous GPU tensor.
Tensor copy_to_host(const Tensor& gpu);

// a + b elementwise for float32 GPU tensors of the same shape, both contiguous and on the same GPU.
Tensor add(const Tensor& a, const Tensor& b);

// Waits for all work queued on the current GPU; throws if any of it failed.
void synchronize();

}  // namespace medtl::cuda
