// Differentiable conv2d and linear: forward through tensor/ops kernels, backward formula beside it.
//
// A node saves only what its backward can need: conv2d keeps x only when w wants a gradient and w
// only when x does, so a frozen layer or a network's input image does not pin extra activations.
#include "autograd/conv_ops.h"

#include "tensor/ops/elementwise.h"
#include "tensor/ops/matmul.h"
#include "tensor/ops/reduce.h"

namespace medtl::ag {
namespace {

using Grads = std::vector<Tensor>;

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const ops::Conv2dParams& params) {
  // y = conv(x, w) + bias; dx = conv_transpose(g, w), dw = corr(x, g), dbias = sum_{N,P,Q} g
  Tensor y = ops::conv2d_forward(x, w, bias, params);
  const bool keep_x = grad_enabled() && requires_grad(w);
  const bool keep_w = grad_enabled() && requires_grad(x);
  return record("conv2d", y, {x, w, bias},
                [x = keep_x ? detach(x) : Tensor(), w = keep_w ? detach(w) : Tensor(), x_shape = x.shape(),
                 w_shape = w.shape(), params](const Tensor& g, const NeedsGrad& n) {
                  Tensor dx, dw, db;
                  if (n[0]) dx = ops::conv2d_backward_input(g, w, x_shape, params);
                  if (n[1]) dw = ops::conv2d_backward_weight(g, x, w_shape, params);
                  if (n[2]) db = ops::conv2d_backward_bias(g);
                  return Grads{dx, dw, db};
                });
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  MEDTL_CHECK(x.defined() && w.defined(), "linear: x or w is undefined (default-constructed)");
  MEDTL_CHECK(w.dim() == 2, "linear: w must be 2-D (out, in), got shape ", shape_str(w.shape()));
  MEDTL_CHECK(x.dim() >= 1 && x.size(-1) == w.size(1), "linear: x ", shape_str(x.shape()), " must end in in=",
              w.size(1), " features to match w ", shape_str(w.shape()), " (out, in)");
  MEDTL_CHECK(!bias.defined() || (bias.dim() == 1 && bias.size(0) == w.size(0)), "linear: bias must have shape (",
              w.size(0), ") for w ", shape_str(w.shape()), ", got ", shape_str(bias.shape()));
  // y = x @ w^T + bias; w^T is a transposed view, which matmul hands to GEMM without a copy.
  Tensor y = ops::matmul(x, w.transpose(0, 1));  // (..., out)
  if (bias.defined()) ops::add_(y, bias);         // y is fresh: add in place, bias broadcasting over rows
  const bool keep_x = grad_enabled() && requires_grad(w);
  const bool keep_w = grad_enabled() && requires_grad(x);
  return record("linear", y, {x, w, bias},
                [x = keep_x ? detach(x) : Tensor(), w = keep_w ? detach(w) : Tensor(), x_shape = x.shape(),
                 out_features = w.size(0), in_features = w.size(1)](const Tensor& g, const NeedsGrad& n) {
                  // Rows: every leading dim of x folded into one (1 for a 1-D x).
                  const int64_t rows = shape_numel(Shape(x_shape.begin(), x_shape.end() - 1));
                  Tensor dx, dw, db;
                  if (n[0]) dx = ops::matmul(g, w);  // (..., out) @ (out, in) -> (..., in)
                  if (n[1] || n[2]) {
                    const Tensor g2 = g.reshape({rows, out_features});  // (rows, out)
                    if (n[1]) dw = ops::matmul(g2.transpose(0, 1), x.reshape({rows, in_features}));  // (out, in)
                    if (n[2]) db = ops::sum(g2, {0});                                               // (out,)
                  }
                  return Grads{dx, dw, db};
                });
}

}  // namespace medtl::ag
