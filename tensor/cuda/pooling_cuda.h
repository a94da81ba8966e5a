// Max pooling of float32 NCHW GPU tensors with the CPU backend's contracts (tensor/ops/pooling.h):
// forward with indices, and backward as a gather (each input pixel sums its own gradient terms in a
// fixed order; no atomics). Both are bit-identical to the CPU. Plain C++ header; defined only
// under --config=cuda.
#pragma once

#include "tensor/ops/pooling.h"
#include "tensor/tensor.h"

namespace medtl::cuda {

// x: (N, C, H, W) -> y: (N, C, P, Q) and indices: (N, C, P, Q) Int64 (flat h * W + w), on x's GPU.
// Ties choose the first element in row-major scan order; NaN wins (the first NaN).
ops::MaxPool2dForward max_pool2d_forward(const Tensor& x, const ops::MaxPool2dParams& params);

// grad_y: (N, C, P, Q) float32, indices: (N, C, P, Q) Int64 from the forward -> grad_x: x_shape.
// Unlike the CPU, indices outside their window are not detected (checking needs a device-to-host
// round trip per call): they just contribute nothing.
Tensor max_pool2d_backward(const Tensor& grad_y, const Tensor& indices, const Shape& x_shape,
                           const ops::MaxPool2dParams& params);

}  // namespace medtl::cuda
