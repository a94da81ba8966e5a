// Differentiable ops: forward through tensor/ops kernels, backward formula right beside it.
//
// Conventions in the formulas: g = dL/d(out); saved tensors are detached (no history) so a node
// never keeps its own output alive through a cycle; every input gradient is summed back to that
// input's shape with sum_to, which is what broadcasting in the forward requires.
#include "autograd/ops.h"

#include <algorithm>

#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/matmul.h"
#include "tensor/ops/reduce.h"

namespace medtl::ag {
namespace {

using Grads = std::vector<Tensor>;

// dL/d(input) from a gradient of the broadcast shape, or undefined if the input needs none.
Tensor to_input(bool needed, const Tensor& grad, const Shape& input_shape) {
  if (!needed) return Tensor();
  return grad.shape() == input_shape ? grad : ops::sum_to(grad, input_shape);
}

// A 0-dim zero of `like`'s dtype on its device, for where() to broadcast.
Tensor zero_scalar(const Tensor& like) { return zeros({}, like.dtype(), like.device()); }

// The shape x would have after reducing `dims` with keepdim = true (dims empty = all).
Shape keepdim_shape(const Shape& shape, const std::vector<int64_t>& dims) {
  Shape out = shape;
  const int64_t ndim = static_cast<int64_t>(shape.size());
  if (dims.empty()) std::fill(out.begin(), out.end(), 1);
  for (int64_t d : dims) out[wrap_dim(d, ndim, "reduce")] = 1;
  return out;
}

int64_t reduced_count(const Shape& shape, const std::vector<int64_t>& dims) {
  return shape_numel(shape) / std::max<int64_t>(1, shape_numel(keepdim_shape(shape, dims)));
}

}  // namespace

// ============================================================== elementwise, binary

Tensor add(const Tensor& a, const Tensor& b) {
  // out = a + b; da = g, db = g
  return record("add", ops::add(a, b), {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g, const NeedsGrad& n) {
    return Grads{to_input(n[0], g, sa), to_input(n[1], g, sb)};
  });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  // out = a - b; da = g, db = -g
  return record("sub", ops::sub(a, b), {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g, const NeedsGrad& n) {
    return Grads{to_input(n[0], g, sa), n[1] ? to_input(true, ops::neg(g), sb) : Tensor()};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  // out = a * b; da = g * b, db = g * a
  return record("mul", ops::mul(a, b), {a, b}, [a = detach(a), b = detach(b)](const Tensor& g, const NeedsGrad& n) {
    return Grads{n[0] ? to_input(true, ops::mul(g, b), a.shape()) : Tensor(),
                 n[1] ? to_input(true, ops::mul(g, a), b.shape()) : Tensor()};
  });
}

Tensor div(const Tensor& a, const Tensor& b) {
  // out = a / b; da = g / b, db = -g * out / b
  Tensor out = ops::div(a, b);
  return record("div", out, {a, b}, [sa = a.shape(), b = detach(b), out = detach(out)](const Tensor& g, const NeedsGrad& n) {
    Tensor g_over_b = ops::div(g, b);
    return Grads{to_input(n[0], g_over_b, sa),
                 n[1] ? to_input(true, ops::neg(ops::mul(g_over_b, out)), b.shape()) : Tensor()};
  });
}

Tensor pow(const Tensor& a, const Tensor& b) {
  // out = a ^ b; da = g * b * a ^ (b - 1), db = g * out * log(a)
  Tensor out = ops::pow(a, b);
  return record("pow", out, {a, b},
                [a = detach(a), b = detach(b), out = detach(out)](const Tensor& g, const NeedsGrad& n) {
                  Tensor da, db;
                  if (n[0]) da = to_input(true, ops::mul(g, ops::mul(b, ops::pow(a, ops::sub(b, 1.0)))), a.shape());
                  if (n[1]) db = to_input(true, ops::mul(g, ops::mul(out, ops::log(a))), b.shape());
                  return Grads{da, db};
                });
}

// maximum/minimum: the gradient goes to the chosen input; on ties, to a.
static Tensor select_grad_binary(const char* name, Tensor out, const Tensor& a, const Tensor& b, Tensor a_chosen) {
  return record(name, std::move(out), {a, b},
                [sa = a.shape(), sb = b.shape(), a_chosen = std::move(a_chosen)](const Tensor& g, const NeedsGrad& n) {
                  const Tensor zero = zero_scalar(g);
                  return Grads{n[0] ? to_input(true, ops::where(a_chosen, g, zero), sa) : Tensor(),
                               n[1] ? to_input(true, ops::where(a_chosen, zero, g), sb) : Tensor()};
                });
}

Tensor maximum(const Tensor& a, const Tensor& b) {
  return select_grad_binary("maximum", ops::maximum(a, b), a, b, ops::ge(a, b));
}

Tensor minimum(const Tensor& a, const Tensor& b) {
  return select_grad_binary("minimum", ops::minimum(a, b), a, b, ops::le(a, b));
}

// ============================================================== elementwise, with a scalar

Tensor add(const Tensor& a, double b) {
  return record("add_scalar", ops::add(a, b), {a}, [](const Tensor& g, const NeedsGrad&) { return Grads{g}; });
}

Tensor sub(const Tensor& a, double b) {
  return record("sub_scalar", ops::sub(a, b), {a}, [](const Tensor& g, const NeedsGrad&) { return Grads{g}; });
}

Tensor mul(const Tensor& a, double b) {
  return record("mul_scalar", ops::mul(a, b), {a}, [b](const Tensor& g, const NeedsGrad&) { return Grads{ops::mul(g, b)}; });
}

Tensor div(const Tensor& a, double b) {
  return record("div_scalar", ops::div(a, b), {a}, [b](const Tensor& g, const NeedsGrad&) { return Grads{ops::div(g, b)}; });
}

Tensor pow(const Tensor& a, double exponent) {
  // out = a ^ p; da = g * p * a ^ (p - 1)
  return record("pow_scalar", ops::pow(a, exponent), {a}, [a = detach(a), exponent](const Tensor& g, const NeedsGrad&) {
    if (exponent == 0.0) return Grads{zeros_like(g)};
    return Grads{ops::mul(g, ops::mul(ops::pow(a, exponent - 1.0), exponent))};
  });
}

// ============================================================== elementwise, unary

Tensor neg(const Tensor& x) {
  return record("neg", ops::neg(x), {x}, [](const Tensor& g, const NeedsGrad&) { return Grads{ops::neg(g)}; });
}

Tensor exp(const Tensor& x) {
  // d exp(x) = exp(x) = out
  Tensor out = ops::exp(x);
  return record("exp", out, {x}, [out = detach(out)](const Tensor& g, const NeedsGrad&) { return Grads{ops::mul(g, out)}; });
}

Tensor log(const Tensor& x) {
  return record("log", ops::log(x), {x}, [x = detach(x)](const Tensor& g, const NeedsGrad&) { return Grads{ops::div(g, x)}; });
}

Tensor sqrt(const Tensor& x) {
  // d sqrt(x) = 1 / (2 sqrt(x)) = 0.5 / out
  Tensor out = ops::sqrt(x);
  return record("sqrt", out, {x}, [out = detach(out)](const Tensor& g, const NeedsGrad&) {
    return Grads{ops::div(ops::mul(g, 0.5), out)};
  });
}

Tensor abs(const Tensor& x) {
  return record("abs", ops::abs(x), {x}, [x = detach(x)](const Tensor& g, const NeedsGrad&) {
    return Grads{ops::mul(g, ops::sign(x))};
  });
}

Tensor relu(const Tensor& x) {
  Tensor out = ops::relu(x);
  return record("relu", out, {x}, [out = detach(out)](const Tensor& g, const NeedsGrad&) {
    return Grads{ops::relu_backward(g, out)};
  });
}

Tensor sigmoid(const Tensor& x) {
  // d sigmoid(x) = out * (1 - out)
  Tensor out = ops::sigmoid(x);
  return record("sigmoid", out, {x}, [out = detach(out)](const Tensor& g, const NeedsGrad&) {
    return Grads{ops::mul(g, ops::mul(out, ops::sub(ones({}, out.dtype(), out.device()), out)))};
  });
}

Tensor tanh(const Tensor& x) {
  // d tanh(x) = 1 - out^2
  Tensor out = ops::tanh(x);
  return record("tanh", out, {x}, [out = detach(out)](const Tensor& g, const NeedsGrad&) {
    return Grads{ops::mul(g, ops::sub(ones({}, out.dtype(), out.device()), ops::mul(out, out)))};
  });
}

Tensor clamp(const Tensor& x, double low, double high) {
  return record("clamp", ops::clamp(x, low, high), {x}, [x = detach(x), low, high](const Tensor& g, const NeedsGrad&) {
    const Tensor zero = zero_scalar(g);
    const Tensor inside_high = ops::where(ops::le(x, full({}, high, x.dtype(), x.device())), g, zero);
    return Grads{ops::where(ops::ge(x, full({}, low, x.dtype(), x.device())), inside_high, zero)};
  });
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  return record("where", ops::where(cond, a, b), {Tensor(), a, b},
                [cond = detach(cond), sa = a.shape(), sb = b.shape()](const Tensor& g, const NeedsGrad& n) {
                  const Tensor zero = zero_scalar(g);
                  return Grads{Tensor(), n[1] ? to_input(true, ops::where(cond, g, zero), sa) : Tensor(),
                               n[2] ? to_input(true, ops::where(cond, zero, g), sb) : Tensor()};
                });
}

// ============================================================== reductions

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  // Every input element contributes once: dx = g broadcast back over the reduced dims.
  return record("sum", ops::sum(x, dims, keepdim), {x}, [shape = x.shape(), dims](const Tensor& g, const NeedsGrad&) {
    return Grads{g.reshape(keepdim_shape(shape, dims)).expand(shape)};
  });
}

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  // dx = g / count, broadcast back over the reduced dims.
  return record("mean", ops::mean(x, dims, keepdim), {x}, [shape = x.shape(), dims](const Tensor& g, const NeedsGrad&) {
    const double count = static_cast<double>(reduced_count(shape, dims));
    return Grads{ops::div(g, count).reshape(keepdim_shape(shape, dims)).expand(shape)};
  });
}

Tensor var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction, bool keepdim) {
  // var = sum((x - mean)^2) / (N - correction); dx = g * 2 (x - mean) / (N - correction)
  return record("var", ops::var(x, dims, correction, keepdim), {x},
                [x = detach(x), dims, correction](const Tensor& g, const NeedsGrad&) {
                  const Shape kept = keepdim_shape(x.shape(), dims);
                  const double denominator = static_cast<double>(reduced_count(x.shape(), dims) - correction);
                  const Tensor centered = ops::sub(x, ops::mean(x, dims, true));
                  return Grads{ops::mul(ops::mul(centered, 2.0 / denominator), g.reshape(kept))};
                });
}

Tensor max(const Tensor& x, int64_t dim, bool keepdim) {
  ops::MaxResult result = ops::max(x, dim, keepdim);
  const int64_t d = wrap_dim(dim, x.dim(), "max");
  return record("max", result.values, {x},
                [shape = x.shape(), d, indices = result.indices](const Tensor& g, const NeedsGrad&) {
                  // One-hot of the chosen index along d, then g placed there.
                  Shape along(shape.size(), 1);
                  along[d] = shape[d];
                  const Tensor positions = arange(shape[d], DType::Int64).to(g.device()).reshape(along);
                  const Shape kept = keepdim_shape(shape, {d});
                  const Tensor chosen = ops::eq(positions, indices.reshape(kept));
                  return Grads{ops::where(chosen, g.reshape(kept), zero_scalar(g))};
                });
}

// ============================================================== linear algebra

Tensor matmul(const Tensor& a, const Tensor& b) {
  // out = a @ b; da = g @ b^T, db = a^T @ g, each summed over broadcast batch dims.
  // 1-D operands are promoted to matrices first (as numpy does), and the gradient demoted after.
  return record("matmul", ops::matmul(a, b), {a, b}, [a = detach(a), b = detach(b)](const Tensor& g, const NeedsGrad& n) {
    const Tensor a2 = a.dim() == 1 ? a.unsqueeze(0) : a;   // (..., M, K)
    const Tensor b2 = b.dim() == 1 ? b.unsqueeze(-1) : b;  // (..., K, N)
    Shape out2 = ops::broadcast_shapes(Shape(a2.shape().begin(), a2.shape().end() - 2),
                                       Shape(b2.shape().begin(), b2.shape().end() - 2));
    out2.push_back(a2.size(-2));
    out2.push_back(b2.size(-1));
    const Tensor g2 = g.reshape(out2);  // (..., M, N)
    Tensor da, db;
    if (n[0]) da = ops::sum_to(ops::matmul(g2, b2.transpose(-1, -2)), a2.shape()).reshape(a.shape());
    if (n[1]) db = ops::sum_to(ops::matmul(a2.transpose(-1, -2), g2), b2.shape()).reshape(b.shape());
    return Grads{da, db};
  });
}

// ============================================================== views and copies

Tensor reshape(const Tensor& x, const Shape& shape) {
  return record("reshape", x.reshape(shape), {x}, [in = x.shape()](const Tensor& g, const NeedsGrad&) {
    return Grads{g.reshape(in)};
  });
}

Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
  Tensor out = x.permute(dims);
  std::vector<int64_t> inverse(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) inverse[wrap_dim(dims[i], x.dim(), "permute")] = static_cast<int64_t>(i);
  return record("permute", out, {x}, [inverse](const Tensor& g, const NeedsGrad&) { return Grads{g.permute(inverse)}; });
}

Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1) {
  return record("transpose", x.transpose(dim0, dim1), {x}, [dim0, dim1](const Tensor& g, const NeedsGrad&) {
    return Grads{g.transpose(dim0, dim1)};
  });
}

// Backward of any view that picks a subset of x: zeros of x's shape, g written into the same view.
template <typename MakeView>
static Tensor record_subset_view(const char* name, const Tensor& x, MakeView make_view) {
  return record(name, make_view(x), {x}, [shape = x.shape(), dtype = x.dtype(), make_view](const Tensor& g, const NeedsGrad&) {
    Tensor dx = zeros(shape, dtype, g.device());
    ops::copy_(make_view(dx), g);
    return Grads{dx};
  });
}

Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length) {
  return record_subset_view("narrow", x, [=](const Tensor& t) { return t.narrow(dim, start, length); });
}

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  return record_subset_view("slice", x, [=](const Tensor& t) { return t.slice(dim, start, end, step); });
}

Tensor select(const Tensor& x, int64_t dim, int64_t index) {
  return record_subset_view("select", x, [=](const Tensor& t) { return t.select(dim, index); });
}

Tensor expand(const Tensor& x, const Shape& shape) {
  return record("expand", x.expand(shape), {x}, [in = x.shape()](const Tensor& g, const NeedsGrad&) {
    return Grads{ops::sum_to(g, in)};
  });
}

Tensor squeeze(const Tensor& x, int64_t dim) {
  const int64_t d = wrap_dim(dim, x.dim(), "squeeze");
  return record("squeeze", x.squeeze(d), {x}, [d](const Tensor& g, const NeedsGrad&) { return Grads{g.unsqueeze(d)}; });
}

Tensor unsqueeze(const Tensor& x, int64_t dim) {
  const int64_t d = wrap_dim(dim, x.dim() + 1, "unsqueeze");
  return record("unsqueeze", x.unsqueeze(d), {x}, [d](const Tensor& g, const NeedsGrad&) { return Grads{g.squeeze(d)}; });
}

Tensor flatten(const Tensor& x, int64_t start_dim, int64_t end_dim) {
  return record("flatten", x.flatten(start_dim, end_dim), {x}, [in = x.shape()](const Tensor& g, const NeedsGrad&) {
    return Grads{g.reshape(in)};
  });
}

Tensor contiguous(const Tensor& x) {
  return record("contiguous", x.contiguous(), {x}, [](const Tensor& g, const NeedsGrad&) { return Grads{g}; });
}

Tensor to(const Tensor& x, DType dtype) {
  return record("to", x.to(dtype), {x}, [from = x.dtype()](const Tensor& g, const NeedsGrad&) { return Grads{g.to(from)}; });
}

}  // namespace medtl::ag
