// Pooling: max pooling with indices (for backward) and global average pooling.
#pragma once

#include "tensor/tensor.h"

namespace medtl::ops {

struct MaxPool2dParams {
  int64_t kernel_h = 2, kernel_w = 2;
  int64_t stride_h = 2, stride_w = 2;
  int64_t pad_h = 0, pad_w = 0;  // padded positions never win (treated as -inf)
};

struct MaxPool2dForward {
  Tensor y;        // (N, C, P, Q)
  Tensor indices;  // (N, C, P, Q) Int64: flat index h * W + w of the chosen input element
};
// x: (N, C, H, W) -> y: (N, C, P, Q), P = (H + 2 pad_h - kernel_h) / stride_h + 1 (floor mode;
// likewise Q). float32 and float64. Ties choose the first element in row-major scan order; NaN
// wins (the first NaN in scan order). pad <= kernel / 2, as PyTorch requires.
MaxPool2dForward max_pool2d_forward(const Tensor& x, const MaxPool2dParams& params);
// grad_y, indices: (N, C, P, Q) -> grad_x: x_shape. Written as a gather over each input pixel's
// windows (no atomics): each grad_x element sums its grad_y terms in (p, q) row-major order, so
// it is deterministic. An index outside its own window is an error (it would lose its gradient).
Tensor max_pool2d_backward(const Tensor& grad_y, const Tensor& indices, const Shape& x_shape, const MaxPool2dParams& params);

}  // namespace medtl::ops
