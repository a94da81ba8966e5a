// CPU kernels for ops/elementwise.h: one templated binary, unary and where loop each, on cpu::for_each_row.
//
// Every op is a small functor (or a lambda made per dtype when it carries a scalar) run through
// binary_op / unary_op / where. Operands are expanded to the broadcast shape (stride 0 where they
// broadcast) and walked by the strided loop; when a run is contiguous (or a broadcast scalar)
// a plain indexed loop over __restrict pointers lets the compiler vectorise it. Each element is
// computed on its own, so results are bit-identical for any thread count.
//
// Each op first hands GPU operands to their backend (backend_for, tensor/backend.h).
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "tensor/backend.h"
#include "tensor/cpu/strided_loop.h"
#include "tensor/dispatch.h"
#include "tensor/ops/elementwise.h"

namespace medtl::ops {
namespace {

// ---------------------------------------------------------------- dtype sets and checks

void check_cpu(const char* op, const Tensor& t, const char* name) {
  MEDTL_CHECK(t.defined(), op, ": ", name, " is an undefined tensor");
  MEDTL_CHECK(t.device().is_cpu(), op, ": the CPU kernel got ", name, " on ", t.device().str(),
              "; move it with .to(Device::cpu()) or call the op on matching devices");
}

void check_same_dtype(const char* op, const Tensor& a, const char* a_name, const Tensor& b, const char* b_name) {
  MEDTL_CHECK(a.dtype() == b.dtype(), op, ": dtypes differ: ", a_name, " is ", dtype_name(a.dtype()), ", ", b_name,
              " is ", dtype_name(b.dtype()), " (no implicit promotion); convert one with .to(DType) first");
}

// The broadcast shape, with `op` in the error message.
Shape broadcast_for(const char* op, const Shape& a, const Shape& b) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t d = 0; d < n; ++d) {
    const int64_t sa = d + a.size() >= n ? a[d + a.size() - n] : 1;
    const int64_t sb = d + b.size() >= n ? b[d + b.size() - n] : 1;
    MEDTL_CHECK(sa == sb || sa == 1 || sb == 1, op, ": shapes ", shape_str(a), " and ", shape_str(b),
                " do not broadcast: at dim ", d, " of the result (dim ", static_cast<int64_t>(d) - static_cast<int64_t>(n),
                " counting from the end) sizes are ", sa, " and ", sb, "; they must be equal or one of them 1");
    out[d] = sa == 1 ? sb : sa;
  }
  return out;
}

// In-place ops write every element of dst once: a dst with a broadcast (stride-0) dim would be
// written from several elements at once.
void check_writable(const char* op, const Tensor& dst) {
  for (int64_t d = 0; d < dst.dim(); ++d)
    MEDTL_CHECK(dst.size(d) <= 1 || dst.stride(d) != 0, op, ": dst ", shape_str(dst.shape()),
                " is an expanded view (dim ", d, " has stride 0); write into a contiguous tensor (.contiguous())");
}

// True when [p, p + bytes_p) and [q, q + bytes_q) share a byte.
bool overlaps(const char* p, int64_t bytes_p, const char* q, int64_t bytes_q) {
  return p < q + bytes_q && q < p + bytes_p;
}

// ---------------------------------------------------------------- loops
// The contiguous loops carry `omp simd`: GCC's -O2 cost model ("very cheap") will not vectorise a
// loop of unknown length, a simd loop it always considers. Every element is independent, and
// vector and scalar code compute the same IEEE results, so this changes speed only.

// Contiguous output; a and b each contiguous (or a single broadcast value when kScalar*).
template <bool kScalarA, bool kScalarB, typename O, typename T, typename F>
void run_binary(O* __restrict out, const T* __restrict a, const T* __restrict b, int64_t n, const F& f) {
  #pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = f(a[kScalarA ? 0 : i], b[kScalarB ? 0 : i]);
}
// x[i] = f(x[i], b[i]): the in-place form (out and a are the same elements).
template <bool kScalarB, typename T, typename F>
void run_binary_in_place(T* __restrict x, const T* __restrict b, int64_t n, const F& f) {
  #pragma omp simd
  for (int64_t i = 0; i < n; ++i) x[i] = f(x[i], b[kScalarB ? 0 : i]);
}
template <typename O, typename T, typename F>
void run_unary(O* __restrict out, const T* __restrict x, int64_t n, const F& f) {
  #pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = f(x[i]);
}
template <typename T, typename F>
void run_unary_in_place(T* __restrict x, int64_t n, const F& f) {
  #pragma omp simd
  for (int64_t i = 0; i < n; ++i) x[i] = f(x[i]);
}

// out = f(a, b) over operands (out, a, b) already expanded to one shape. out may be a itself
// (in-place ops); otherwise out must not overlap a or b, except that overlapping runs fall back
// to the plain strided loop rather than break the __restrict promise.
template <typename O, typename T, typename F>
void binary_loop(const cpu::StridedOperands<3>& ops, const F& f) {
  cpu::for_each_row<3>(ops, [&](const std::array<char*, 3>& p, const std::array<int64_t, 3>& s, int64_t n) {
    constexpr int64_t so = sizeof(O), st = sizeof(T);
    if (s[0] == so && (s[1] == st || s[1] == 0) && (s[2] == st || s[2] == 0)) {
      O* out = reinterpret_cast<O*>(p[0]);
      const T* a = reinterpret_cast<const T*>(p[1]);
      const T* b = reinterpret_cast<const T*>(p[2]);
      const bool b_free = !overlaps(p[0], n * so, p[2], s[2] == 0 ? st : n * st);
      if constexpr (std::is_same_v<O, T>) {
        if (p[0] == p[1] && s[1] == st && b_free) {
          if (s[2] == 0) run_binary_in_place<true>(out, b, n, f);
          else run_binary_in_place<false>(out, b, n, f);
          return;
        }
      }
      if (b_free && !overlaps(p[0], n * so, p[1], s[1] == 0 ? st : n * st)) {
        if (s[1] == st && s[2] == st) run_binary<false, false>(out, a, b, n, f);
        else if (s[1] == st) run_binary<false, true>(out, a, b, n, f);
        else if (s[2] == st) run_binary<true, false>(out, a, b, n, f);
        else run_binary<true, true>(out, a, b, n, f);
        return;
      }
    }
    for (int64_t i = 0; i < n; ++i)
      *reinterpret_cast<O*>(p[0] + i * s[0]) =
          f(*reinterpret_cast<const T*>(p[1] + i * s[1]), *reinterpret_cast<const T*>(p[2] + i * s[2]));
  });
}

// out = f(x) over operands (out, x); out may be x itself.
template <typename O, typename T, typename F>
void unary_loop(const cpu::StridedOperands<2>& ops, const F& f) {
  cpu::for_each_row<2>(ops, [&](const std::array<char*, 2>& p, const std::array<int64_t, 2>& s, int64_t n) {
    if (s[0] == static_cast<int64_t>(sizeof(O)) && s[1] == static_cast<int64_t>(sizeof(T))) {
      if constexpr (std::is_same_v<O, T>) {
        if (p[0] == p[1]) return run_unary_in_place(reinterpret_cast<T*>(p[0]), n, f);
      }
      if (!overlaps(p[0], n * sizeof(O), p[1], n * sizeof(T)))
        return run_unary(reinterpret_cast<O*>(p[0]), reinterpret_cast<const T*>(p[1]), n, f);
    }
    for (int64_t i = 0; i < n; ++i)
      *reinterpret_cast<O*>(p[0] + i * s[0]) = f(*reinterpret_cast<const T*>(p[1] + i * s[1]));
  });
}

// ---------------------------------------------------------------- op drivers

// make(TypeTag<T>) returns the functor for element type T: (T, T) -> O. The result has dtype O.
template <Kinds K, typename Make>
Tensor binary_op(const char* op, const Tensor& a, const Tensor& b, Make make) {
  check_cpu(op, a, "a");
  check_cpu(op, b, "b");
  check_same_dtype(op, a, "a", b, "b");
  const Shape shape = broadcast_for(op, a.shape(), b.shape());
  return dispatch_kinds<K>(a.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const auto f = make(tag);
    using O = std::decay_t<decltype(f(T{}, T{}))>;
    Tensor out = empty(shape, dtype_of<O>());
    const Tensor ea = a.expand(shape), eb = b.expand(shape);
    binary_loop<O, T>(cpu::make_operands<3>({&out, &ea, &eb}), f);
    return out;
  });
}

// make(TypeTag<T>) returns the functor for element type T: T -> O. The result has x's shape.
template <Kinds K, typename Make>
Tensor unary_op(const char* op, const Tensor& x, Make make) {
  check_cpu(op, x, "x");
  return dispatch_kinds<K>(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const auto f = make(tag);
    using O = std::decay_t<decltype(f(T{}))>;
    Tensor out = empty(x.shape(), dtype_of<O>());
    unary_loop<O, T>(cpu::make_operands<2>({&out, &x}), f);
    return out;
  });
}

// dst = f(dst, src) in place; src broadcasts to dst's shape. f: (T, T) -> T.
template <Kinds K, typename Make>
void binary_in_place(const char* op, const Tensor& dst, const Tensor& src, Make make) {
  check_cpu(op, dst, "dst");
  check_cpu(op, src, "src");
  check_same_dtype(op, dst, "dst", src, "src");
  check_writable(op, dst);
  const Shape shape = broadcast_for(op, dst.shape(), src.shape());
  MEDTL_CHECK(shape == dst.shape(), op, ": src ", shape_str(src.shape()), " broadcasts with dst ",
              shape_str(dst.shape()), " to ", shape_str(shape), ", which is not dst's shape (dst cannot grow)");
  dispatch_kinds<K>(dst.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const Tensor esrc = src.expand(shape);
    binary_loop<T, T>(cpu::make_operands<3>({&dst, &dst, &esrc}), make(tag));
  });
}

// A plain functor (templated call operator) as a `make` for the drivers above.
template <typename F> auto functor() { return [](auto) { return F{}; }; }

// Converts a double scalar to T (bool: nonzero; integers truncate, then wrap via int64).
template <typename T> T scalar_as(double value) {
  if constexpr (std::is_same_v<T, bool>) return value != 0.0;
  else if constexpr (std::is_integral_v<T>) return static_cast<T>(static_cast<int64_t>(value));
  else return static_cast<T>(value);
}

// The tensor-op-scalar form of a binary functor: b converted to a's dtype, no tensor allocated.
template <typename F, Kinds K>
Tensor binary_scalar(const char* op, const Tensor& a, double b) {
  return unary_op<K>(op, a, [b](auto tag) {
    using T = typename decltype(tag)::type;
    const T typed = scalar_as<T>(b);
    return [typed](T x) { return F{}(x, typed); };
  });
}

// ---------------------------------------------------------------- functors
// Arithmetic results are cast back to T: C++ promotes int32/uint8 operands to int (uint8 wraps).

struct Add { template <typename T> T operator()(T a, T b) const { return static_cast<T>(a + b); } };
struct Sub { template <typename T> T operator()(T a, T b) const { return static_cast<T>(a - b); } };
struct Mul { template <typename T> T operator()(T a, T b) const { return static_cast<T>(a * b); } };
struct Div { template <typename T> T operator()(T a, T b) const { return a / b; } };
struct Pow { template <typename T> T operator()(T a, T b) const { return std::pow(a, b); } };
// NaN in either operand gives NaN (like torch.maximum); `a != a` is false for integers.
struct Max { template <typename T> T operator()(T a, T b) const { return a != a ? a : (b != b || b > a ? b : a); } };
struct Min { template <typename T> T operator()(T a, T b) const { return a != a ? a : (b != b || b < a ? b : a); } };

// (grad, out) -> grad where relu's output is positive. A NaN output fails `> 0` and gives 0.
struct ReluBackward { template <typename T> T operator()(T g, T out) const { return out > T(0) ? g : T(0); } };

struct Eq { template <typename T> bool operator()(T a, T b) const { return a == b; } };
struct Ne { template <typename T> bool operator()(T a, T b) const { return a != b; } };
struct Lt { template <typename T> bool operator()(T a, T b) const { return a < b; } };
struct Le { template <typename T> bool operator()(T a, T b) const { return a <= b; } };
struct Gt { template <typename T> bool operator()(T a, T b) const { return a > b; } };
struct Ge { template <typename T> bool operator()(T a, T b) const { return a >= b; } };

struct Neg { template <typename T> T operator()(T x) const { return static_cast<T>(-x); } };
struct Exp { template <typename T> T operator()(T x) const { return std::exp(x); } };
struct Log { template <typename T> T operator()(T x) const { return std::log(x); } };
struct Square { template <typename T> T operator()(T x) const { return x * x; } };
struct Sqrt { template <typename T> T operator()(T x) const { return std::sqrt(x); } };
struct Tanh { template <typename T> T operator()(T x) const { return std::tanh(x); } };
struct Abs {
  template <typename T> T operator()(T x) const {
    if constexpr (std::is_unsigned_v<T>) return x;
    else if constexpr (std::is_floating_point_v<T>) return std::fabs(x);
    else return static_cast<T>(x < 0 ? -x : x);
  }
};
// -1, 0 or 1; sign(NaN) = NaN, sign(+-0) = 0.
struct Sign {
  template <typename T> T operator()(T x) const { return x > T(0) ? T(1) : (x < T(0) ? T(-1) : (x == T(0) ? T(0) : x)); }
};
// relu(NaN) = NaN: the NaN fails `x > 0` and is passed through instead of becoming 0.
struct Relu { template <typename T> T operator()(T x) const { return x > T(0) ? x : (x != x ? x : T(0)); } };
// Written on e = exp(-|x|) <= 1, so nothing overflows: sigmoid(1000) = 1, sigmoid(-1000) = 0.
struct Sigmoid {
  template <typename T> T operator()(T x) const {
    const T e = std::exp(-std::fabs(x));
    return x >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
  }
};

}  // namespace

Shape broadcast_shapes(const Shape& a, const Shape& b) { return broadcast_for("broadcast_shapes", a, b); }

// ---- Binary. a: (...), b: (...) -> (broadcast shape) ----
Tensor add(const Tensor& a, const Tensor& b) {
  if (DeviceBackend* gpu = backend_for("add", {&a, &b})) return gpu->binary(BinaryOp::Add, a, b);
  return binary_op<Kinds::Numeric>("add", a, b, functor<Add>());
}
Tensor sub(const Tensor& a, const Tensor& b) {
  if (DeviceBackend* gpu = backend_for("sub", {&a, &b})) return gpu->binary(BinaryOp::Sub, a, b);
  return binary_op<Kinds::Numeric>("sub", a, b, functor<Sub>());
}
Tensor mul(const Tensor& a, const Tensor& b) {
  if (DeviceBackend* gpu = backend_for("mul", {&a, &b})) return gpu->binary(BinaryOp::Mul, a, b);
  return binary_op<Kinds::Numeric>("mul", a, b, functor<Mul>());
}
Tensor div(const Tensor& a, const Tensor& b) {
  if (DeviceBackend* gpu = backend_for("div", {&a, &b})) return gpu->binary(BinaryOp::Div, a, b);
  return binary_op<Kinds::Float>("div", a, b, functor<Div>());
}
Tensor pow(const Tensor& a, const Tensor& b) {
  if (DeviceBackend* gpu = backend_for("pow", {&a, &b})) return gpu->binary(BinaryOp::Pow, a, b);
  return binary_op<Kinds::Float>("pow", a, b, functor<Pow>());
}
Tensor maximum(const Tensor& a, const Tensor& b) {
  if (DeviceBackend* gpu = backend_for("maximum", {&a, &b})) return gpu->binary(BinaryOp::Maximum, a, b);
  return binary_op<Kinds::Numeric>("maximum", a, b, functor<Max>());
}
Tensor minimum(const Tensor& a, const Tensor& b) {
  if (DeviceBackend* gpu = backend_for("minimum", {&a, &b})) return gpu->binary(BinaryOp::Minimum, a, b);
  return binary_op<Kinds::Numeric>("minimum", a, b, functor<Min>());
}

// ---- Scalar right-hand side. a: (...) -> (same shape) ----
Tensor add(const Tensor& a, double b) {
  if (DeviceBackend* gpu = backend_for("add", {&a})) return gpu->binary_scalar(BinaryOp::Add, a, b);
  return binary_scalar<Add, Kinds::Numeric>("add", a, b);
}
Tensor sub(const Tensor& a, double b) {
  if (DeviceBackend* gpu = backend_for("sub", {&a})) return gpu->binary_scalar(BinaryOp::Sub, a, b);
  return binary_scalar<Sub, Kinds::Numeric>("sub", a, b);
}
Tensor mul(const Tensor& a, double b) {
  if (DeviceBackend* gpu = backend_for("mul", {&a})) return gpu->binary_scalar(BinaryOp::Mul, a, b);
  return binary_scalar<Mul, Kinds::Numeric>("mul", a, b);
}
Tensor div(const Tensor& a, double b) {
  if (DeviceBackend* gpu = backend_for("div", {&a})) return gpu->binary_scalar(BinaryOp::Div, a, b);
  return binary_scalar<Div, Kinds::Float>("div", a, b);
}

// Exponents 2 and 0.5 take cheaper exact forms (sqrt differs from pow only at -0 and -inf).
Tensor pow(const Tensor& a, double exponent) {
  if (DeviceBackend* gpu = backend_for("pow", {&a})) return gpu->binary_scalar(BinaryOp::Pow, a, exponent);
  if (exponent == 2.0) return unary_op<Kinds::Float>("pow", a, functor<Square>());
  if (exponent == 0.5) return unary_op<Kinds::Float>("pow", a, functor<Sqrt>());
  return unary_op<Kinds::Float>("pow", a, [exponent](auto tag) {
    using T = typename decltype(tag)::type;
    return [e = static_cast<T>(exponent)](T x) { return Pow{}(x, e); };
  });
}

// ---- Comparisons -> Bool. ----
Tensor eq(const Tensor& a, const Tensor& b) {
  if (DeviceBackend* gpu = backend_for("eq", {&a, &b})) return gpu->compare(CompareOp::Eq, a, b);
  return binary_op<Kinds::All>("eq", a, b, functor<Eq>());
}
Tensor ne(const Tensor& a, const Tensor& b) {
  if (DeviceBackend* gpu = backend_for("ne", {&a, &b})) return gpu->compare(CompareOp::Ne, a, b);
  return binary_op<Kinds::All>("ne", a, b, functor<Ne>());
}
Tensor lt(const Tensor& a, const Tensor& b) {
  if (DeviceBackend* gpu = backend_for("lt", {&a, &b})) return gpu->compare(CompareOp::Lt, a, b);
  return binary_op<Kinds::All>("lt", a, b, functor<Lt>());
}
Tensor le(const Tensor& a, const Tensor& b) {
  if (DeviceBackend* gpu = backend_for("le", {&a, &b})) return gpu->compare(CompareOp::Le, a, b);
  return binary_op<Kinds::All>("le", a, b, functor<Le>());
}
Tensor gt(const Tensor& a, const Tensor& b) {
  if (DeviceBackend* gpu = backend_for("gt", {&a, &b})) return gpu->compare(CompareOp::Gt, a, b);
  return binary_op<Kinds::All>("gt", a, b, functor<Gt>());
}
Tensor ge(const Tensor& a, const Tensor& b) {
  if (DeviceBackend* gpu = backend_for("ge", {&a, &b})) return gpu->compare(CompareOp::Ge, a, b);
  return binary_op<Kinds::All>("ge", a, b, functor<Ge>());
}

// Scalar comparisons are made in double, so gt(int_tensor, 0.5) means x > 0.5, not x > 0.
Tensor gt(const Tensor& a, double b) {
  if (DeviceBackend* gpu = backend_for("gt", {&a})) return gpu->compare_scalar(CompareOp::Gt, a, b);
  return unary_op<Kinds::Numeric>("gt", a, [b](auto tag) {
    return [b](typename decltype(tag)::type x) { return Gt{}(static_cast<double>(x), b); };
  });
}
Tensor lt(const Tensor& a, double b) {
  if (DeviceBackend* gpu = backend_for("lt", {&a})) return gpu->compare_scalar(CompareOp::Lt, a, b);
  return unary_op<Kinds::Numeric>("lt", a, [b](auto tag) {
    return [b](typename decltype(tag)::type x) { return Lt{}(static_cast<double>(x), b); };
  });
}

// ---- Unary. x: (...) -> (same shape) ----
Tensor neg(const Tensor& x) {
  if (DeviceBackend* gpu = backend_for("neg", {&x})) return gpu->unary(UnaryOp::Neg, x, 0.0, 0.0);
  return unary_op<Kinds::Numeric>("neg", x, functor<Neg>());
}
Tensor exp(const Tensor& x) {
  if (DeviceBackend* gpu = backend_for("exp", {&x})) return gpu->unary(UnaryOp::Exp, x, 0.0, 0.0);
  return unary_op<Kinds::Float>("exp", x, functor<Exp>());
}
Tensor log(const Tensor& x) {
  if (DeviceBackend* gpu = backend_for("log", {&x})) return gpu->unary(UnaryOp::Log, x, 0.0, 0.0);
  return unary_op<Kinds::Float>("log", x, functor<Log>());
}
Tensor sqrt(const Tensor& x) {
  if (DeviceBackend* gpu = backend_for("sqrt", {&x})) return gpu->unary(UnaryOp::Sqrt, x, 0.0, 0.0);
  return unary_op<Kinds::Float>("sqrt", x, functor<Sqrt>());
}
Tensor abs(const Tensor& x) {
  if (DeviceBackend* gpu = backend_for("abs", {&x})) return gpu->unary(UnaryOp::Abs, x, 0.0, 0.0);
  return unary_op<Kinds::Numeric>("abs", x, functor<Abs>());
}
Tensor sign(const Tensor& x) {
  if (DeviceBackend* gpu = backend_for("sign", {&x})) return gpu->unary(UnaryOp::Sign, x, 0.0, 0.0);
  return unary_op<Kinds::Numeric>("sign", x, functor<Sign>());
}
Tensor relu(const Tensor& x) {
  if (DeviceBackend* gpu = backend_for("relu", {&x})) return gpu->unary(UnaryOp::Relu, x, 0.0, 0.0);
  return unary_op<Kinds::Numeric>("relu", x, functor<Relu>());
}
Tensor relu_backward(const Tensor& grad, const Tensor& out) {
  if (DeviceBackend* gpu = backend_for("relu_backward", {&grad, &out})) return gpu->relu_backward(grad, out);
  return binary_op<Kinds::Float>("relu_backward", grad, out, functor<ReluBackward>());
}
Tensor sigmoid(const Tensor& x) {
  if (DeviceBackend* gpu = backend_for("sigmoid", {&x})) return gpu->unary(UnaryOp::Sigmoid, x, 0.0, 0.0);
  return unary_op<Kinds::Float>("sigmoid", x, functor<Sigmoid>());
}
Tensor tanh(const Tensor& x) {
  if (DeviceBackend* gpu = backend_for("tanh", {&x})) return gpu->unary(UnaryOp::Tanh, x, 0.0, 0.0);
  return unary_op<Kinds::Float>("tanh", x, functor<Tanh>());
}

Tensor clamp(const Tensor& x, double low, double high) {
  MEDTL_CHECK(!(low > high), "clamp: low ", low, " is greater than high ", high);
  if (DeviceBackend* gpu = backend_for("clamp", {&x})) return gpu->unary(UnaryOp::Clamp, x, low, high);
  return unary_op<Kinds::Numeric>("clamp", x, [low, high](auto tag) {
    using T = typename decltype(tag)::type;
    // Bounds are clipped to T's range first, so clamp(uint8, -1, 300) is well defined.
    const double lowest = static_cast<double>(std::numeric_limits<T>::lowest());
    const double highest = static_cast<double>(std::numeric_limits<T>::max());
    const T lo = static_cast<T>(std::clamp(low, lowest, highest));
    const T hi = static_cast<T>(std::clamp(high, lowest, highest));
    // NaN fails both comparisons and stays NaN.
    return [lo, hi](T v) { return v < lo ? lo : (v > hi ? hi : v); };
  });
}

// cond: (...), a: (...), b: (...) -> (broadcast of all three), dtype of a and b.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  if (DeviceBackend* gpu = backend_for("where", {&cond, &a, &b})) return gpu->where(cond, a, b);
  check_cpu("where", cond, "cond");
  check_cpu("where", a, "a");
  check_cpu("where", b, "b");
  check_same_dtype("where", a, "a", b, "b");
  const Shape shape = broadcast_for("where", broadcast_for("where", cond.shape(), a.shape()), b.shape());
  Tensor out = empty(shape, a.dtype());
  const Tensor ec = cond.expand(shape), ea = a.expand(shape), eb = b.expand(shape);
  const auto ops = cpu::make_operands<4>({&out, &ec, &ea, &eb});
  dispatch_kinds<Kinds::All>(cond.dtype(), "where (cond)", [&](auto cond_tag) {
    using C = typename decltype(cond_tag)::type;
    dispatch_kinds<Kinds::All>(a.dtype(), "where", [&](auto tag) {
      using T = typename decltype(tag)::type;
      cpu::for_each_row<4>(ops, [](const std::array<char*, 4>& p, const std::array<int64_t, 4>& s, int64_t n) {
        constexpr int64_t sc = sizeof(C), st = sizeof(T);
        if (s[0] == st && s[1] == sc && s[2] == st && s[3] == st) {
          T* __restrict o = reinterpret_cast<T*>(p[0]);
          const C* __restrict c = reinterpret_cast<const C*>(p[1]);
          const T* __restrict x = reinterpret_cast<const T*>(p[2]);
          const T* __restrict y = reinterpret_cast<const T*>(p[3]);
          #pragma omp simd
          for (int64_t i = 0; i < n; ++i) {
            const T xi = x[i], yi = y[i];  // both loaded, so the select needs no branch
            o[i] = c[i] != C(0) ? xi : yi;
          }
          return;
        }
        for (int64_t i = 0; i < n; ++i)
          *reinterpret_cast<T*>(p[0] + i * s[0]) = *reinterpret_cast<const C*>(p[1] + i * s[1]) != C(0)
                                                       ? *reinterpret_cast<const T*>(p[2] + i * s[2])
                                                       : *reinterpret_cast<const T*>(p[3] + i * s[3]);
      });
    });
  });
  return out;
}

// ---- By op code. ----
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  switch (op) {
    case BinaryOp::Add: return add(a, b);
    case BinaryOp::Sub: return sub(a, b);
    case BinaryOp::Mul: return mul(a, b);
    case BinaryOp::Div: return div(a, b);
    case BinaryOp::Pow: return pow(a, b);
    case BinaryOp::Maximum: return maximum(a, b);
    case BinaryOp::Minimum: return minimum(a, b);
  }
  MEDTL_CHECK(false, "binary: unknown op code ", static_cast<int>(op));
  return Tensor();
}

Tensor compare(CompareOp op, const Tensor& a, const Tensor& b) {
  switch (op) {
    case CompareOp::Eq: return eq(a, b);
    case CompareOp::Ne: return ne(a, b);
    case CompareOp::Lt: return lt(a, b);
    case CompareOp::Le: return le(a, b);
    case CompareOp::Gt: return gt(a, b);
    case CompareOp::Ge: return ge(a, b);
  }
  MEDTL_CHECK(false, "compare: unknown op code ", static_cast<int>(op));
  return Tensor();
}

Tensor unary(UnaryOp op, const Tensor& x, double low, double high) {
  switch (op) {
    case UnaryOp::Neg: return neg(x);
    case UnaryOp::Exp: return exp(x);
    case UnaryOp::Log: return log(x);
    case UnaryOp::Sqrt: return sqrt(x);
    case UnaryOp::Abs: return abs(x);
    case UnaryOp::Sign: return sign(x);
    case UnaryOp::Relu: return relu(x);
    case UnaryOp::Sigmoid: return sigmoid(x);
    case UnaryOp::Tanh: return tanh(x);
    case UnaryOp::Clamp: return clamp(x, low, high);
  }
  MEDTL_CHECK(false, "unary: unknown op code ", static_cast<int>(op));
  return Tensor();
}

// ---- In place. dst: (...), src broadcasts to dst's shape. ----
void add_(const Tensor& dst, const Tensor& src) {
  if (DeviceBackend* gpu = backend_for("add_", {&dst, &src})) return gpu->add_scaled_(dst, src, 1.0);
  binary_in_place<Kinds::Numeric>("add_", dst, src, functor<Add>());
}

void add_scaled_(const Tensor& dst, const Tensor& src, double alpha) {
  if (DeviceBackend* gpu = backend_for("add_scaled_", {&dst, &src})) return gpu->add_scaled_(dst, src, alpha);
  binary_in_place<Kinds::Float>("add_scaled_", dst, src, [alpha](auto tag) {
    using T = typename decltype(tag)::type;
    return [a = static_cast<T>(alpha)](T d, T s) { return d + a * s; };
  });
}

void mul_(const Tensor& dst, double factor) {
  if (DeviceBackend* gpu = backend_for("mul_", {&dst})) return gpu->mul_(dst, factor);
  check_cpu("mul_", dst, "dst");
  check_writable("mul_", dst);
  dispatch_kinds<Kinds::Numeric>(dst.dtype(), "mul_", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T typed = scalar_as<T>(factor);
    unary_loop<T, T>(cpu::make_operands<2>({&dst, &dst}), [typed](T x) { return Mul{}(x, typed); });
  });
}

}  // namespace medtl::ops
