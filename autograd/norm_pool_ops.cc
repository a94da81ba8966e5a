// Differentiable batch norm, max pooling, global average pooling and dropout: each forward
// through its tensor/ kernel, its backward formula right beside it (see autograd/ops.cc).
#include "autograd/norm_pool_ops.h"

#include <cmath>

#include "autograd/ops.h"
#include "tensor/dispatch.h"
#include "tensor/ops/elementwise.h"
#include "tensor/parallel.h"

namespace medtl::ag {
namespace {

using Grads = std::vector<Tensor>;

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, bool training, double momentum, double eps) {
  // Running stats are buffers: updated in place by the kernel, never inputs of the node.
  ops::BatchNormForward f =
      ops::batch_norm_forward(x, weight, bias, running_mean, running_var, training, momentum, eps);
  // Inputs x, weight, bias (weight/bias may be undefined: then they get no gradient).
  return record("batch_norm", f.y, {x, weight, bias},
                [x = detach(x), weight = weight.defined() ? detach(weight) : Tensor(), mean = f.save_mean,
                 invstd = f.save_invstd, training](const Tensor& g, const NeedsGrad& n) {
                  ops::BatchNormBackward b = ops::batch_norm_backward(g, x, weight, mean, invstd, training);
                  return Grads{n[0] ? b.grad_x : Tensor(), n[1] ? b.grad_weight : Tensor(),
                               n[2] ? b.grad_bias : Tensor()};
                });
}

Tensor max_pool2d(const Tensor& x, const ops::MaxPool2dParams& params) {
  ops::MaxPool2dForward f = ops::max_pool2d_forward(x, params);
  // dx: grad_y gathered back to the elements the indices chose.
  return record("max_pool2d", f.y, {x},
                [indices = f.indices, shape = x.shape(), params](const Tensor& g, const NeedsGrad&) {
                  return Grads{ops::max_pool2d_backward(g, indices, shape, params)};
                });
}

Tensor adaptive_avg_pool2d_1x1(const Tensor& x) {
  MEDTL_CHECK(x.defined() && x.dim() == 4, "adaptive_avg_pool2d_1x1: x must be (N, C, H, W), got ",
              x.defined() ? shape_str(x.shape()) : "an undefined tensor");
  // The mean over H and W: its deterministic reduction and its backward (g / (H W) broadcast).
  // Fast enough not to need a kernel of its own: for (8, 2048, 7, 7) float32 the reduction reads
  // H, W as contiguous runs of 49 (no copy); measured ~0.25 ms forward and ~0.5 ms forward plus
  // backward on one thread.
  return mean(x, {2, 3}, /*keepdim=*/true);
}

namespace {

// dropout for tensors on a GPU, from generic ops: the same mask (the random numbers are drawn on
// the CPU, so they are the same bits as there, then uploaded) and the same products x * T(scale).
Tensor dropout_on_device(const Tensor& x, double p, uint64_t seed, uint64_t stream) {
  const Tensor u = uniform_keyed(x.shape(), seed, stream, 0.0, 1.0, x.dtype()).to(x.device());
  const Tensor dropped = ops::lt(u, p);  // Bool, on x's device
  const Tensor zero = zeros({}, x.dtype(), x.device());
  const double scale = p < 1.0 ? 1.0 / (1.0 - p) : 0.0;
  // mul(x, scale) rounds scale to x's dtype first, as the CPU loop's `px[i] * s` does.
  Tensor y = ops::where(dropped, zero, ops::mul(x, scale));
  return record("dropout", y, {x}, [dropped, zero, scale](const Tensor& g, const NeedsGrad&) {
    return Grads{ops::where(dropped, zero, ops::mul(g, scale))};
  });
}

}  // namespace

Tensor dropout(const Tensor& x, double p, bool training, uint64_t seed, uint64_t stream) {
  MEDTL_CHECK(p >= 0.0 && p <= 1.0, "dropout: probability has to be between 0 and 1, but got p = ", p);
  if (!training || p == 0.0) return x;
  MEDTL_CHECK(x.defined(), "dropout: x is undefined (default-constructed)");
  dispatch_float(x.dtype(), "dropout", [](auto) {});
  if (!x.device().is_cpu()) return dropout_on_device(x, p, seed, stream);
  // Element i (row-major) is dropped when uniform_keyed's element i is below p; kept elements
  // are scaled by 1 / (1 - p). p = 1 drops everything (the scale is never applied).
  const Tensor xc = x.contiguous();
  const Tensor u = uniform_keyed(x.shape(), seed, stream, 0.0, 1.0, x.dtype());
  Tensor y = empty(x.shape(), x.dtype());
  Tensor keep = empty(x.shape(), DType::Bool);
  const double scale = p < 1.0 ? 1.0 / (1.0 - p) : 0.0;
  dispatch_float(x.dtype(), "dropout", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const int64_t n = x.numel();
    if (n == 0) return;
    const T* px = xc.data<T>();
    const T* pu = u.data<T>();
    T* py = y.data<T>();
    bool* pk = keep.data<bool>();
    const T s = static_cast<T>(scale);
    parallel_for(0, n, 32768, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const bool k = !(static_cast<double>(pu[i]) < p);
        pk[i] = k;
        py[i] = k ? px[i] * s : T(0);
      }
    });
  });
  // dx = g * keep / (1 - p)
  return record("dropout", y, {x}, [keep, scale](const Tensor& g, const NeedsGrad&) {
    const Tensor gc = g.contiguous();
    Tensor dx = empty(gc.shape(), gc.dtype());
    dispatch_float(gc.dtype(), "dropout_backward", [&](auto tag) {
      using T = typename decltype(tag)::type;
      const int64_t n = gc.numel();
      if (n == 0) return;
      const T* pg = gc.data<T>();
      const bool* pk = keep.data<bool>();
      T* pd = dx.data<T>();
      const T s = static_cast<T>(scale);
      parallel_for(0, n, 32768, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) pd[i] = pk[i] ? pg[i] * s : T(0);
      });
    });
    return Grads{dx};
  });
}

}  // namespace medtl::ag
