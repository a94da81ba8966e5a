// Elementwise float32 ops on GPU tensors, bit-identical to the CPU backend's (tensor/ops/
// elementwise.h): each output element is one IEEE operation on both sides. Operands must be
// contiguous, of one shape (no broadcasting yet) and on one GPU. Plain C++ header; defined only
// under --config=cuda.
#pragma once

#include "tensor/tensor.h"

namespace medtl::cuda {

// a, b: (...) -> (...)
Tensor add(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
// x: (...) -> (...). relu(NaN) = NaN and relu(-0) = +0, as on the CPU.
Tensor relu(const Tensor& x);
// grad, out: (...) -> grad where out > 0, else 0 (also where out is NaN), as on the CPU. Defined
// by the generic engine (strided_cuda.h, which declares it too): any strides, broadcasting, float32
// and float64.
Tensor relu_backward(const Tensor& grad, const Tensor& out);

}  // namespace medtl::cuda
