// Elementwise math with NumPy broadcasting: unary, binary, comparisons, where, clamp.
//
// These are the raw kernels: they compute, and record nothing for gradients (autograd/ wraps
// them). Binary ops broadcast by NumPy's rule: shapes are aligned at the last dim, and each pair
// of sizes must be equal or contain a 1. Both operands must have the same dtype (no silent
// promotion); the result has that dtype, except comparisons, which return Bool.
//
// Dtypes: everything takes float32 and float64. add, sub, mul, maximum, minimum, neg, abs, sign,
// relu, clamp, add_ and mul_ also take int64, int32 and uint8 (C++ integer arithmetic, wrapping in
// the element type); comparisons and where also take Bool. div, pow, exp, log, sqrt, sigmoid,
// tanh and add_scaled_ are float-only. Float16/BFloat16 are rejected with a message.
// NaN: maximum/minimum propagate NaN from either side; relu(NaN), clamp(NaN) and sign(NaN) are NaN.
#pragma once

#include "tensor/backend.h"
#include "tensor/tensor.h"

namespace medtl::ops {

// The broadcast shape of a and b, or an Error naming both shapes and the dim that disagrees.
Shape broadcast_shapes(const Shape& a, const Shape& b);

// ---- Binary, broadcasting. a: (...), b: (...) -> (broadcast shape) ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);

// With a scalar right-hand side (converted to the tensor's dtype, so add(int_tensor, 0.5) adds 0).
// pow with exponent 2 or 0.5 computes x * x or sqrt(x).
Tensor add(const Tensor& a, double b);
Tensor sub(const Tensor& a, double b);
Tensor mul(const Tensor& a, double b);
Tensor div(const Tensor& a, double b);
Tensor pow(const Tensor& a, double exponent);

// ---- Comparisons -> Bool. ----
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, double b);  // compared in double: gt(int_tensor, 0.5) is x > 0.5
Tensor lt(const Tensor& a, double b);

// ---- Unary. x: (...) -> (same shape) ----
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor sign(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor sigmoid(const Tensor& x);  // 1 / (1 + exp(-x)), computed without overflow for large |x|
Tensor tanh(const Tensor& x);
Tensor clamp(const Tensor& x, double low, double high);  // low <= high; bounds clipped to the dtype's range

// relu's backward in one pass: grad where out > 0, else 0 (also where out is NaN). grad and out:
// (...) of one float dtype, broadcasting -> (broadcast shape). Equal, bit for bit, to
// where(gt(out, 0), grad, 0), without its Bool temporary and its stride-0 scalar operand.
Tensor relu_backward(const Tensor& grad, const Tensor& out);

// cond ? a : b, all three broadcasting together. cond: Bool (or any dtype: nonzero = true).
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

// ---- By op code (the enums of tensor/backend.h), for code that holds an op as data: device
// backends and the tests that compare them with these. Each is the named op above. ----
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);
Tensor compare(CompareOp op, const Tensor& a, const Tensor& b);
Tensor unary(UnaryOp op, const Tensor& x, double low = 0.0, double high = 0.0);  // bounds: Clamp only

// ---- In place, for optimizers and accumulators (dst keeps its shape; src broadcasts to it). ----
// dst may be any strided view (writes go through to its storage) but not an expanded one (a
// stride-0 dim of size > 1). alpha and factor are converted to dst's dtype.
void add_(const Tensor& dst, const Tensor& src);               // dst += src
void add_scaled_(const Tensor& dst, const Tensor& src, double alpha);  // dst += alpha * src
void mul_(const Tensor& dst, double factor);                   // dst *= factor

}  // namespace medtl::ops
