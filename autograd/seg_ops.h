// Differentiable ops the U-Net decoder needs beyond the layer ops: nearest x2 upsampling and
// concatenation (formulas in autograd/seg_ops.cc). The sigmoid is ag::sigmoid (autograd/ops.h).
#pragma once

#include <vector>

#include "autograd/graph.h"

namespace medtl::ag {

// F.interpolate(x, scale_factor=2, mode="nearest"). x: (N, C, H, W) -> (N, C, 2H, 2W).
// Backward: each input pixel sums its 2x2 block (ops::upsample_nearest2x_backward, a gather).
Tensor upsample_nearest2x(const Tensor& x);

// torch.cat(tensors, dim): every tensor has the same dtype, rank and sizes except along `dim`
// (negative counts from the end). The U-Net concatenates channels: dim 1 of (N, C_i, H, W).
// Backward: input i gets the narrow view of the gradient that covers its slice (no copy).
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim);

}  // namespace medtl::ag
