// Batch normalisation of float32 GPU tensors with the CPU backend's formulas and contracts
// (tensor/ops/batch_norm.h): training (batch statistics, running-stat update with the unbiased
// variance) and eval, forward and backward. Our own kernels, not cuDNN's: per-channel statistics
// are fixed-tree sums in double (no atomics, the same bits every run), and the elementwise parts
// round exactly as the CPU does, so eval mode is bit-identical to the CPU and training is within a
// few float32 ulps. Plain C++ header; defined only under --config=cuda.
#pragma once

#include "tensor/ops/batch_norm.h"
#include "tensor/tensor.h"

namespace medtl::cuda {

// x: (N, C, H, W) or (N, C); weight, bias, running_mean, running_var: (C,) or undefined (the
// running stats both or neither). All float32, contiguous, on one GPU. Returns y like x and the
// saved (C,) statistics; running stats are updated in place in training.
ops::BatchNormForward batch_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                         const Tensor& running_mean, const Tensor& running_var, bool training,
                                         double momentum, double eps);

// grad_y, x: like x; weight: (C,) or undefined; save_mean, save_invstd: (C,) from the forward.
// Returns grad_x like x, grad_weight and grad_bias (C,).
ops::BatchNormBackward batch_norm_backward(const Tensor& grad_y, const Tensor& x, const Tensor& weight,
                                           const Tensor& save_mean, const Tensor& save_invstd, bool training);

}  // namespace medtl::cuda
