// Batch normalisation over (N, H, W) per channel, as torch.nn.functional.batch_norm: training
// (batch statistics, running-stat update) and evaluation (running statistics), with backward.
// Channel sums use the deterministic chunked reduction, so results do not depend on threads.
#pragma once

#include "tensor/tensor.h"

namespace medtl::ops {

struct BatchNormForward {
  Tensor y;          // (N, C, H, W)
  Tensor save_mean;  // (C,) batch mean (training) or running mean (eval)
  Tensor save_invstd;  // (C,) 1 / sqrt(var + eps) with the statistics used
};

// x: (N, C, H, W) or (N, C) (any trailing dims work: statistics are over all dims but C);
// weight, bias: (C,) or undefined (= 1, 0); running_mean, running_var: (C,) or undefined (both or
// neither). All of x's dtype (float32 or float64); x may have any strides. In training, running
// stats (if given) are updated in place: r = (1 - momentum) r + momentum * stat, with the
// UNBIASED batch variance, as PyTorch does; normalisation uses the biased one. Training with one
// value per channel (N * H * W == 1) is an error, as in PyTorch; an empty batch gives an empty y,
// zero saved stats and leaves the running stats alone. Eval needs the running stats.
// Statistics are accumulated in double for both dtypes, in a fixed order (any thread count gives
// the same bits).
BatchNormForward batch_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                                    const Tensor& running_var, bool training, double momentum, double eps);

struct BatchNormBackward {
  Tensor grad_x;       // (N, C, H, W)
  Tensor grad_weight;  // (C,)
  Tensor grad_bias;    // (C,)
};
// grad_y: like x; save_mean/save_invstd from the forward. In training the batch statistics
// depend on x (full formula); in eval they are constants.
BatchNormBackward batch_norm_backward(const Tensor& grad_y, const Tensor& x, const Tensor& weight, const Tensor& save_mean,
                                      const Tensor& save_invstd, bool training);

}  // namespace medtl::ops
