// Tensors on CUDA GPUs: registering the caching allocator with Storage, and host <-> device copies.
// Plain C++: no CUDA headers. Defined only under --config=cuda (//tensor/cuda:cuda).
#pragma once

#include "tensor/tensor.h"

namespace medtl::cuda {

// Registers the caching allocator (tensor/cuda/memory.h) with Storage for DeviceType::CUDA, so
// that empty(shape, dtype, Device::cuda(i)) and friends work. Call once before making GPU
// tensors; calling again does nothing. (Explicit, not a static initialiser: the linker would drop
// that.) The functions of the backend call it themselves. Needs no GPU: allocating without one
// throws, saying why.
void init();

// A contiguous copy of a CPU tensor on GPU `device_index` (any dtype; strided input is made
// contiguous on the CPU first). Queued on the current stream; returns when the source has been
// read (pageable memory: the driver stages it), so the CPU tensor may change afterwards.
Tensor copy_to_device(const Tensor& cpu, int device_index = 0);

// A CPU copy of a contiguous GPU tensor. Waits for the current stream, so it also reports errors
// of kernels queued before it.
Tensor copy_to_host(const Tensor& gpu);

// Waits for all work queued on the current GPU; throws if any of it failed.
void synchronize();

}  // namespace medtl::cuda
