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

// dims: which dims to reduce (negative allowed, no repeats); empty = all dims. A 0-dim tensor
// accepts dim 0 and -1, which reduce nothing.
// x: (...) -> shape with reduced dims removed (or kept as 1 with keepdim). Same dtype as x.
// Inputs of any layout: the result depends only on the values, not on x's strides.
// sum: float32, float64 and int64 (summed in int64, wrapping on overflow); the sum of nothing is 0.
// mean, var: float32 and float64; the mean of nothing is NaN.
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// Variance with Bessel-style `correction` (1 = unbiased, like torch.var's default; 0 = population):
// two-pass (mean first, then the sum of squared deviations), divided by max(0, N - correction).
// So N - correction <= 0 gives inf, or NaN where every deviation is 0 (e.g. N = 1), like PyTorch.
Tensor var(const Tensor& x, const std::vector<int64_t>& dims = {}, int64_t correction = 1, bool keepdim = false);

// Max over one dim: values and the Int64 index of the first maximum (NaN counts as the maximum,
// like PyTorch, and the first NaN wins). float32, float64 and int64. Reducing over zero elements
// is an error (the maximum of nothing is undefined).
struct MaxResult {
  Tensor values;
  Tensor indices;
};
MaxResult max(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor max(const Tensor& x);  // the largest element, as a 0-dim tensor

// Sums x down to `shape` (which x's shape broadcasts from): the gradient of broadcasting. Reduces
// x's leading extra dims and every dim where `shape` has 1 and x does not; the result has exactly
// `shape`. Returns x itself (sharing storage) when there is nothing to reduce; throws if `shape`
// does not broadcast to x's shape.
// x: (broadcast of shape) -> (shape)
Tensor sum_to(const Tensor& x, const Shape& shape);

}  // namespace medtl::ops
