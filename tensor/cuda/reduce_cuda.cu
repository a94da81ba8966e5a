// Fixed-tree sum kernels (tensor/cuda/reduce_cuda.h): one block per output, each thread a strided
// serial sum in double, then a shared-memory tree. Which thread adds which element, and in which
// order, follows from the shape alone; no float atomics anywhere.
#include "tensor/cuda/reduce_cuda.h"

#include "tensor/cuda/launch.h"
#include "tensor/cuda/tensor_cuda.h"

namespace medtl::cuda {
namespace {

constexpr int kBlock = 256;  // threads per block and leaves of the tree; a power of two
constexpr int64_t kMaxGrid = 65535;

// Output o sums `count` elements (the last output `last_count`): element j of output o lives at
// x[o * out_stride + (j / inner) * outer_stride + j % inner]. Row sums: inner = count. Channel
// sums of (N, C, M): out_stride = M, inner = M, outer_stride = C * M, count = N * M.
template <typename In, typename Out>
__global__ void block_sum_kernel(const In* __restrict__ x, Out* __restrict__ out, int64_t outputs, int64_t count,
                                 int64_t last_count, int64_t inner, int64_t outer_stride, int64_t out_stride) {
  __shared__ double partial[kBlock];
  for (int64_t o = blockIdx.x; o < outputs; o += gridDim.x) {
    const int64_t n = o == outputs - 1 ? last_count : count;
    const In* base = x + o * out_stride;
    double acc = 0.0;
    for (int64_t j = threadIdx.x; j < n; j += kBlock) {
      const int64_t q = j / inner, r = j - q * inner;
      acc += static_cast<double>(base[q * outer_stride + r]);
    }
    partial[threadIdx.x] = acc;
    __syncthreads();
    for (int width = kBlock / 2; width > 0; width /= 2) {
      if (threadIdx.x < width) partial[threadIdx.x] += partial[threadIdx.x + width];
      __syncthreads();
    }
    if (threadIdx.x == 0) out[o] = static_cast<Out>(partial[0]);
    __syncthreads();  // partial[] is reused by this block's next output
  }
}

template <typename In, typename Out>
void launch(const In* x, Out* out, int64_t outputs, int64_t count, int64_t last_count, int64_t inner,
            int64_t outer_stride, int64_t out_stride) {
  // The grid size changes which block computes an output, never how that output is summed.
  const unsigned grid = static_cast<unsigned>(std::min(outputs, kMaxGrid));
  block_sum_kernel<In, Out><<<grid, kBlock, 0, detail::stream()>>>(x, out, outputs, count, last_count,
                                                                    std::max<int64_t>(inner, 1), outer_stride,
                                                                    out_stride);
  MEDTL_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

Tensor sum(const Tensor& x) {
  detail::check_float_gpu("cuda::sum", "x", x);
  init();
  Tensor out = empty({}, DType::Float32, x.device());
  detail::DeviceGuard guard(x.device().index);
  const int64_t n = x.numel();
  // Pass 1: fixed chunks of kChunk elements, one double partial each; pass 2: one block sums the
  // partials. The chunk size is a constant, so the grouping depends on n only.
  constexpr int64_t kChunk = int64_t{1} << 16;
  if (n <= kChunk) {
    launch<float, float>(x.device_data<float>(), out.device_data<float>(), 1, n, n, std::max<int64_t>(n, 1), 0, 0);
    return out;
  }
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  Tensor partials = empty({chunks}, DType::Float64, x.device());
  launch<float, double>(x.device_data<float>(), partials.device_data<double>(), chunks, kChunk, n - (chunks - 1) * kChunk, kChunk,
                        0, kChunk);
  launch<double, float>(partials.device_data<double>(), out.device_data<float>(), 1, chunks, chunks, chunks, 0, 0);
  return out;  // `partials` goes back to this stream's free list: stream order keeps it valid
}

Tensor sum_rows(const Tensor& x) {
  detail::check_float_gpu("cuda::sum_rows", "x", x);
  MEDTL_CHECK(x.dim() == 2, "cuda::sum_rows: expected x: (A, R), got ", shape_str(x.shape()));
  init();
  const int64_t rows = x.size(0), len = x.size(1);
  Tensor out = empty({rows}, DType::Float32, x.device());
  if (rows == 0) return out;
  detail::DeviceGuard guard(x.device().index);
  launch<float, float>(x.device_data<float>(), out.device_data<float>(), rows, len, len, std::max<int64_t>(len, 1), 0, len);
  return out;
}

Tensor sum_channels(const Tensor& x) {
  detail::check_float_gpu("cuda::sum_channels", "x", x);
  MEDTL_CHECK(x.dim() == 4, "cuda::sum_channels: expected x: (N, C, H, W), got ", shape_str(x.shape()));
  init();
  const int64_t n = x.size(0), c = x.size(1), m = x.size(2) * x.size(3);
  Tensor out = empty({c}, DType::Float32, x.device());
  if (c == 0) return out;
  detail::DeviceGuard guard(x.device().index);
  launch<float, float>(x.device_data<float>(), out.device_data<float>(), c, n * m, n * m, std::max<int64_t>(m, 1), c * m, m);
  return out;
}

}  // namespace medtl::cuda
