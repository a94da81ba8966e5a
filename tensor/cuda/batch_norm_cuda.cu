// Batch-norm kernels (tensor/cuda/batch_norm_cuda.h): one block per channel. Each thread sums a
// fixed strided subset of the channel in double, a shared-memory tree folds the 256 partials, and
// every thread then applies the per-channel scale to its elements. Mirrors batch_norm_cpu.cc; the
// _rn intrinsics keep nvcc from fusing multiply-adds that the CPU build rounds twice.
#include "tensor/cuda/batch_norm_cuda.h"

#include "tensor/cuda/launch.h"
#include "tensor/cuda/tensor_cuda.h"

namespace medtl::cuda {
namespace {

constexpr int kBlock = 256;  // a power of two: the tree halves it
constexpr int64_t kMaxGrid = 65535;

// Element j (0 <= j < N * S, in (n, s) order) of channel c of x seen as (N, C, S).
__device__ __forceinline__ int64_t at(int64_t j, int64_t c, int64_t C, int64_t S) {
  const int64_t n = j / S;
  return (n * C + c) * S + (j - n * S);
}

// The block-wide sum of each thread's `acc`, returned to every thread. Fixed tree: the result
// depends on the per-thread values only.
__device__ double block_sum(double acc, double* red) {
  red[threadIdx.x] = acc;
  __syncthreads();
  for (int width = kBlock / 2; width > 0; width /= 2) {
    if (threadIdx.x < width) red[threadIdx.x] += red[threadIdx.x + width];
    __syncthreads();
  }
  const double total = red[0];
  __syncthreads();  // everyone has read red[0] before the next call overwrites it
  return total;
}

__global__ void bn_forward_kernel(const float* __restrict__ x, float* __restrict__ y, const float* __restrict__ w,
                                  const float* __restrict__ b, float* __restrict__ rm, float* __restrict__ rv,
                                  float* __restrict__ save_mean, float* __restrict__ save_invstd, int64_t N,
                                  int64_t C, int64_t S, bool training, double momentum, double eps) {
  __shared__ double red[kBlock];
  const int64_t M = N * S;
  for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
    double mean, invstd;
    if (training) {
      double acc = 0.0;
      for (int64_t j = threadIdx.x; j < M; j += kBlock) acc += static_cast<double>(x[at(j, c, C, S)]);
      mean = __ddiv_rn(block_sum(acc, red), static_cast<double>(M));
      acc = 0.0;
      for (int64_t j = threadIdx.x; j < M; j += kBlock) {
        const double d = __dsub_rn(static_cast<double>(x[at(j, c, C, S)]), mean);
        acc = __dadd_rn(acc, __dmul_rn(d, d));
      }
      const double ssd = block_sum(acc, red);
      invstd = __ddiv_rn(1.0, __dsqrt_rn(__dadd_rn(__ddiv_rn(ssd, static_cast<double>(M)), eps)));
      if (threadIdx.x == 0 && rm != nullptr) {
        const double unbiased = __ddiv_rn(ssd, static_cast<double>(M) - 1.0);
        rm[c] = __double2float_rn(__dadd_rn(__dmul_rn(1.0 - momentum, static_cast<double>(rm[c])), __dmul_rn(momentum, mean)));
        rv[c] = __double2float_rn(__dadd_rn(__dmul_rn(1.0 - momentum, static_cast<double>(rv[c])), __dmul_rn(momentum, unbiased)));
      }
    } else {
      mean = static_cast<double>(rm[c]);
      invstd = __ddiv_rn(1.0, __dsqrt_rn(__dadd_rn(static_cast<double>(rv[c]), eps)));
    }
    if (threadIdx.x == 0) {
      save_mean[c] = __double2float_rn(mean);
      save_invstd[c] = __double2float_rn(invstd);
    }
    const double scale_d = __dmul_rn(w ? static_cast<double>(w[c]) : 1.0, invstd);
    const float scale = __double2float_rn(scale_d);
    const float shift = __double2float_rn(__dsub_rn(b ? static_cast<double>(b[c]) : 0.0, __dmul_rn(mean, scale_d)));
    for (int64_t j = threadIdx.x; j < M; j += kBlock) {
      const int64_t i = at(j, c, C, S);
      y[i] = __fadd_rn(__fmul_rn(x[i], scale), shift);
    }
  }
}

__global__ void bn_backward_kernel(const float* __restrict__ g, const float* __restrict__ x,
                                   const float* __restrict__ w, const float* __restrict__ save_mean,
                                   const float* __restrict__ save_invstd, float* __restrict__ gx,
                                   float* __restrict__ gw, float* __restrict__ gb, int64_t N, int64_t C, int64_t S,
                                   bool training) {
  __shared__ double red[kBlock];
  const int64_t M = N * S;
  for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
    const double mean = static_cast<double>(save_mean[c]);
    const double invstd = static_cast<double>(save_invstd[c]);
    const double wc = w ? static_cast<double>(w[c]) : 1.0;
    // sum(g) and sum(g * (x - mean))
    double acc_g = 0.0, acc_gx = 0.0;
    for (int64_t j = threadIdx.x; j < M; j += kBlock) {
      const int64_t i = at(j, c, C, S);
      const double gi = static_cast<double>(g[i]);
      acc_g = __dadd_rn(acc_g, gi);
      acc_gx = __dadd_rn(acc_gx, __dmul_rn(gi, __dsub_rn(static_cast<double>(x[i]), mean)));
    }
    const double sum_g = block_sum(acc_g, red);
    const double sum_gx = block_sum(acc_gx, red);
    if (threadIdx.x == 0) {
      gb[c] = __double2float_rn(sum_g);
      gw[c] = __double2float_rn(__dmul_rn(sum_gx, invstd));
    }
    const float a = __double2float_rn(__dmul_rn(wc, invstd));  // dy/dx with the statistics held fixed
    if (training) {
      // grad_x = a * (g - mean(g) - (x - mean) * k), k = invstd^2 * mean(g * (x - mean))
      const float mean_g = __double2float_rn(__ddiv_rn(sum_g, static_cast<double>(M)));
      const float k = __double2float_rn(__ddiv_rn(__dmul_rn(__dmul_rn(invstd, invstd), sum_gx), static_cast<double>(M)));
      const float mean_t = __double2float_rn(mean);
      for (int64_t j = threadIdx.x; j < M; j += kBlock) {
        const int64_t i = at(j, c, C, S);
        gx[i] = __fmul_rn(a, __fsub_rn(__fsub_rn(g[i], mean_g), __fmul_rn(__fsub_rn(x[i], mean_t), k)));
      }
    } else {
      for (int64_t j = threadIdx.x; j < M; j += kBlock) {
        const int64_t i = at(j, c, C, S);
        gx[i] = __fmul_rn(g[i], a);
      }
    }
  }
}

// x: (N, C, H, W) or (N, C) -> (N, C, S)
void layout(const char* op, const Tensor& x, int64_t* N, int64_t* C, int64_t* S) {
  MEDTL_CHECK(x.dim() == 2 || x.dim() == 4, op, ": expected x: (N, C, H, W) or (N, C), got ", shape_str(x.shape()));
  *N = x.size(0);
  *C = x.size(1);
  *S = x.dim() == 4 ? x.size(2) * x.size(3) : 1;
}

// An optional per-channel operand: undefined, or (C,) float32 on x's GPU.
const float* channel(const char* op, const char* name, const Tensor& t, const Tensor& x, int64_t C) {
  if (!t.defined()) return nullptr;
  detail::check_float_gpu(op, name, t);
  detail::check_same_device(op, x, t);
  MEDTL_CHECK(t.shape() == Shape({C}), op, ": ", name, " must be (C,) = (", C, ",), got ", shape_str(t.shape()));
  return t.device_data<float>();
}

unsigned grid(int64_t C) { return static_cast<unsigned>(std::max<int64_t>(1, std::min(C, kMaxGrid))); }

}  // namespace

ops::BatchNormForward batch_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                         const Tensor& running_mean, const Tensor& running_var, bool training,
                                         double momentum, double eps) {
  const char* op = "cuda::batch_norm_forward";
  detail::check_float_gpu(op, "x", x);
  int64_t N, C, S;
  layout(op, x, &N, &C, &S);
  const float* w = channel(op, "weight", weight, x, C);
  const float* b = channel(op, "bias", bias, x, C);
  float* rm = const_cast<float*>(channel(op, "running_mean", running_mean, x, C));
  float* rv = const_cast<float*>(channel(op, "running_var", running_var, x, C));
  MEDTL_CHECK((rm == nullptr) == (rv == nullptr), op, ": running_mean and running_var must be given both or neither");
  MEDTL_CHECK(training || rm != nullptr, op, ": eval mode needs the running statistics");
  MEDTL_CHECK(!training || N * S != 1, op, ": expected more than 1 value per channel when training, got x ",
              shape_str(x.shape()), "; batch statistics need N * H * W >= 2");
  init();
  ops::BatchNormForward r;
  r.y = empty(x.shape(), DType::Float32, x.device());
  r.save_mean = empty({C}, DType::Float32, x.device());
  r.save_invstd = empty({C}, DType::Float32, x.device());
  if (C == 0) return r;
  detail::DeviceGuard guard(x.device().index);
  if (x.numel() == 0) {
    // As the CPU (and PyTorch): zero saved statistics, running statistics left alone.
    MEDTL_CUDA_CHECK(cudaMemsetAsync(r.save_mean.device_raw_data(), 0, static_cast<size_t>(C) * sizeof(float), detail::stream()));
    MEDTL_CUDA_CHECK(cudaMemsetAsync(r.save_invstd.device_raw_data(), 0, static_cast<size_t>(C) * sizeof(float), detail::stream()));
    return r;
  }
  bn_forward_kernel<<<grid(C), kBlock, 0, detail::stream()>>>(x.device_data<float>(), r.y.device_data<float>(), w, b, rm, rv,
                                                              r.save_mean.device_data<float>(), r.save_invstd.device_data<float>(),
                                                              N, C, S, training, momentum, eps);
  MEDTL_CUDA_CHECK(cudaGetLastError());
  return r;
}

ops::BatchNormBackward batch_norm_backward(const Tensor& grad_y, const Tensor& x, const Tensor& weight,
                                           const Tensor& save_mean, const Tensor& save_invstd, bool training) {
  const char* op = "cuda::batch_norm_backward";
  detail::check_float_gpu(op, "x", x);
  detail::check_float_gpu(op, "grad_y", grad_y);
  detail::check_same_device(op, x, grad_y);
  MEDTL_CHECK(grad_y.shape() == x.shape(), op, ": grad_y must be like x ", shape_str(x.shape()), ", got ",
              shape_str(grad_y.shape()));
  int64_t N, C, S;
  layout(op, x, &N, &C, &S);
  const float* w = channel(op, "weight", weight, x, C);
  const float* mean = channel(op, "save_mean", save_mean, x, C);
  const float* invstd = channel(op, "save_invstd", save_invstd, x, C);
  MEDTL_CHECK(mean != nullptr && invstd != nullptr, op, ": save_mean and save_invstd from the forward are needed");
  init();
  ops::BatchNormBackward r;
  r.grad_x = empty(x.shape(), DType::Float32, x.device());
  r.grad_weight = empty({C}, DType::Float32, x.device());
  r.grad_bias = empty({C}, DType::Float32, x.device());
  if (C == 0) return r;
  detail::DeviceGuard guard(x.device().index);
  // An empty batch still runs: every block writes zero sums and no grad_x elements.
  bn_backward_kernel<<<grid(C), kBlock, 0, detail::stream()>>>(grad_y.device_data<float>(), x.device_data<float>(), w, mean, invstd,
                                                               r.grad_x.device_data<float>(), r.grad_weight.device_data<float>(),
                                                               r.grad_bias.device_data<float>(), N, C, S, training);
  MEDTL_CUDA_CHECK(cudaGetLastError());
  return r;
}

}  // namespace medtl::cuda
