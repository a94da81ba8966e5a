// A process-wide count of the floating-point operations done by convolutions and matrix products,
// so benchmarks can report achieved GFLOP/s from the work the kernels actually did.
//
// Why count instead of computing a formula per model: the count follows the code (ResNet-50,
// U-Net with its concatenations, conv1 whose input needs no gradient) without a second
// description of each network that could drift from it. Only the GEMM-shaped work is counted
// (convolutions forward / backward-data / backward-weights, matmul), 2 FLOPs per multiply-add, as
// published FLOP figures do; elementwise ops, batch norm and pooling are not (a few percent).
// The counter is an integer atomic (relaxed): it never touches a float result.
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace medtl {

// 2 * N * K * P * Q * C * R * S: y_shape (N, K, P, Q), w_shape (K, C, R, S). The same for the
// forward, the backward-data and the backward-weights of one convolution.
int64_t conv2d_flops(const Shape& y_shape, const Shape& w_shape);

// 2 * batch * m * n * k for `batch` products of (m, k) by (k, n).
int64_t matmul_flops(int64_t batch, int64_t m, int64_t n, int64_t k);

void add_counted_flops(int64_t flops);  // called by the conv2d and matmul kernels
int64_t counted_flops();                // since the process started; take differences

}  // namespace medtl
