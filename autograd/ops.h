// Differentiable ops: each computes its result with a raw kernel from tensor/ops and records
// its backward formula (autograd/graph.h). The formula sits next to the forward, in ops.cc.
//
// Tensor's own methods (t.reshape(), t.permute(), ...) are raw: they return tensors with no
// history. In code that needs gradients, use these functions instead.
#pragma once

#include <vector>

#include "autograd/graph.h"

namespace medtl::ag {

// ---- Elementwise, broadcasting (gradients are summed back to each input's shape). ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);  // a > 0 where b's gradient is needed
Tensor maximum(const Tensor& a, const Tensor& b);  // ties send the gradient to a
Tensor minimum(const Tensor& a, const Tensor& b);  // ties send the gradient to a
Tensor add(const Tensor& a, double b);
Tensor sub(const Tensor& a, double b);
Tensor mul(const Tensor& a, double b);
Tensor div(const Tensor& a, double b);
Tensor pow(const Tensor& a, double exponent);

Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor abs(const Tensor& x);       // gradient 0 at 0, like PyTorch
Tensor relu(const Tensor& x);      // gradient 0 at 0, like PyTorch
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor clamp(const Tensor& x, double low, double high);  // gradient 1 inside [low, high], else 0
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);  // no gradient to cond

// ---- Reductions. ----
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor var(const Tensor& x, const std::vector<int64_t>& dims = {}, int64_t correction = 1, bool keepdim = false);
// Max over a dim: the gradient goes to the first maximal element, as PyTorch's indices say.
Tensor max(const Tensor& x, int64_t dim, bool keepdim = false);

// ---- Linear algebra. a: (..., M, K), b: (..., K, N) -> (..., M, N) ----
Tensor matmul(const Tensor& a, const Tensor& b);

// ---- Views and copies (gradients flow back through the same view, reversed). ----
Tensor reshape(const Tensor& x, const Shape& shape);
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims);
Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1);
Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length);
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
Tensor select(const Tensor& x, int64_t dim, int64_t index);
Tensor expand(const Tensor& x, const Shape& shape);
Tensor squeeze(const Tensor& x, int64_t dim);
Tensor unsqueeze(const Tensor& x, int64_t dim);
Tensor flatten(const Tensor& x, int64_t start_dim = 0, int64_t end_dim = -1);
Tensor contiguous(const Tensor& x);
Tensor to(const Tensor& x, DType dtype);  // gradient converted back to x's dtype

}  // namespace medtl::ag

namespace medtl {

// Operators, for readable formulas: (a * b + c) / d. All differentiable. They live in medtl
// itself (where Tensor is) so argument-dependent lookup finds them everywhere.
inline Tensor operator+(const Tensor& a, const Tensor& b) { return ag::add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return ag::sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return ag::mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return ag::div(a, b); }
inline Tensor operator+(const Tensor& a, double b) { return ag::add(a, b); }
inline Tensor operator-(const Tensor& a, double b) { return ag::sub(a, b); }
inline Tensor operator*(const Tensor& a, double b) { return ag::mul(a, b); }
inline Tensor operator/(const Tensor& a, double b) { return ag::div(a, b); }
inline Tensor operator*(double a, const Tensor& b) { return ag::mul(b, a); }
inline Tensor operator-(const Tensor& x) { return ag::neg(x); }

}  // namespace medtl
