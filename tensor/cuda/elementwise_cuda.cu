// Elementwise float32 kernels: one grid-stride kernel per op shape (unary, binary), the op a functor.
#include "tensor/cuda/elementwise_cuda.h"

#include "tensor/cuda/launch.h"
#include "tensor/cuda/tensor_cuda.h"

namespace medtl::cuda {
namespace {

struct AddOp {
  __device__ float operator()(float a, float b) const { return __fadd_rn(a, b); }
};
struct MulOp {
  __device__ float operator()(float a, float b) const { return __fmul_rn(a, b); }
};
// relu(NaN) = NaN: the NaN fails `x > 0` and is passed through instead of becoming 0 (as the CPU).
struct ReluOp {
  __device__ float operator()(float x) const { return x > 0.0f ? x : (x != x ? x : 0.0f); }
};

// The _rn intrinsics above are never fused into an FMA by nvcc, so a later edit that combines
// ops in one functor cannot silently change the bits against the CPU (which has no FMA here).
template <typename Op>
__global__ void unary_kernel(const float* __restrict__ x, float* __restrict__ out, int64_t n, Op op) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) out[i] = op(x[i]);
}

template <typename Op>
__global__ void binary_kernel(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ out,
                              int64_t n, Op op) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = op(a[i], b[i]);
}

template <typename Op>
Tensor unary(const char* name, const Tensor& x, Op op) {
  detail::check_float_gpu(name, "x", x);
  init();
  Tensor out = empty(x.shape(), DType::Float32, x.device());
  const int64_t n = x.numel();
  if (n == 0) return out;
  detail::DeviceGuard guard(x.device().index);
  unary_kernel<<<detail::grid_for(n), detail::kThreads, 0, detail::stream()>>>(x.device_data<float>(), out.device_data<float>(), n, op);
  MEDTL_CUDA_CHECK(cudaGetLastError());
  return out;
}

template <typename Op>
Tensor binary(const char* name, const Tensor& a, const Tensor& b, Op op) {
  detail::check_float_gpu(name, "the first operand", a);
  detail::check_float_gpu(name, "the second operand", b);
  detail::check_same_device(name, a, b);
  MEDTL_CHECK(a.shape() == b.shape(), name, ": shapes differ: ", shape_str(a.shape()), " vs ", shape_str(b.shape()),
              " (no broadcasting on the GPU yet)");
  init();
  Tensor out = empty(a.shape(), DType::Float32, a.device());
  const int64_t n = a.numel();
  if (n == 0) return out;
  detail::DeviceGuard guard(a.device().index);
  binary_kernel<<<detail::grid_for(n), detail::kThreads, 0, detail::stream()>>>(a.device_data<float>(), b.device_data<float>(),
                                                                               out.device_data<float>(), n, op);
  MEDTL_CUDA_CHECK(cudaGetLastError());
  return out;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary("cuda::add", a, b, AddOp{}); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary("cuda::mul", a, b, MulOp{}); }
Tensor relu(const Tensor& x) { return unary("cuda::relu", x, ReluOp{}); }
// relu_backward is defined by the generic engine (elementwise_ops_cuda.cu): it broadcasts and
// takes float64 too.

}  // namespace medtl::cuda
