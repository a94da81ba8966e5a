// Generic elementwise math on GPU tensors (strided_cuda.h): binary and scalar ops, comparisons,
// unary ops and relu_backward, each a functor run by detail::strided_kernel. The functors are the
// CPU's (elementwise_cpu.cc) written with the _rn intrinsics of strided_kernels.h, so that every
// op but the transcendental ones gives the CPU's bits.
#include <algorithm>
#include <limits>

#include "tensor/cuda/elementwise_cuda.h"
#include "tensor/cuda/strided_cuda.h"
#include "tensor/cuda/strided_kernels.h"

namespace medtl::cuda {
namespace {

using detail::element_ptr;
using detail::launch_strided;

// ---------------------------------------------------------------- functors (as elementwise_cpu.cc)

struct AddOp { template <typename T> __device__ T operator()(T a, T b) const { return detail::add_rn(a, b); } };
struct SubOp { template <typename T> __device__ T operator()(T a, T b) const { return detail::sub_rn(a, b); } };
struct MulOp { template <typename T> __device__ T operator()(T a, T b) const { return detail::mul_rn(a, b); } };
struct DivOp { template <typename T> __device__ T operator()(T a, T b) const { return detail::div_rn(a, b); } };
// CUDA's powf/pow: a few ulp from glibc's.
struct PowOp {
  template <typename T> __device__ T operator()(T a, T b) const {
    if constexpr (std::is_same_v<T, float>) return powf(a, b);
    else return pow(a, b);
  }
};
// NaN in either operand gives NaN (like torch.maximum); `a != a` is false for integers.
struct MaxOp { template <typename T> __device__ T operator()(T a, T b) const { return a != a ? a : (b != b || b > a ? b : a); } };
struct MinOp { template <typename T> __device__ T operator()(T a, T b) const { return a != a ? a : (b != b || b < a ? b : a); } };
// (grad, out) -> grad where relu's output is positive; a NaN output fails `> 0` and gives 0.
struct ReluBackwardOp { template <typename T> __device__ T operator()(T g, T out) const { return out > T(0) ? g : T(0); } };

struct EqOp { template <typename T> __device__ bool operator()(T a, T b) const { return a == b; } };
struct NeOp { template <typename T> __device__ bool operator()(T a, T b) const { return a != b; } };
struct LtOp { template <typename T> __device__ bool operator()(T a, T b) const { return a < b; } };
struct LeOp { template <typename T> __device__ bool operator()(T a, T b) const { return a <= b; } };
struct GtOp { template <typename T> __device__ bool operator()(T a, T b) const { return a > b; } };
struct GeOp { template <typename T> __device__ bool operator()(T a, T b) const { return a >= b; } };

struct NegOp {
  template <typename T> __device__ T operator()(T x) const {
    if constexpr (std::is_floating_point_v<T>) return -x;  // a sign flip: exact, -0 included
    else return detail::sub_rn(T(0), x);                    // wraps, as the CPU's int negation
  }
};
struct ExpOp {
  template <typename T> __device__ T operator()(T x) const {
    if constexpr (std::is_same_v<T, float>) return expf(x);
    else return exp(x);
  }
};
struct LogOp {
  template <typename T> __device__ T operator()(T x) const {
    if constexpr (std::is_same_v<T, float>) return logf(x);
    else return log(x);
  }
};
struct TanhOp {
  template <typename T> __device__ T operator()(T x) const {
    if constexpr (std::is_same_v<T, float>) return tanhf(x);
    else return tanh(x);
  }
};
struct SqrtOp { template <typename T> __device__ T operator()(T x) const { return detail::sqrt_rn(x); } };
struct SquareOp { template <typename T> __device__ T operator()(T x) const { return detail::mul_rn(x, x); } };
struct AbsOp {
  template <typename T> __device__ T operator()(T x) const {
    if constexpr (std::is_unsigned_v<T>) return x;
    else if constexpr (std::is_same_v<T, float>) return fabsf(x);
    else if constexpr (std::is_same_v<T, double>) return fabs(x);
    else return x < 0 ? detail::sub_rn(T(0), x) : x;
  }
};
// -1, 0 or 1; sign(NaN) = NaN, sign(+-0) = 0.
struct SignOp {
  template <typename T> __device__ T operator()(T x) const {
    if constexpr (std::is_unsigned_v<T>) return x > T(0) ? T(1) : T(0);
    else return x > T(0) ? T(1) : (x < T(0) ? static_cast<T>(-1) : (x == T(0) ? T(0) : x));
  }
};
// relu(NaN) = NaN: the NaN fails `x > 0` and is passed through instead of becoming 0.
struct ReluOp { template <typename T> __device__ T operator()(T x) const { return x > T(0) ? x : (x != x ? x : T(0)); } };
// The CPU's overflow-free form on e = exp(-|x|) <= 1; exp is CUDA's (a few ulp from glibc's).
struct SigmoidOp {
  template <typename T> __device__ T operator()(T x) const {
    const T e = ExpOp{}(-AbsOp{}(x));
    const T one_plus = detail::add_rn(T(1), e);
    return x >= T(0) ? detail::div_rn(T(1), one_plus) : detail::div_rn(e, one_plus);
  }
};

// x op b for a scalar b already in x's dtype.
template <typename Op, typename T>
struct WithScalar {
  T b;
  __device__ T operator()(T x) const { return Op{}(x, b); }
};
// x op b compared in double (gt(int, 0.5) is x > 0.5).
template <typename Op>
struct CompareWithDouble {
  double b;
  template <typename T> __device__ bool operator()(T x) const { return Op{}(static_cast<double>(x), b); }
};
template <typename T>
struct ClampOp {
  T lo, hi;
  __device__ T operator()(T v) const { return v < lo ? lo : (v > hi ? hi : v); }  // NaN stays NaN
};

template <typename O, typename T, typename Op>
struct BinaryApply {
  O* out;
  const T* a;
  const T* b;
  Op op;
  __device__ void operator()(const int64_t* off) const { out[off[0]] = op(a[off[1]], b[off[2]]); }
};

template <typename O, typename T, typename Op>
struct UnaryApply {
  O* out;
  const T* x;
  Op op;
  __device__ void operator()(const int64_t* off) const { out[off[0]] = op(x[off[1]]); }
};

// ---------------------------------------------------------------- drivers

// out = op(a, b) broadcast; out is bool when kBool (comparisons), else a's dtype.
template <Kinds K, bool kBool, typename Op>
Tensor binary_driver(const char* name, const Tensor& a, const Tensor& b, Op op) {
  detail::check_gpu(name, "a", a);
  detail::check_gpu(name, "b", b);
  detail::check_same_device(name, a, b);
  detail::check_same_dtype(name, a, "a", b, "b");
  const Shape shape = broadcast_shape(name, a.shape(), b.shape());
  init();
  detail::DeviceGuard guard(a.device().index);
  Tensor out;
  dispatch_kinds<K>(a.dtype(), name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using O = std::conditional_t<kBool, bool, T>;
    out = empty(shape, dtype_of<O>(), a.device());
    const auto idx = detail::indexer_over<3>(name, shape, {&out, &a, &b});
    launch_strided<3>(idx, BinaryApply<O, T, Op>{element_ptr<O>(out), element_ptr<T>(a), element_ptr<T>(b), op});
  });
  return out;
}

// out = make(TypeTag<T>)(x) elementwise; out is bool when kBool, else x's dtype.
template <Kinds K, bool kBool, typename Make>
Tensor unary_driver(const char* name, const Tensor& x, Make make) {
  detail::check_gpu(name, "x", x);
  init();
  detail::DeviceGuard guard(x.device().index);
  Tensor out;
  dispatch_kinds<K>(x.dtype(), name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using O = std::conditional_t<kBool, bool, T>;
    const auto op = make(tag);
    using Op = std::decay_t<decltype(op)>;
    out = empty(x.shape(), dtype_of<O>(), x.device());
    const auto idx = detail::indexer_over<2>(name, x.shape(), {&out, &x});
    launch_strided<2>(idx, UnaryApply<O, T, Op>{element_ptr<O>(out), element_ptr<T>(x), op});
  });
  return out;
}

// A functor that needs no per-dtype state, as a `make` for unary_driver.
template <typename Op> auto plain() { return [](auto) { return Op{}; }; }

// The tensor-op-scalar form: b converted to x's dtype as the CPU's scalar_as.
template <Kinds K, typename Op>
Tensor scalar_driver(const char* name, const Tensor& x, double b) {
  return unary_driver<K, false>(name, x, [b](auto tag) {
    using T = typename decltype(tag)::type;
    return WithScalar<Op, T>{detail::scalar_as<T>(b)};
  });
}

template <typename Op>
Tensor compare_scalar_driver(const char* name, const Tensor& x, double b) {
  return unary_driver<Kinds::Numeric, true>(name, x, [b](auto) { return CompareWithDouble<Op>{b}; });
}

}  // namespace

// a: (...), b: (...) -> (broadcast shape)
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  switch (op) {
    case BinaryOp::Add: return binary_driver<Kinds::Numeric, false>("cuda::add", a, b, AddOp{});
    case BinaryOp::Sub: return binary_driver<Kinds::Numeric, false>("cuda::sub", a, b, SubOp{});
    case BinaryOp::Mul: return binary_driver<Kinds::Numeric, false>("cuda::mul", a, b, MulOp{});
    case BinaryOp::Div: return binary_driver<Kinds::Float, false>("cuda::div", a, b, DivOp{});
    case BinaryOp::Pow: return binary_driver<Kinds::Float, false>("cuda::pow", a, b, PowOp{});
    case BinaryOp::Maximum: return binary_driver<Kinds::Numeric, false>("cuda::maximum", a, b, MaxOp{});
    case BinaryOp::Minimum: return binary_driver<Kinds::Numeric, false>("cuda::minimum", a, b, MinOp{});
  }
  MEDTL_CHECK(false, "cuda::binary: unknown BinaryOp ", static_cast<int>(op));
  return Tensor();
}

// a: (...) -> (same shape)
Tensor binary_scalar(BinaryOp op, const Tensor& a, double b) {
  switch (op) {
    case BinaryOp::Add: return scalar_driver<Kinds::Numeric, AddOp>("cuda::add", a, b);
    case BinaryOp::Sub: return scalar_driver<Kinds::Numeric, SubOp>("cuda::sub", a, b);
    case BinaryOp::Mul: return scalar_driver<Kinds::Numeric, MulOp>("cuda::mul", a, b);
    case BinaryOp::Div: return scalar_driver<Kinds::Float, DivOp>("cuda::div", a, b);
    case BinaryOp::Maximum: return scalar_driver<Kinds::Numeric, MaxOp>("cuda::maximum", a, b);
    case BinaryOp::Minimum: return scalar_driver<Kinds::Numeric, MinOp>("cuda::minimum", a, b);
    case BinaryOp::Pow:
      // The CPU's exact forms for 2 and 0.5 (sqrt differs from pow only at -0 and -inf).
      if (b == 2.0) return unary_driver<Kinds::Float, false>("cuda::pow", a, plain<SquareOp>());
      if (b == 0.5) return unary_driver<Kinds::Float, false>("cuda::pow", a, plain<SqrtOp>());
      return scalar_driver<Kinds::Float, PowOp>("cuda::pow", a, b);
  }
  MEDTL_CHECK(false, "cuda::binary_scalar: unknown BinaryOp ", static_cast<int>(op));
  return Tensor();
}

// a: (...), b: (...) -> (broadcast shape), Bool
Tensor compare(CompareOp op, const Tensor& a, const Tensor& b) {
  switch (op) {
    case CompareOp::Eq: return binary_driver<Kinds::All, true>("cuda::eq", a, b, EqOp{});
    case CompareOp::Ne: return binary_driver<Kinds::All, true>("cuda::ne", a, b, NeOp{});
    case CompareOp::Lt: return binary_driver<Kinds::All, true>("cuda::lt", a, b, LtOp{});
    case CompareOp::Le: return binary_driver<Kinds::All, true>("cuda::le", a, b, LeOp{});
    case CompareOp::Gt: return binary_driver<Kinds::All, true>("cuda::gt", a, b, GtOp{});
    case CompareOp::Ge: return binary_driver<Kinds::All, true>("cuda::ge", a, b, GeOp{});
  }
  MEDTL_CHECK(false, "cuda::compare: unknown CompareOp ", static_cast<int>(op));
  return Tensor();
}

// a: (...) -> (same shape), Bool
Tensor compare_scalar(CompareOp op, const Tensor& a, double b) {
  switch (op) {
    case CompareOp::Eq: return compare_scalar_driver<EqOp>("cuda::eq", a, b);
    case CompareOp::Ne: return compare_scalar_driver<NeOp>("cuda::ne", a, b);
    case CompareOp::Lt: return compare_scalar_driver<LtOp>("cuda::lt", a, b);
    case CompareOp::Le: return compare_scalar_driver<LeOp>("cuda::le", a, b);
    case CompareOp::Gt: return compare_scalar_driver<GtOp>("cuda::gt", a, b);
    case CompareOp::Ge: return compare_scalar_driver<GeOp>("cuda::ge", a, b);
  }
  MEDTL_CHECK(false, "cuda::compare_scalar: unknown CompareOp ", static_cast<int>(op));
  return Tensor();
}

// x: (...) -> (same shape)
Tensor unary(UnaryOp op, const Tensor& x, double low, double high) {
  switch (op) {
    case UnaryOp::Neg: return unary_driver<Kinds::Numeric, false>("cuda::neg", x, plain<NegOp>());
    case UnaryOp::Exp: return unary_driver<Kinds::Float, false>("cuda::exp", x, plain<ExpOp>());
    case UnaryOp::Log: return unary_driver<Kinds::Float, false>("cuda::log", x, plain<LogOp>());
    case UnaryOp::Sqrt: return unary_driver<Kinds::Float, false>("cuda::sqrt", x, plain<SqrtOp>());
    case UnaryOp::Abs: return unary_driver<Kinds::Numeric, false>("cuda::abs", x, plain<AbsOp>());
    case UnaryOp::Sign: return unary_driver<Kinds::Numeric, false>("cuda::sign", x, plain<SignOp>());
    case UnaryOp::Relu: return unary_driver<Kinds::Numeric, false>("cuda::relu", x, plain<ReluOp>());
    case UnaryOp::Sigmoid: return unary_driver<Kinds::Float, false>("cuda::sigmoid", x, plain<SigmoidOp>());
    case UnaryOp::Tanh: return unary_driver<Kinds::Float, false>("cuda::tanh", x, plain<TanhOp>());
    case UnaryOp::Clamp:
      MEDTL_CHECK(!(low > high), "cuda::clamp: low ", low, " is greater than high ", high);
      return unary_driver<Kinds::Numeric, false>("cuda::clamp", x, [low, high](auto tag) {
        using T = typename decltype(tag)::type;
        // Bounds clipped to T's range first (clamp(uint8, -1, 300) is well defined), as the CPU.
        const double lowest = static_cast<double>(std::numeric_limits<T>::lowest());
        const double highest = static_cast<double>(std::numeric_limits<T>::max());
        return ClampOp<T>{static_cast<T>(std::clamp(low, lowest, highest)),
                          static_cast<T>(std::clamp(high, lowest, highest))};
      });
  }
  MEDTL_CHECK(false, "cuda::unary: unknown UnaryOp ", static_cast<int>(op));
  return Tensor();
}

// grad: (...), out: (...) -> (broadcast shape). Declared in elementwise_cuda.h and strided_cuda.h.
Tensor relu_backward(const Tensor& grad, const Tensor& out) {
  return binary_driver<Kinds::Float, false>("cuda::relu_backward", grad, out, ReluBackwardOp{});
}

}  // namespace medtl::cuda
