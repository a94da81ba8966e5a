// Nearest-neighbour 2x upsampling kernels (tensor/cuda/upsample_cuda.h): one thread per output
// element in the forward, one per input pixel in the backward.
#include "tensor/cuda/upsample_cuda.h"

#include "tensor/cuda/launch.h"
#include "tensor/cuda/tensor_cuda.h"

namespace medtl::cuda {
namespace {

// x: (planes, H, W) -> y: (planes, 2H, 2W)
__global__ void upsample2x_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t planes, int64_t H,
                                  int64_t W) {
  const int64_t W2 = 2 * W, total = planes * 2 * H * W2;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int64_t w = i % W2, h = (i / W2) % (2 * H), plane = i / (2 * H * W2);
    y[i] = x[(plane * H + h / 2) * W + w / 2];
  }
}

// g: (planes, 2H, 2W) -> gx: (planes, H, W), PyTorch's CPU order of the four additions.
__global__ void upsample2x_backward_kernel(const float* __restrict__ g, float* __restrict__ gx, int64_t planes,
                                           int64_t H, int64_t W) {
  const int64_t W2 = 2 * W, total = planes * H * W;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int64_t w = i % W, h = (i / W) % H, plane = i / (H * W);
    const float* top = g + (plane * 2 * H + 2 * h) * W2 + 2 * w;
    const float* bottom = top + W2;
    gx[i] = __fadd_rn(__fadd_rn(__fadd_rn(top[0], top[1]), bottom[0]), bottom[1]);
  }
}

}  // namespace

Tensor upsample_nearest2x(const Tensor& x) {
  const char* op = "cuda::upsample_nearest2x";
  detail::check_float_gpu(op, "x", x);
  MEDTL_CHECK(x.dim() == 4, op, ": x must be (N, C, H, W), got ", shape_str(x.shape()));
  init();
  Tensor y = empty({x.size(0), x.size(1), 2 * x.size(2), 2 * x.size(3)}, DType::Float32, x.device());
  const int64_t n = y.numel();
  if (n == 0) return y;
  detail::DeviceGuard guard(x.device().index);
  upsample2x_kernel<<<detail::grid_for(n), detail::kThreads, 0, detail::stream()>>>(
      x.device_data<float>(), y.device_data<float>(), x.size(0) * x.size(1), x.size(2), x.size(3));
  MEDTL_CUDA_CHECK(cudaGetLastError());
  return y;
}

Tensor upsample_nearest2x_backward(const Tensor& grad_y) {
  const char* op = "cuda::upsample_nearest2x_backward";
  detail::check_float_gpu(op, "grad_y", grad_y);
  MEDTL_CHECK(grad_y.dim() == 4 && grad_y.size(2) % 2 == 0 && grad_y.size(3) % 2 == 0, op,
              ": grad_y must be (N, C, 2H, 2W), got ", shape_str(grad_y.shape()));
  init();
  const int64_t H = grad_y.size(2) / 2, W = grad_y.size(3) / 2;
  Tensor gx = empty({grad_y.size(0), grad_y.size(1), H, W}, DType::Float32, grad_y.device());
  const int64_t n = gx.numel();
  if (n == 0) return gx;
  detail::DeviceGuard guard(grad_y.device().index);
  upsample2x_backward_kernel<<<detail::grid_for(n), detail::kThreads, 0, detail::stream()>>>(
      grad_y.device_data<float>(), gx.device_data<float>(), grad_y.size(0) * grad_y.size(1), H, W);
  MEDTL_CUDA_CHECK(cudaGetLastError());
  return gx;
}

}  // namespace medtl::cuda
