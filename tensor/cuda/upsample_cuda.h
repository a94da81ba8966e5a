// Nearest-neighbour 2x upsampling of float32 NCHW GPU tensors and its backward as a gather, with
// the CPU backend's contracts and summation order (tensor/ops/upsample.h): bit-identical to it.
// Plain C++ header; defined only under --config=cuda.
#pragma once

#include "tensor/tensor.h"

namespace medtl::cuda {

// x: (N, C, H, W) -> y: (N, C, 2H, 2W), y[n, c, h, w] = x[n, c, h / 2, w / 2].
Tensor upsample_nearest2x(const Tensor& x);

// grad_y: (N, C, 2H, 2W) -> grad_x: (N, C, H, W): each input pixel sums its 2x2 block as
// ((g[2h, 2w] + g[2h, 2w+1]) + g[2h+1, 2w]) + g[2h+1, 2w+1], one thread per pixel (no atomics).
Tensor upsample_nearest2x_backward(const Tensor& grad_y);

}  // namespace medtl::cuda
