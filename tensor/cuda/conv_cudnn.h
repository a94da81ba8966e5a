// 2-D convolution of float32 NCHW GPU tensors through cuDNN 9's convolution API: forward,
// backward-data, backward-filter, and the bias gradient (our own fixed-tree kernel). Same
// contracts as tensor/ops/conv2d.h. The algorithm is chosen once per (shape, parameters, mode,
// GPU) and cached. Deterministic mode (medtl::deterministic(), the default): cuDNN's heuristics
// (no timing, so every run picks the same algorithm), only algorithms cuDNN reports as
// CUDNN_DETERMINISTIC, math type CUDNN_FMA_MATH (plain float32: cuDNN's CUDNN_DEFAULT_MATH would
// allow TF32 on Ampere and newer), preferring implicit-GEMM and direct algorithms over FFT and
// Winograd, whose float32 error is larger. Fast mode: timed search (cudnnFind*), any algorithm,
// TF32 allowed. Plain C++ header; defined only under --config=cuda.
#pragma once

#include <cstdint>
#include <string>

#include "tensor/ops/conv2d.h"
#include "tensor/tensor.h"

namespace medtl::cuda {

// x: (N, C, H, W), w: (K, C, R, S), bias: (K,) or undefined -> y: (N, K, P, Q)
Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const ops::Conv2dParams& params);
// grad_y: (N, K, P, Q), w: (K, C, R, S) -> grad_x: x_shape = (N, C, H, W)
Tensor conv2d_backward_input(const Tensor& grad_y, const Tensor& w, const Shape& x_shape,
                             const ops::Conv2dParams& params);
// grad_y: (N, K, P, Q), x: (N, C, H, W) -> grad_w: w_shape = (K, C, R, S)
Tensor conv2d_backward_weight(const Tensor& grad_y, const Tensor& x, const Shape& w_shape,
                              const ops::Conv2dParams& params);
// grad_y: (N, K, P, Q) -> grad_bias: (K,)
Tensor conv2d_backward_bias(const Tensor& grad_y);

// The algorithm a call uses, choosing and caching it if needed, e.g.
// "IMPLICIT_PRECOMP_GEMM, FMA math, deterministic, workspace 1.00 MiB (1048576 bytes)".
// kind: "forward", "backward_input" or "backward_weight". For logs, benchmarks and tests.
std::string conv2d_algorithm(const char* kind, const Shape& x_shape, const Shape& w_shape,
                             const ops::Conv2dParams& params, int device_index = 0);
// How many choices are cached (each a cuDNN query that will not be repeated).
int64_t conv2d_algorithm_cache_size();

}  // namespace medtl::cuda
