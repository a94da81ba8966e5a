// Differentiable batch norm, pooling and dropout (formulas in autograd/norm_pool_ops.cc).
#pragma once

#include "autograd/graph.h"
#include "tensor/ops/batch_norm.h"
#include "tensor/ops/pooling.h"

namespace medtl::ag {

// x: (N, C, H, W) or (N, C); weight/bias (C,) trainable or undefined; running stats (C,) are
// buffers updated in place when training (never differentiated).
Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, bool training, double momentum, double eps);

// x: (N, C, H, W) -> (N, C, P, Q)
Tensor max_pool2d(const Tensor& x, const ops::MaxPool2dParams& params);

// x: (N, C, H, W) -> (N, C, 1, 1): the mean over H and W.
Tensor adaptive_avg_pool2d_1x1(const Tensor& x);

// Zeroes each element with probability p and scales the rest by 1 / (1 - p) when training;
// the identity otherwise. The mask comes from Philox keyed by (seed, stream), so it is
// reproducible and independent of threads.
Tensor dropout(const Tensor& x, double p, bool training, uint64_t seed, uint64_t stream);

}  // namespace medtl::ag
