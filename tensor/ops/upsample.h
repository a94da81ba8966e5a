// Nearest-neighbour upsampling by 2 in H and W (F.interpolate(x, scale_factor=2, mode="nearest")),
// the U-Net decoder's upsampling, with its backward written as a gather.
#pragma once

#include "tensor/tensor.h"

namespace medtl::ops {

// y[n, c, h, w] = x[n, c, h / 2, w / 2].
// x: (N, C, H, W) float32 or float64, any strides -> y: (N, C, 2H, 2W), contiguous.
Tensor upsample_nearest2x(const Tensor& x);

// The gradient of upsample_nearest2x: each input pixel sums its 2x2 block of grad_y, as
// ((g[2h, 2w] + g[2h, 2w+1]) + g[2h+1, 2w]) + g[2h+1, 2w+1] (PyTorch's CPU order). Each grad_x
// element is computed by one thread (a gather: no scatter, no atomics), so the result is
// bit-identical for any thread count.
// grad_y: (N, C, 2H, 2W), any strides -> grad_x: (N, C, H, W), contiguous.
Tensor upsample_nearest2x_backward(const Tensor& grad_y);

// Plain-loop oracles for tests (element by element through Tensor::at, accumulated in double).
Tensor upsample_nearest2x_reference(const Tensor& x);
Tensor upsample_nearest2x_backward_reference(const Tensor& grad_y);

}  // namespace medtl::ops
