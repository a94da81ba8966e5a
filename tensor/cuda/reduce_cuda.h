// Sum reductions of float32 GPU tensors along fixed trees: no atomics, so the result depends on the
// shape alone and is bit-identical from run to run. Sums accumulate in double and round to float32
// once (the CPU backend accumulates float32 in interleaved lanes: both are within a few float32
// ulps of the exact sum). Plain C++ header; defined only under --config=cuda.
#pragma once

#include "tensor/tensor.h"

namespace medtl::cuda {

// x: (...) -> () : the sum of every element.
Tensor sum(const Tensor& x);
// x: (A, R) -> (A,) : the sum of each row (the last dim), e.g. for per-sample losses.
Tensor sum_rows(const Tensor& x);
// x: (N, C, H, W) -> (C,) : the sum over N, H and W of each channel, e.g. the bias gradient of a
// convolution and batch norm's statistics.
Tensor sum_channels(const Tensor& x);

}  // namespace medtl::cuda
