// Max-pooling kernels (tensor/cuda/pooling_cuda.h): one thread per output in the forward, one
// thread per input pixel in the backward (a gather over the windows that cover it).
#include "tensor/cuda/pooling_cuda.h"

#include "tensor/cuda/launch.h"
#include "tensor/cuda/tensor_cuda.h"

namespace medtl::cuda {
namespace {

struct Geometry {
  int64_t planes, H, W, P, Q, kh, kw, sh, sw, ph, pw;
};

// The row-major scan of the CPU kernel: start at -inf with the window's first valid element, take
// v if v > best, or if v is the first NaN. Padding is never visited, so it never wins.
__global__ void max_pool_forward_kernel(const float* __restrict__ x, float* __restrict__ y,
                                        int64_t* __restrict__ indices, Geometry g) {
  const int64_t total = g.planes * g.P * g.Q;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < total; o += stride) {
    const int64_t q = o % g.Q, p = (o / g.Q) % g.P, plane = o / (g.P * g.Q);
    const int64_t h0 = max(p * g.sh - g.ph, int64_t{0}), h1 = min(p * g.sh - g.ph + g.kh, g.H);
    const int64_t w0 = max(q * g.sw - g.pw, int64_t{0}), w1 = min(q * g.sw - g.pw + g.kw, g.W);
    const float* xp = x + plane * g.H * g.W;
    float best = -INFINITY;
    int64_t arg = h0 * g.W + w0;
    for (int64_t h = h0; h < h1; ++h) {
      for (int64_t w = w0; w < w1; ++w) {
        const float v = xp[h * g.W + w];
        if (v > best || (v != v && best == best)) {
          best = v;
          arg = h * g.W + w;
        }
      }
    }
    y[o] = best;
    indices[o] = arg;
  }
}

// grad_x[h, w] = the sum of grad_y[p, q] over the outputs whose window covers (h, w) and whose index
// names it, added in (p, q) row-major order from +0, as the CPU's gather.
__global__ void max_pool_backward_kernel(const float* __restrict__ gy, const int64_t* __restrict__ indices,
                                         float* __restrict__ gx, Geometry g) {
  const int64_t total = g.planes * g.H * g.W;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int64_t w = i % g.W, h = (i / g.W) % g.H, plane = i / (g.H * g.W);
    // Outputs p with p * sh - ph <= h <= p * sh - ph + kh - 1 (likewise q).
    const int64_t first_p = h + g.ph - g.kh + 1, first_q = w + g.pw - g.kw + 1;
    const int64_t p0 = first_p <= 0 ? 0 : (first_p + g.sh - 1) / g.sh, p1 = min(g.P, (h + g.ph) / g.sh + 1);
    const int64_t q0 = first_q <= 0 ? 0 : (first_q + g.sw - 1) / g.sw, q1 = min(g.Q, (w + g.pw) / g.sw + 1);
    const int64_t self = h * g.W + w;
    const float* gp = gy + plane * g.P * g.Q;
    const int64_t* ip = indices + plane * g.P * g.Q;
    float sum = 0.0f;
    for (int64_t p = p0; p < p1; ++p)
      for (int64_t q = q0; q < q1; ++q)
        if (ip[p * g.Q + q] == self) sum = __fadd_rn(sum, gp[p * g.Q + q]);
    gx[i] = sum;
  }
}

// As the CPU kernel's checks: PyTorch's limits on the parameters, and a window must fit.
Geometry geometry(const char* op, const Shape& xs, const ops::MaxPool2dParams& p) {
  MEDTL_CHECK(xs.size() == 4, op, ": x must be (N, C, H, W), got shape ", shape_str(xs));
  MEDTL_CHECK(p.kernel_h > 0 && p.kernel_w > 0 && p.stride_h > 0 && p.stride_w > 0 && p.pad_h >= 0 && p.pad_w >= 0,
              op, ": kernel and stride must be positive and padding >= 0, got kernel (", p.kernel_h, ", ", p.kernel_w,
              "), stride (", p.stride_h, ", ", p.stride_w, "), pad (", p.pad_h, ", ", p.pad_w, ")");
  MEDTL_CHECK(p.pad_h <= p.kernel_h / 2 && p.pad_w <= p.kernel_w / 2, op,
              ": pad should be at most half of kernel size, got pad (", p.pad_h, ", ", p.pad_w, ") for kernel (",
              p.kernel_h, ", ", p.kernel_w, ")");
  const int64_t span_h = xs[2] + 2 * p.pad_h - p.kernel_h, span_w = xs[3] + 2 * p.pad_w - p.kernel_w;
  MEDTL_CHECK(span_h >= 0 && span_w >= 0, op, ": output size is too small: input ", shape_str(xs),
              " with padding (", p.pad_h, ", ", p.pad_w, ") is smaller than the kernel (", p.kernel_h, ", ",
              p.kernel_w, ")");
  return Geometry{xs[0] * xs[1], xs[2], xs[3], span_h / p.stride_h + 1, span_w / p.stride_w + 1,
                  p.kernel_h, p.kernel_w, p.stride_h, p.stride_w, p.pad_h, p.pad_w};
}

}  // namespace

ops::MaxPool2dForward max_pool2d_forward(const Tensor& x, const ops::MaxPool2dParams& params) {
  const char* op = "cuda::max_pool2d_forward";
  detail::check_float_gpu(op, "x", x);
  const Geometry g = geometry(op, x.shape(), params);
  init();
  const Shape ys{x.size(0), x.size(1), g.P, g.Q};
  ops::MaxPool2dForward r;
  r.y = empty(ys, DType::Float32, x.device());
  r.indices = empty(ys, DType::Int64, x.device());
  const int64_t n = r.y.numel();
  if (n == 0) return r;
  detail::DeviceGuard guard(x.device().index);
  max_pool_forward_kernel<<<detail::grid_for(n), detail::kThreads, 0, detail::stream()>>>(
      x.device_data<float>(), r.y.device_data<float>(), r.indices.device_data<int64_t>(), g);
  MEDTL_CUDA_CHECK(cudaGetLastError());
  return r;
}

Tensor max_pool2d_backward(const Tensor& grad_y, const Tensor& indices, const Shape& x_shape,
                           const ops::MaxPool2dParams& params) {
  const char* op = "cuda::max_pool2d_backward";
  detail::check_float_gpu(op, "grad_y", grad_y);
  MEDTL_CHECK(indices.defined() && indices.device() == grad_y.device() && indices.dtype() == DType::Int64 &&
                  indices.is_contiguous(),
              op, ": indices must be a contiguous Int64 tensor on ", grad_y.device().str(), ", got ",
              indices.defined() ? indices.str() : std::string("an undefined tensor"));
  const Geometry g = geometry(op, x_shape, params);
  const Shape ys{x_shape[0], x_shape[1], g.P, g.Q};
  MEDTL_CHECK(grad_y.shape() == ys && indices.shape() == ys, op, ": grad_y and indices must be ", shape_str(ys),
              " for x ", shape_str(x_shape), ", got ", shape_str(grad_y.shape()), " and ", shape_str(indices.shape()));
  init();
  Tensor gx = empty(x_shape, DType::Float32, grad_y.device());
  const int64_t n = gx.numel();
  if (n == 0) return gx;
  detail::DeviceGuard guard(grad_y.device().index);
  max_pool_backward_kernel<<<detail::grid_for(n), detail::kThreads, 0, detail::stream()>>>(
      grad_y.device_data<float>(), indices.device_data<int64_t>(), gx.device_data<float>(), g);
  MEDTL_CUDA_CHECK(cudaGetLastError());
  return gx;
}

}  // namespace medtl::cuda
