// 2-D convolution (cross-correlation, as PyTorch's conv2d): forward, backward-data,
// backward-weights, backward-bias. float32 runs through oneDNN (tensor/cpu/conv2d_onednn.cc);
// float64 and the tests' oracle run through plain loops (tensor/cpu/conv2d_reference.cc).
#pragma once

#include <string>

#include "tensor/tensor.h"

namespace medtl::ops {

struct Conv2dParams {
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;          // zero padding on both sides
  int64_t dilation_h = 1, dilation_w = 1;
};

// Output spatial size: (H + 2 pad - dilation (R - 1) - 1) / stride + 1. Errors name the shapes.
Shape conv2d_output_shape(const Shape& x_shape, const Shape& w_shape, const Conv2dParams& params);

// x: (N, C, H, W), w: (K, C, R, S), bias: (K,) or undefined -> y: (N, K, P, Q)
Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& params);
// grad_y: (N, K, P, Q), w: (K, C, R, S) -> grad_x: x_shape = (N, C, H, W)
Tensor conv2d_backward_input(const Tensor& grad_y, const Tensor& w, const Shape& x_shape, const Conv2dParams& params);
// grad_y: (N, K, P, Q), x: (N, C, H, W) -> grad_w: w_shape = (K, C, R, S)
Tensor conv2d_backward_weight(const Tensor& grad_y, const Tensor& x, const Shape& w_shape, const Conv2dParams& params);
// grad_y: (N, K, P, Q) -> grad_bias: (K,)
Tensor conv2d_backward_bias(const Tensor& grad_y);

// The plain-loop oracle, any float dtype, same contracts as above.
Tensor conv2d_forward_reference(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& params);
Tensor conv2d_backward_input_reference(const Tensor& grad_y, const Tensor& w, const Shape& x_shape, const Conv2dParams& params);
Tensor conv2d_backward_weight_reference(const Tensor& grad_y, const Tensor& x, const Shape& w_shape, const Conv2dParams& params);

// ---- Shared by both paths (defined in tensor/cpu/conv2d_reference.cc). ----
// Validate one kernel call's operands (defined, on the CPU, one float dtype, consistent shapes and
// params) and throw medtl::Error naming `op` and every shape involved. Return y's shape.
Shape conv2d_check_forward(const char* op, const Tensor& x, const Tensor& w, const Tensor& bias,
                           const Conv2dParams& params);
Shape conv2d_check_backward_input(const char* op, const Tensor& grad_y, const Tensor& w, const Shape& x_shape,
                                  const Conv2dParams& params);
Shape conv2d_check_backward_weight(const char* op, const Tensor& grad_y, const Tensor& x, const Shape& w_shape,
                                   const Conv2dParams& params);

// ---- oneDNN path settings (tensor/cpu/conv2d_onednn.cc), for benchmarks and tests. ----
// How float32 data is laid out inside a oneDNN call; the tensors passed in and returned are
// always plain NCHW / KCRS either way. Plain: the primitives run on NCHW / OIHW directly (oneDNN
// then uses im2col + GEMM). Blocked: oneDNN chooses its formats (format_tag::any, e.g. nChw16c,
// direct JIT kernels) and each call reorders its inputs in and its output back. Auto (default):
// Plain for 1x1 stride-1 unpadded convolutions with at least 28x28 outputs (a GEMM with no im2col
// and no reorders) and for backward-data into fewer than 16 channels, Blocked otherwise -- the
// faster of the two on ResNet-50 shapes (measured with experiments/bench/conv_bench.cc). The
// choice depends on shapes only, never on timing.
// Set it before running convolutions, not while they run.
enum class Conv2dLayout { Plain, Blocked, Auto };
void set_conv2d_onednn_layout(Conv2dLayout layout);
Conv2dLayout get_conv2d_onednn_layout();
// The oneDNN implementation chosen for a call, e.g. "jit:avx512_core" or "gemm:jit" (creates
// and caches the primitive if needed). kind: "forward", "backward_input" or "backward_weight".
std::string conv2d_onednn_impl(const char* kind, const Shape& x_shape, const Shape& w_shape, const Conv2dParams& params);

}  // namespace medtl::ops
