// Generic elementwise ops and copies on GPU tensors: any strides (views, stride-0 expands), NumPy
// broadcasting, every dtype the CPU kernel takes, with the CPU's semantics (tensor/ops/copy.h,
// tensor/ops/elementwise.h). Plain C++ header; defined only under --config=cuda.
//
// All operands must be on one GPU. Results are new contiguous tensors on that GPU; in-place ops
// write through any strided view that is not expanded. Index math: tensor/cuda/strided_index.h
// (at most 8 dims after merging contiguous ones; more throws, naming the op).
//
// Bits against the CPU backend: copy_, fill_, where, add, sub, mul, div, maximum, minimum, neg,
// abs, sign, relu, relu_backward, clamp, sqrt (and pow 2 / 0.5), comparisons, add_scaled_ and
// mul_ give exactly the CPU's bits (each element is the same IEEE operations, one rounding each:
// _rn intrinsics, never a fused multiply-add; integers wrap in their width). NaN payloads are not
// promised (the GPU returns its canonical NaN). exp, log, tanh, sigmoid and pow (general
// exponent) use CUDA's math library: within a few ulp of the CPU's libm, not bit-identical.
// Float -> integer conversions of NaN or out-of-range values are undefined in C++; the GPU
// saturates where x86 gives the "integer indefinite" value.
#pragma once

#include "tensor/backend.h"
#include "tensor/tensor.h"

namespace medtl::cuda {

// ---- Copies (tensor/ops/copy.h). ----
// dst[...] = src[...] converted to dst's dtype (all 8 dtypes, Float16/BFloat16 included, with the
// CPU's conversions). src broadcasts to dst's shape; dst may be any strided view but not an
// expanded one; dst must not overlap src. Both on the same GPU.
// dst: (shape), src: (broadcastable to shape)
void copy_(const Tensor& dst, const Tensor& src);
// Every element of dst (any strides, any dtype) set to value converted as the CPU's fill_ does.
void fill_(const Tensor& dst, double value);

// ---- Binary, broadcasting. a: (...), b: (...) of one dtype -> (broadcast shape), same dtype. ----
// Add, Sub, Mul, Maximum, Minimum: float32/64, int64, int32, uint8. Div, Pow: float32/64.
// Maximum/Minimum propagate a NaN from either side.
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);
// a: (...) -> (same shape). b converted to a's dtype first (integers truncate: add(int, 0.5) adds
// 0). Pow with exponent 2 is x * x and 0.5 is sqrt(x), as on the CPU.
Tensor binary_scalar(BinaryOp op, const Tensor& a, double b);

// ---- Comparisons -> Bool. ----
// a: (...), b: (...) of one dtype (all six arithmetic dtypes, Bool included) -> (broadcast shape).
Tensor compare(CompareOp op, const Tensor& a, const Tensor& b);
// a: (...) -> (same shape); compared in double, so gt(int, 0.5) is x > 0.5. Not Bool (as the CPU).
Tensor compare_scalar(CompareOp op, const Tensor& a, double b);

// ---- Unary. x: (...) -> (same shape, same dtype). ----
// Neg, Abs, Sign, Relu, Clamp: float32/64, int64, int32, uint8; Exp, Log, Sqrt, Sigmoid, Tanh:
// float only. relu(NaN) = sign(NaN) = clamp(NaN) = NaN; sigmoid is the CPU's overflow-free form.
// low, high: Clamp's bounds (low <= high), clipped to the dtype's range; ignored otherwise.
Tensor unary(UnaryOp op, const Tensor& x, double low = 0.0, double high = 0.0);

// grad where out > 0, else 0 (also where out is NaN). grad, out: (...) of one float dtype,
// broadcasting -> (broadcast shape). (Also declared in elementwise_cuda.h; defined once.)
Tensor relu_backward(const Tensor& grad, const Tensor& out);

// cond ? a : b, all three broadcasting together. cond: any arithmetic dtype (nonzero = true; NaN
// is true, -0.0 false); a, b: one arithmetic dtype. -> (broadcast shape), a's dtype.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

// ---- In place (dst keeps its shape, src broadcasts to it; dst not an expanded view). ----
// dst += alpha * src, rounded as the CPU: alpha in dst's dtype, d + a * s with two roundings.
// Float dtypes; with alpha == 1 also int64/int32/uint8 (then it is the CPU's add_: dst += src).
void add_scaled_(const Tensor& dst, const Tensor& src, double alpha);
// dst *= factor (converted to dst's dtype as binary_scalar does). float32/64, int64, int32, uint8.
void mul_(const Tensor& dst, double factor);

}  // namespace medtl::cuda
