// Shared by the backend's .cu files: the device guard, the current stream as cudaStream_t, launch
// sizes and operand checks. Includes CUDA headers: only under --config=cuda.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>

#include "tensor/cuda/cuda_check.h"
#include "tensor/cuda/memory.h"
#include "tensor/tensor.h"

namespace medtl::cuda::detail {

// Makes `index` the current GPU for its lifetime, then restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int index) {
    MEDTL_CUDA_CHECK(cudaGetDevice(&previous_));
    changed_ = index != previous_;
    if (changed_) MEDTL_CUDA_CHECK(cudaSetDevice(index));
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

inline cudaStream_t stream() { return static_cast<cudaStream_t>(current_stream()); }

constexpr int kThreads = 256;

// Blocks for a grid-stride loop over n elements: capped, so that the grid (and with it the
// order of any per-block work) depends on n alone, never on the GPU model.
inline unsigned grid_for(int64_t n) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads, 65535)));
}

// Throws unless t is a defined, contiguous float32 tensor on a GPU. `op` and `what` name the call
// and the operand in the message.
inline void check_float_gpu(const char* op, const char* what, const Tensor& t) {
  MEDTL_CHECK(t.defined(), op, ": ", what, " is undefined");
  MEDTL_CHECK(t.device().is_cuda(), op, ": ", what, " must be on a GPU, got ", t.str(),
              "; move it with cuda::copy_to_device");
  MEDTL_CHECK(t.dtype() == DType::Float32, op, ": ", what, " must be float32 (the only GPU dtype so far), got ",
              t.str());
  MEDTL_CHECK(t.is_contiguous(), op, ": ", what, " must be contiguous, got strides ", shape_str(t.strides()),
              "; call .contiguous() on the CPU before the copy");
}

inline void check_same_device(const char* op, const Tensor& a, const Tensor& b) {
  MEDTL_CHECK(a.device() == b.device(), op, ": operands on different devices: ", a.str(), " and ", b.str());
}

}  // namespace medtl::cuda::detail
