// CPU nearest x2 upsampling, forward and backward (a gather), float32 and float64, NCHW; and the
// plain-loop oracles the tests compare them with.
//
// Both directions run in parallel over input rows (n, c, h): forward writes output rows 2h and
// 2h + 1 from input row h; backward computes input row h from output rows 2h and 2h + 1. Every
// output element is written by exactly one thread in a fixed order: no atomics, and results do
// not depend on the thread count.
#include <algorithm>
#include <vector>

#include "tensor/backend.h"
#include "tensor/dispatch.h"
#include "tensor/ops/upsample.h"
#include "tensor/parallel.h"

namespace medtl::ops {
namespace {

constexpr int64_t kGrain = 16384;  // output elements of work that make a thread worth starting

void check_nchw(const char* op, const char* name, const Tensor& t) {
  MEDTL_CHECK(t.defined(), op, ": ", name, " is an undefined tensor");
  MEDTL_CHECK(t.device().is_cpu(), op, ": ", name, " must be on the CPU, got ", t.str());
  MEDTL_CHECK(t.dim() == 4, op, ": ", name, " must be (N, C, H, W), got shape ", shape_str(t.shape()));
  dispatch_float(t.dtype(), op, [](auto) {});
}

}  // namespace

Tensor upsample_nearest2x(const Tensor& x_in) {
  if (DeviceBackend* gpu = backend_for("upsample_nearest2x", {&x_in})) return gpu->upsample_nearest2x(x_in);
  check_nchw("upsample_nearest2x", "x", x_in);
  const Tensor x = x_in.contiguous();
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  Tensor y = empty({N, C, 2 * H, 2 * W}, x.dtype());
  if (y.numel() == 0) return y;
  dispatch_float(x.dtype(), "upsample_nearest2x", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();
    T* py = y.data<T>();
    const int64_t rows = N * C * H;  // input rows; input row r feeds output rows 2r and 2r + 1
    parallel_for(0, rows, std::max<int64_t>(1, kGrain / (4 * W)), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const T* __restrict src = px + r * W;
        T* __restrict top = py + r * 4 * W;  // output row 2r (of width 2W)
        for (int64_t w = 0; w < W; ++w) {
          top[2 * w] = src[w];
          top[2 * w + 1] = src[w];
        }
        T* __restrict bottom = top + 2 * W;
        for (int64_t w = 0; w < 2 * W; ++w) bottom[w] = top[w];
      }
    });
  });
  return y;
}

Tensor upsample_nearest2x_backward(const Tensor& grad_y_in) {
  if (DeviceBackend* gpu = backend_for("upsample_nearest2x_backward", {&grad_y_in}))
    return gpu->upsample_nearest2x_backward(grad_y_in);
  check_nchw("upsample_nearest2x_backward", "grad_y", grad_y_in);
  MEDTL_CHECK(grad_y_in.size(2) % 2 == 0 && grad_y_in.size(3) % 2 == 0,
              "upsample_nearest2x_backward: grad_y must have even H and W (it is the gradient of a x2 upsample), "
              "got shape ", shape_str(grad_y_in.shape()));
  const Tensor g = grad_y_in.contiguous();
  const int64_t N = g.size(0), C = g.size(1), H = g.size(2) / 2, W = g.size(3) / 2;
  Tensor dx = empty({N, C, H, W}, g.dtype());
  if (dx.numel() == 0) return dx;
  dispatch_float(g.dtype(), "upsample_nearest2x_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pg = g.data<T>();
    T* pdx = dx.data<T>();
    const int64_t rows = N * C * H;
    parallel_for(0, rows, std::max<int64_t>(1, kGrain / (4 * W)), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const T* __restrict top = pg + r * 4 * W;
        const T* __restrict bottom = top + 2 * W;
        T* __restrict out = pdx + r * W;
        for (int64_t w = 0; w < W; ++w) out[w] = ((top[2 * w] + top[2 * w + 1]) + bottom[2 * w]) + bottom[2 * w + 1];
      }
    });
  });
  return dx;
}

// ---------------------------------------------------------------- oracles

Tensor upsample_nearest2x_reference(const Tensor& x) {
  check_nchw("upsample_nearest2x_reference", "x", x);
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  std::vector<double> out;
  out.reserve(static_cast<size_t>(N * C * 4 * H * W));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t h = 0; h < 2 * H; ++h)
        for (int64_t w = 0; w < 2 * W; ++w) out.push_back(x.at({n, c, h / 2, w / 2}));
  return from_vector<double>(out, {N, C, 2 * H, 2 * W}).to(x.dtype());
}

Tensor upsample_nearest2x_backward_reference(const Tensor& grad_y) {
  check_nchw("upsample_nearest2x_backward_reference", "grad_y", grad_y);
  const int64_t N = grad_y.size(0), C = grad_y.size(1), H = grad_y.size(2) / 2, W = grad_y.size(3) / 2;
  // Scatter form (the definition): every output pixel adds its gradient to the pixel it copied.
  std::vector<double> dx(static_cast<size_t>(N * C * H * W), 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t h = 0; h < 2 * H; ++h)
        for (int64_t w = 0; w < 2 * W; ++w) dx[((n * C + c) * H + h / 2) * W + w / 2] += grad_y.at({n, c, h, w});
  return from_vector<double>(dx, {N, C, H, W}).to(grad_y.dtype());
}

}  // namespace medtl::ops
