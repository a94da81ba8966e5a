// Differentiable convolution and linear layers (formulas in autograd/conv_ops.cc).
#pragma once

#include "autograd/graph.h"
#include "tensor/ops/conv2d.h"

namespace medtl::ag {

// x: (N, C, H, W), w: (K, C, R, S), bias: (K,) or undefined -> (N, K, P, Q)
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const ops::Conv2dParams& params);

// x: (N, in), w: (out, in), bias: (out,) or undefined -> (N, out). x may have extra leading dims.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias);

}  // namespace medtl::ag
