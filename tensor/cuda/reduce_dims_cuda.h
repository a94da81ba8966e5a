// Reductions over any dims of GPU tensors of any layout: sum, mean, var, max (values and first
// index), max_all -- the semantics of tensor/ops/reduce.h. Plain C++ header; defined only under
// --config=cuda.
//
// Determinism: no atomics. Output m reduces its elements in an order fixed by (number of outputs,
// reduced extent) alone -- never by x's strides, the GPU model or the grid size: short runs are
// summed serially by one thread; others by one block of 256 threads, thread t taking elements
// t, t + 256, ... of a fixed 65536-element chunk, then a fixed shared-memory halving tree; runs
// longer than one chunk sum their chunk partials the same way. So results are bit-identical run
// to run, and a permuted or sliced input gives the bits of its contiguous copy.
//
// Accuracy: float32 and float64 accumulate in double and round once (float32 results are within
// a few float32 ulps of the exact sum, and within 1e-5 relative of the CPU's, which accumulates
// float32 in float32 lanes; cancellation can make the relative gap larger where the sum is near
// zero). Not bit-identical to the CPU. A float32 sum whose running total overflows float32 on the
// CPU but not in double can be finite here. int64 sums wrap (two's complement), exactly as the CPU.
#pragma once

#include <cstdint>
#include <vector>

#include "tensor/ops/reduce.h"
#include "tensor/tensor.h"

namespace medtl::cuda {

// dims: already wrapped, sorted, unique; empty = all dims. A 0-dim x reduces nothing (its dims
// list may be empty or {0}). x: (...) -> (kept dims; reduced ones as 1 with keepdim).
// float32, float64, int64 (wrapping); the sum of nothing is 0.
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim);
// float32, float64; the mean of nothing is NaN.
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim);
// Two-pass (mean, then the sum of squared deviations), divided by max(0, N - correction): so
// N - correction <= 0 gives inf, or NaN where every deviation is 0, as the CPU. float32, float64.
Tensor var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction, bool keepdim);
// Max over dim (wrapped; 0 for a 0-dim x): values and the Int64 index of the first maximum. A NaN
// is the maximum and the first NaN wins; signed zeros count as equal (the first one wins).
// float32, float64, int64. Reducing over zero elements throws. Exact: same as the CPU.
ops::MaxResult max(const Tensor& x, int64_t dim, bool keepdim);
// x: (...) -> () : the largest element (NaN if any is NaN). Zero elements throw.
Tensor max_all(const Tensor& x);

}  // namespace medtl::cuda
