// Reductions over any set of dims, with keepdim: sum, mean, max/argmax, var; and sum_to, the
// reduction that undoes broadcasting (used by every broadcasting op's backward).
//
// Determinism: each output element is computed by summing fixed-size chunks of its inputs, each
// chunk in a fixed order, and combining the chunk sums in a fixed pairwise tree. Neither the
// chunk boundaries nor the tree depend on the thread count, so results are bit-identical with 1
// thread and with N. No float atomics anywhere.
#pragma once

#include <vector>

#include "tensor/tensor.h"

namespace medtl::ops {

// dims: which dims to reduce (negative allowed, no repeats); empty = all dims.
// x: (...) -> shape with reduced dims removed (or kept as 1 with keepdim).
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// Variance with Bessel-style `correction` (1 = unbiased, like torch.var's default; 0 = population).
Tensor var(const Tensor& x, const std::vector<int64_t>& dims = {}, int64_t correction = 1, bool keepdim = false);

// Max over one dim: values and the Int64 index of the first maximum (NaN counts as the maximum,
// like PyTorch).
struct MaxResult {
  Tensor values;
  Tensor indices;
};
MaxResult max(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor max(const Tensor& x);  // the largest element, as a 0-dim tensor

// Sums x down to `shape` (which x's shape broadcasts from): the gradient of broadcasting.
// x: (broadcast of shape) -> (shape)
Tensor sum_to(const Tensor& x, const Shape& shape);

}  // namespace medtl::ops
