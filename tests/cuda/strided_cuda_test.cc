// The generic GPU kernels (strided_cuda.h, reduce_dims_cuda.h) against the CPU ops on the same
// inputs: every op and dtype, broadcasting, transposed / narrowed / expanded operands, NaN and
// signed zeros, empty and 0-dim tensors; bit-identical where the header promises it, a few ulp for
// the transcendental ops, 1e-5 for float32 sums; reductions bit-identical run to run and layout to
// layout. Skips, saying why, without --config=cuda or without a GPU (the argument checks run).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "tensor/backend.h"
#include "tensor/cuda/device_info.h"
#include "tensor/cuda/reduce_dims_cuda.h"
#include "tensor/cuda/strided_cuda.h"
#include "tensor/cuda/tensor_cuda.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/reduce.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/cuda/strided_test_util.h"

namespace medtl {
namespace {

#ifndef MEDTL_WITH_CUDA

TEST(StridedCuda, SkippedWithoutCudaBuild) { GTEST_SKIP() << MEDTL_NO_CUDA_BUILD_MESSAGE; }

#else

using strided_test::normwise_close;
using strided_test::near;
using strided_test::same;
using strided_test::values;

Tensor gpu(const Tensor& t) { return cuda::copy_to_device(t); }
Tensor cpu(const Tensor& t) { return cuda::copy_to_host(t); }
// empty() on the GPU needs the allocator registered (cuda::init); the backend's functions do it.
Tensor gpu_empty(const Shape& shape, DType dtype) {
  cuda::init();
  return empty(shape, dtype, Device::cuda(0));
}

const DType kAllDtypes[] = {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16,
                            DType::Int64,   DType::Int32,   DType::UInt8,   DType::Bool};
const DType kArith[] = {DType::Float32, DType::Float64, DType::Int64, DType::Int32, DType::UInt8, DType::Bool};
const DType kNumeric[] = {DType::Float32, DType::Float64, DType::Int64, DType::Int32, DType::UInt8};
const DType kFloat[] = {DType::Float32, DType::Float64};

// Operand layouts: a CPU tensor and the same view of its GPU copy.
struct Pair {
  Tensor host, device;
  std::string what;
};

// `base` (CPU) in several layouts of shape `shape`: contiguous, transposed, narrowed, expanded.
// base must have shape `shape` except that expanded cases need a size-1 dim to widen.
std::vector<Pair> layouts(const Shape& shape, DType dtype, uint64_t seed, bool specials = true) {
  std::vector<Pair> out;
  const Tensor c = values(shape, dtype, seed, specials);
  out.push_back({c, gpu(c), "contiguous"});
  if (shape.size() >= 2) {
    // Stored transposed: same logical values, strides of the transpose.
    Shape t_shape = shape;
    std::swap(t_shape[0], t_shape[1]);
    const Tensor t = values(t_shape, dtype, seed + 1, specials);
    out.push_back({t.transpose(0, 1), gpu(t).transpose(0, 1), "transposed"});
    // Narrowed out of a wider tensor (dim 1 padded by 3 on each side).
    Shape wide = shape;
    wide[1] += 6;
    const Tensor w = values(wide, dtype, seed + 2, specials);
    out.push_back({w.narrow(1, 3, shape[1]), gpu(w).narrow(1, 3, shape[1]), "narrowed"});
  }
  if (!shape.empty() && shape_numel(shape) > 0) {
    // Expanded: every row of dim 0 the same (stride 0).
    Shape one = shape;
    one[0] = 1;
    const Tensor e = values(one, dtype, seed + 3, specials);
    out.push_back({e.expand(shape), gpu(e).expand(shape), "expanded"});
  }
  return out;
}

// Shape pairs that broadcast (and a few degenerate ones).
const std::vector<std::pair<Shape, Shape>> kBroadcastShapes = {
    {{3, 5}, {3, 5}}, {{2, 3, 4}, {4}}, {{3, 1}, {1, 5}}, {{}, {2, 3}}, {{4, 3}, {}}, {{0, 3}, {1, 3}},
    {{}, {}},         {{257, 129}, {129}}, {{2, 1, 3, 1}, {5, 1, 4}},
};

// ---------------------------------------------------------------- argument checks (no GPU needed)

TEST(StridedCuda, RejectsCpuOperandsBeforeTouchingTheGpu) {
  const Tensor c = ones({4});
  EXPECT_ERROR_CONTAINS(cuda::binary(BinaryOp::Add, c, c), "cuda::add: a must be on a GPU");
  EXPECT_ERROR_CONTAINS(cuda::binary_scalar(BinaryOp::Pow, c, 2.0), "cuda::pow: x must be on a GPU");
  EXPECT_ERROR_CONTAINS(cuda::compare(CompareOp::Lt, c, c), "cuda::lt: a must be on a GPU");
  EXPECT_ERROR_CONTAINS(cuda::unary(UnaryOp::Exp, c, 0, 0), "cuda::exp: x must be on a GPU");
  EXPECT_ERROR_CONTAINS(cuda::unary(UnaryOp::Clamp, c, 2, 1), "low 2 is greater than high 1");
  EXPECT_ERROR_CONTAINS(cuda::where(c, c, c), "cuda::where: cond must be on a GPU");
  EXPECT_ERROR_CONTAINS(cuda::copy_(c, c), "cuda::copy_: dst must be on a GPU");
  EXPECT_ERROR_CONTAINS(cuda::fill_(c, 1.0), "cuda::fill_: dst must be on a GPU");
  EXPECT_ERROR_CONTAINS(cuda::add_scaled_(c, c, 2.0), "cuda::add_scaled_: dst must be on a GPU");
  EXPECT_ERROR_CONTAINS(cuda::mul_(c, 2.0), "cuda::mul_: dst must be on a GPU");
  EXPECT_ERROR_CONTAINS(cuda::sum(c, {}, false), "cuda::sum: x must be on a GPU");
  EXPECT_ERROR_CONTAINS(cuda::var(c, {}, 1, false), "cuda::var: x must be on a GPU");
  EXPECT_ERROR_CONTAINS(cuda::max(c, 0, false), "cuda::max: x must be on a GPU");
  EXPECT_ERROR_CONTAINS(cuda::max_all(c), "cuda::max_all: x must be on a GPU");
}

// ---------------------------------------------------------------- copies

TEST(StridedCuda, CopyEveryDtypePairBitIdentical) {
  SKIP_WITHOUT_GPU();
  for (DType from : kAllDtypes)
    for (DType to : kAllDtypes) {
      // Float -> integer only from values every integer type holds (outside: undefined in C++).
      const bool convertible = is_floating(from) && !is_floating(to) && to != DType::Bool;
      for (const Shape& shape : {Shape{}, Shape{0, 3}, Shape{37, 41}, Shape{3, 1000}}) {
        const Tensor src = values(shape, from, 7, true, convertible);
        Tensor want = empty(shape, to);
        ops::copy_(want, src);
        const Tensor dst = gpu_empty(shape, to);
        cuda::copy_(dst, gpu(src));
        EXPECT_TRUE(same(cpu(dst), want)) << dtype_name(from) << " -> " << dtype_name(to) << " " << shape_str(shape);
        if (shape.size() == 2 && shape[0] > 0) {  // transposed source into a transposed view of dst
          const Tensor dst_t = gpu_empty({shape[1], shape[0]}, to);
          cuda::copy_(dst_t.transpose(0, 1), gpu(src.transpose(0, 1).contiguous()).transpose(0, 1));
          EXPECT_TRUE(same(cpu(dst_t), want.transpose(0, 1).contiguous())) << dtype_name(from) << " -> " << dtype_name(to);
        }
      }
    }
}

TEST(StridedCuda, CopyBroadcastsIntoStridedViewsAndLeavesTheRest) {
  SKIP_WITHOUT_GPU();
  for (DType dtype : {DType::Float32, DType::Int64, DType::UInt8, DType::Float16}) {
    const Tensor base = values({6, 9, 5}, dtype, 1);
    const Tensor src = values({9, 1}, dtype, 2);
    Tensor want = base.clone();
    ops::copy_(want.narrow(0, 1, 4).narrow(2, 1, 3), src);
    const Tensor dbase = gpu(base);
    cuda::copy_(dbase.narrow(0, 1, 4).narrow(2, 1, 3), gpu(src));
    EXPECT_TRUE(same(cpu(dbase), want)) << dtype_name(dtype);
    // Into a permuted view, from a stride-0 expanded and sliced source.
    const Tensor base2 = values({4, 6}, dtype, 3), row = values({1, 12}, dtype, 4);
    Tensor want2 = base2.clone();
    ops::copy_(want2.transpose(0, 1), row.slice(1, 0, 12, 3).expand({6, 4}));
    const Tensor d2 = gpu(base2);
    cuda::copy_(d2.transpose(0, 1), gpu(row).slice(1, 0, 12, 3).expand({6, 4}));
    EXPECT_TRUE(same(cpu(d2), want2)) << dtype_name(dtype);
  }
  const Tensor d = gpu(zeros({3}));
  EXPECT_ERROR_CONTAINS(cuda::copy_(gpu(zeros({1})).expand({3}), d), "expanded view");
  EXPECT_ERROR_CONTAINS(cuda::copy_(d, gpu(zeros({2}))), "does not broadcast");
}

TEST(StridedCuda, FillEveryDtypeAnyStrides) {
  SKIP_WITHOUT_GPU();
  for (DType dtype : kAllDtypes)
    for (double value : {2.5, -1.0, 0.0, 300.0, 70000.0, 1e10, static_cast<double>(NAN)}) {
      if (!is_floating(dtype) && (std::isnan(value) || value > 1e9)) continue;  // undefined conversions
      if (dtype == DType::UInt8 && (value < 0 || value > 255)) continue;
      const Tensor base = values({5, 8}, dtype, 9);
      Tensor want = base.clone();
      ops::fill_(want.slice(1, 1, 8, 2), value);
      const Tensor d = gpu(base);
      cuda::fill_(d.slice(1, 1, 8, 2), value);
      EXPECT_TRUE(same(cpu(d), want)) << dtype_name(dtype) << " " << value;
    }
  const Tensor s = gpu(zeros({}));
  cuda::fill_(s, 3.0);
  EXPECT_EQ(cpu(s).item(), 3.0);
  cuda::fill_(gpu(zeros({0, 4})), 1.0);  // nothing to do
}

// ---------------------------------------------------------------- binary, compare, scalar

TEST(StridedCuda, BinaryEveryOpDtypeAndLayout) {
  SKIP_WITHOUT_GPU();
  const BinaryOp ops_list[] = {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div,
                               BinaryOp::Pow, BinaryOp::Maximum, BinaryOp::Minimum};
  for (BinaryOp op : ops_list)
    for (DType dtype : kNumeric) {
      const bool float_only = op == BinaryOp::Div || op == BinaryOp::Pow;
      if (float_only && !is_floating(dtype)) {
        EXPECT_ERROR_CONTAINS(cuda::binary(op, gpu(ones({2}, dtype)), gpu(ones({2}, dtype))), "is not supported");
        continue;
      }
      for (const auto& [sa, sb] : kBroadcastShapes)
        for (const Pair& a : layouts(sa, dtype, 10))
          for (const Pair& b : layouts(sb, dtype, 20)) {
            const Tensor want = ops::binary(op, a.host, b.host);
            const Tensor got = cpu(cuda::binary(op, a.device, b.device));
            const std::string where = str_cat("op ", static_cast<int>(op), " ", dtype_name(dtype), " ", shape_str(sa),
                                              " ", a.what, " with ", shape_str(sb), " ", b.what);
            if (op == BinaryOp::Pow) EXPECT_TRUE(near(got, want, dtype == DType::Float32 ? 1e-6 : 1e-14)) << where;
            else EXPECT_TRUE(same(got, want)) << where;
          }
    }
  const Tensor f = gpu(ones({2, 3})), d = gpu(ones({2, 3}, DType::Float64));
  EXPECT_ERROR_CONTAINS(cuda::binary(BinaryOp::Add, f, d), "dtypes differ");
  EXPECT_ERROR_CONTAINS(cuda::binary(BinaryOp::Mul, f, gpu(ones({4}))), "cuda::mul: shapes (2, 3) and (4");
  EXPECT_ERROR_CONTAINS(cuda::binary(BinaryOp::Add, gpu(ones({2}, DType::Bool)), gpu(ones({2}, DType::Bool))),
                        "not supported");
}

TEST(StridedCuda, CompareEveryOpAndDtype) {
  SKIP_WITHOUT_GPU();
  for (CompareOp op : {CompareOp::Eq, CompareOp::Ne, CompareOp::Lt, CompareOp::Le, CompareOp::Gt, CompareOp::Ge})
    for (DType dtype : kArith)
      for (const auto& [sa, sb] : kBroadcastShapes)
        for (const Pair& a : layouts(sa, dtype, 30)) {
          const Tensor b = values(sb, dtype, 31);
          // Equal elements matter for Eq/Le/Ge: compare a with itself (broadcast) too.
          EXPECT_TRUE(same(cpu(cuda::compare(op, a.device, gpu(b))), ops::compare(op, a.host, b)))
              << static_cast<int>(op) << " " << dtype_name(dtype) << " " << a.what;
          EXPECT_TRUE(same(cpu(cuda::compare(op, a.device, a.device)), ops::compare(op, a.host, a.host)));
        }
  for (CompareOp op : {CompareOp::Eq, CompareOp::Ne, CompareOp::Lt, CompareOp::Le, CompareOp::Gt, CompareOp::Ge})
    for (DType dtype : kNumeric)
      for (double b : {0.5, 0.0, -3.0, static_cast<double>(NAN), 1e300}) {
        const Tensor x = values({7, 9}, dtype, 32);
        // The CPU compares in double: the same as comparing the float64 copy.
        const Tensor want = ops::compare(op, x.to(DType::Float64), scalar_tensor(b, DType::Float64));
        EXPECT_TRUE(same(cpu(cuda::compare_scalar(op, gpu(x).transpose(0, 1), b)), want.transpose(0, 1).contiguous()))
            << static_cast<int>(op) << " " << dtype_name(dtype) << " " << b;
      }
  EXPECT_TRUE(same(cpu(cuda::compare_scalar(CompareOp::Gt, gpu(values({20}, DType::Int32, 33)), 0.5)),
                   ops::gt(values({20}, DType::Int32, 33), 0.5)));
}

TEST(StridedCuda, BinaryScalarAsTheCpu) {
  SKIP_WITHOUT_GPU();
  for (DType dtype : kNumeric)
    for (double b : {2.0, 0.5, -1.5, 3.0, 0.0, -0.0, 1e10}) {
      const Tensor x = values({33, 17}, dtype, 40);
      const Tensor dx = gpu(x).transpose(0, 1), hx = x.transpose(0, 1);
      EXPECT_TRUE(same(cpu(cuda::binary_scalar(BinaryOp::Add, dx, b)), ops::add(hx, b))) << dtype_name(dtype) << b;
      EXPECT_TRUE(same(cpu(cuda::binary_scalar(BinaryOp::Sub, dx, b)), ops::sub(hx, b))) << dtype_name(dtype) << b;
      EXPECT_TRUE(same(cpu(cuda::binary_scalar(BinaryOp::Mul, dx, b)), ops::mul(hx, b))) << dtype_name(dtype) << b;
      // full() converts b directly, scalar_as through int64: the same where b fits the dtype.
      if (is_floating(dtype) || (std::abs(b) < 1e9 && !(dtype == DType::UInt8 && b < 0))) {
        const Tensor bt = full({}, b, dtype);  // b in the dtype (in range: as scalar_as converts it)
        EXPECT_TRUE(same(cpu(cuda::binary_scalar(BinaryOp::Maximum, dx, b)), ops::maximum(hx, bt)));
        EXPECT_TRUE(same(cpu(cuda::binary_scalar(BinaryOp::Minimum, dx, b)), ops::minimum(hx, bt)));
      }
      if (!is_floating(dtype)) continue;
      EXPECT_TRUE(same(cpu(cuda::binary_scalar(BinaryOp::Div, dx, b)), ops::div(hx, b))) << dtype_name(dtype) << b;
      const Tensor p = cpu(cuda::binary_scalar(BinaryOp::Pow, dx, b));
      if (b == 2.0 || b == 0.5) EXPECT_TRUE(same(p, ops::pow(hx, b))) << "exact forms for 2 and 0.5";
      else EXPECT_TRUE(near(p, ops::pow(hx, b), dtype == DType::Float32 ? 1e-6 : 1e-14)) << b;
    }
}

// ---------------------------------------------------------------- unary, relu_backward, where

TEST(StridedCuda, UnaryEveryOpDtypeAndLayout) {
  SKIP_WITHOUT_GPU();
  const UnaryOp exact[] = {UnaryOp::Neg, UnaryOp::Abs, UnaryOp::Sign, UnaryOp::Relu, UnaryOp::Sqrt};
  const UnaryOp approx[] = {UnaryOp::Exp, UnaryOp::Log, UnaryOp::Sigmoid, UnaryOp::Tanh};
  for (DType dtype : kNumeric)
    for (const Shape& shape : {Shape{}, Shape{0}, Shape{5, 7}, Shape{300, 129}})
      for (const Pair& x : layouts(shape, dtype, 50)) {
        const std::string where = str_cat(dtype_name(dtype), " ", shape_str(shape), " ", x.what);
        for (UnaryOp op : exact) {
          if (op == UnaryOp::Sqrt && !is_floating(dtype)) continue;
          EXPECT_TRUE(same(cpu(cuda::unary(op, x.device, 0, 0)), ops::unary(op, x.host, 0, 0)))
              << static_cast<int>(op) << " " << where;
        }
        for (auto [lo, hi] : {std::pair{-1.0, 300.0}, std::pair{-0.5, 0.5}, std::pair{2.0, 2.0}, std::pair{-1e300, 1e300}}) {
          // int64's max is not a double: clipping to it converts 2^63 back, which is undefined.
          if (dtype == DType::Int64 && hi > 1e18) continue;
          EXPECT_TRUE(same(cpu(cuda::unary(UnaryOp::Clamp, x.device, lo, hi)), ops::clamp(x.host, lo, hi)))
              << "clamp " << lo << " " << hi << " " << where;
        }
        for (UnaryOp op : approx) {
          if (!is_floating(dtype)) {
            EXPECT_ERROR_CONTAINS(cuda::unary(op, x.device, 0, 0), "is not supported");
            continue;
          }
          EXPECT_TRUE(near(cpu(cuda::unary(op, x.device, 0, 0)), ops::unary(op, x.host, 0, 0),
                           dtype == DType::Float32 ? 1e-6 : 1e-14))
              << static_cast<int>(op) << " " << where;
        }
      }
  // sigmoid never overflows; its extremes are exact.
  const Tensor big = from_vector<float>({1000.0f, -1000.0f, 0.0f, -0.0f, NAN}, {5});
  EXPECT_TRUE(same(cpu(cuda::unary(UnaryOp::Sigmoid, gpu(big), 0, 0)), ops::sigmoid(big)));
}

TEST(StridedCuda, ReluBackwardBroadcastsBitIdentical) {
  SKIP_WITHOUT_GPU();
  for (DType dtype : kFloat)
    for (const auto& [sa, sb] : kBroadcastShapes)
      for (const Pair& g : layouts(sa, dtype, 60))
        for (const Pair& o : layouts(sb, dtype, 61))
          EXPECT_TRUE(same(cpu(cuda::relu_backward(g.device, o.device)), ops::relu_backward(g.host, o.host)))
              << dtype_name(dtype) << " " << g.what << " " << o.what;
  EXPECT_ERROR_CONTAINS(cuda::relu_backward(gpu(ones({2}, DType::Int64)), gpu(ones({2}, DType::Int64))),
                        "is not supported");
}

TEST(StridedCuda, WhereEveryCondAndValueDtype) {
  SKIP_WITHOUT_GPU();
  for (DType cond_dtype : kArith)
    for (DType dtype : kArith) {
      // NaN conditions are true and -0.0 ones false, as on the CPU.
      const Tensor cond = values({4, 1, 6}, cond_dtype, 70);
      const Tensor a = values({5, 1}, dtype, 71), b_stored = values({6, 5, 4}, dtype, 72);
      const Tensor b = b_stored.permute({2, 1, 0});  // (4, 5, 6), not row-major
      EXPECT_TRUE(same(cpu(cuda::where(gpu(cond), gpu(a), gpu(b_stored).permute({2, 1, 0}))), ops::where(cond, a, b)))
          << dtype_name(cond_dtype) << " " << dtype_name(dtype);
      const Tensor s = values({}, dtype, 73);
      EXPECT_TRUE(same(cpu(cuda::where(gpu(cond).expand({4, 3, 6}), gpu(s), gpu(s))), ops::where(cond.expand({4, 3, 6}), s, s)));
    }
  EXPECT_ERROR_CONTAINS(cuda::where(gpu(ones({2})), gpu(ones({2})), gpu(ones({2}, DType::Int64))), "dtypes differ");
  EXPECT_ERROR_CONTAINS(cuda::where(gpu(ones({3})), gpu(ones({2})), gpu(ones({2}))), "do not broadcast");
}

// ---------------------------------------------------------------- in place

TEST(StridedCuda, AddScaledAndMulInPlaceThroughViews) {
  SKIP_WITHOUT_GPU();
  for (DType dtype : kNumeric)
    for (double alpha : {1.0, 0.1, -3.0}) {
      if (alpha != 1.0 && !is_floating(dtype)) {
        EXPECT_ERROR_CONTAINS(cuda::add_scaled_(gpu(ones({2}, dtype)), gpu(ones({2}, dtype)), alpha), "not supported");
        continue;
      }
      const Tensor base = values({7, 10}, dtype, 80), src = values({7, 1}, dtype, 81);
      Tensor want = base.clone();
      if (alpha == 1.0) ops::add_(want.transpose(0, 1).narrow(0, 2, 5), src.transpose(0, 1));
      else ops::add_scaled_(want.transpose(0, 1).narrow(0, 2, 5), src.transpose(0, 1), alpha);
      const Tensor d = gpu(base);
      cuda::add_scaled_(d.transpose(0, 1).narrow(0, 2, 5), gpu(src).transpose(0, 1), alpha);
      EXPECT_TRUE(same(cpu(d), want)) << dtype_name(dtype) << " alpha " << alpha;
    }
  for (DType dtype : kNumeric)
    for (double factor : {0.5, -2.0, 3.0, 0.0}) {
      const Tensor base = values({6, 8}, dtype, 90);
      Tensor want = base.clone();
      ops::mul_(want.slice(1, 0, 8, 3), factor);
      const Tensor d = gpu(base);
      cuda::mul_(d.slice(1, 0, 8, 3), factor);
      EXPECT_TRUE(same(cpu(d), want)) << dtype_name(dtype) << " factor " << factor;
    }
  const Tensor d = gpu(zeros({3}));
  EXPECT_ERROR_CONTAINS(cuda::mul_(gpu(zeros({1})).expand({3}), 2.0), "expanded view");
  EXPECT_ERROR_CONTAINS(cuda::add_scaled_(gpu(zeros({1})), d, 2.0), "dst cannot grow");
}

// ---------------------------------------------------------------- reductions

// dims lists for an n-dim tensor: every subset (empty = all), as sorted lists.
std::vector<std::vector<int64_t>> all_dim_sets(int64_t n) {
  std::vector<std::vector<int64_t>> sets;
  for (int64_t mask = 0; mask < (int64_t{1} << n); ++mask) {
    std::vector<int64_t> dims;
    for (int64_t d = 0; d < n; ++d)
      if (mask & (int64_t{1} << d)) dims.push_back(d);
    sets.push_back(dims);
  }
  return sets;
}

TEST(StridedCuda, SumMeanVarMatchCpuForEveryDimSetAndLayout) {
  SKIP_WITHOUT_GPU();
  for (DType dtype : {DType::Float32, DType::Float64, DType::Int64})
    for (const Shape& shape : {Shape{4, 5, 6}, Shape{3, 0, 2}, Shape{70, 2, 3}})
      for (const Pair& x : layouts(shape, dtype, 100, /*specials=*/false))
        for (const auto& dims : all_dim_sets(3))
          for (bool keepdim : {false, true}) {
            const std::string where = str_cat(dtype_name(dtype), " ", shape_str(shape), " ", x.what, " dims ",
                                              shape_str(dims), keepdim ? " keepdim" : "");
            const Tensor got = cpu(cuda::sum(x.device, dims, keepdim));
            if (dtype == DType::Int64) {
              EXPECT_TRUE(same(got, ops::sum(x.host, dims, keepdim))) << where << " (wrapping int64 sum)";
              continue;
            }
            const double tol = dtype == DType::Float32 ? 1e-5 : 1e-12;
            EXPECT_TRUE(normwise_close(got, ops::sum(x.host, dims, keepdim), tol)) << where;
            EXPECT_TRUE(normwise_close(cpu(cuda::mean(x.device, dims, keepdim)), ops::mean(x.host, dims, keepdim), tol)) << where;
            for (int64_t correction : {0, 1, 2}) {
              const Tensor var = cpu(cuda::var(x.device, dims, correction, keepdim));
              // The GPU's var is the float64 var rounded once; the CPU's float32 var rounds as it
              // goes, so where every deviation is 0 in exact arithmetic (expanded rows) it can leave
              // ~1e-16 (and inf, not NaN, when N - correction is 0). So: against the CPU's float64
              // var everywhere, and against its float32 var on data without exact ties.
              EXPECT_TRUE(near(var.to(DType::Float64), ops::var(x.host.to(DType::Float64), dims, correction, keepdim),
                               dtype == DType::Float32 ? 1e-6 : 1e-12))
                  << where << " correction " << correction;
              if (x.what == "contiguous") {
                EXPECT_TRUE(normwise_close(var, ops::var(x.host, dims, correction, keepdim), tol))
                    << where << " correction " << correction;
              }
            }
          }
  // Edge cases: the mean of nothing is NaN, var with N - correction <= 0 is inf or NaN.
  const Tensor e = gpu(zeros({3, 0}));
  EXPECT_TRUE(same(cpu(cuda::mean(e, {1}, false)), ops::mean(zeros({3, 0}), {1})));
  EXPECT_TRUE(same(cpu(cuda::sum(e, {1}, true)), ops::sum(zeros({3, 0}), {1}, true)));
  const Tensor one = from_vector<float>({2.0f, 3.0f}, {2, 1});
  for (int64_t correction : {0, 1, 2})
    EXPECT_TRUE(same(cpu(cuda::var(gpu(one), {1}, correction, false)), ops::var(one, {1}, correction)));
  const Tensor inf = from_vector<float>({1.0f, INFINITY, 2.0f, NAN}, {2, 2});
  EXPECT_TRUE(same(cpu(cuda::var(gpu(inf), {1}, 1, false)), ops::var(inf, {1}, 1)));
  EXPECT_TRUE(same(cpu(cuda::sum(gpu(inf), {1}, false)), ops::sum(inf, {1})));
  // 0-dim: dims {} and {0} reduce nothing.
  const Tensor s = scalar_tensor(2.5);
  EXPECT_TRUE(same(cpu(cuda::sum(gpu(s), {}, false)), ops::sum(s)));
  EXPECT_TRUE(same(cpu(cuda::mean(gpu(s), {0}, true)), ops::mean(s, {0}, true)));
  EXPECT_ERROR_CONTAINS(cuda::mean(gpu(ones({2}, DType::Int64)), {}, false), "is not supported");
  EXPECT_ERROR_CONTAINS(cuda::sum(gpu(ones({2}, DType::Int32)), {}, false), "is not supported");
}

// Every strategy (serial, one block, chunked) at and around its limits, and the ResNet-50 shapes.
TEST(StridedCuda, SumStrategiesAndResNetShapes) {
  SKIP_WITHOUT_GPU();
  Generator gen(5);
  struct Case {
    Shape shape;
    std::vector<int64_t> dims;
  };
  const Case cases[] = {
      {{128, 2048, 7, 7}, {0, 2, 3}},  // batch-norm statistics / bias gradient
      {{128, 2048, 7, 7}, {2, 3}},     // global average pool: 262144 outputs of 49
      {{128, 1000}, {0}},              // the classifier's bias gradient
      {{25000000}, {0}},               // everything, chunked
      {{70000, 64}, {1}},              // serial, at kSerialAlways
      {{70000, 65}, {1}},              // serial, many outputs
      {{100, 2049}, {1}},              // one block per output
      {{3, 65536}, {1}},               // one block, exactly one chunk
      {{3, 65537}, {1}},               // two chunks
      {{65537, 3}, {0}},               // chunked over the outer dim
  };
  for (const Case& c : cases) {
    const Tensor x = normal(c.shape, gen);
    const Tensor dx = gpu(x);
    const Tensor first = cpu(cuda::sum(dx, c.dims, false));
    EXPECT_TRUE(normwise_close(first, ops::sum(x, c.dims), 1e-5)) << shape_str(c.shape) << " " << shape_str(c.dims);
    // Double accumulation and one rounding: within an ulp or two of the float64 sum.
    EXPECT_TRUE(normwise_close(first.to(DType::Float64), ops::sum(x.to(DType::Float64), c.dims), 2.5e-7)) << shape_str(c.shape);
    EXPECT_TRUE(normwise_close(cpu(cuda::mean(dx, c.dims, false)), ops::mean(x, c.dims), 1e-5)) << shape_str(c.shape);
    // Run to run: the same bits.
    for (int run = 0; run < 2; ++run) EXPECT_TRUE(same(cpu(cuda::sum(dx, c.dims, false)), first)) << shape_str(c.shape);
  }
  // Layout to layout: a permuted view sums to the bits of its contiguous copy.
  const Tensor x = normal({64, 33, 7}, gen);
  const Tensor view = gpu(x).permute({2, 0, 1});  // (7, 64, 33)
  const Tensor copy = gpu(x.permute({2, 0, 1}).contiguous());
  for (const auto& dims : all_dim_sets(3)) {
    EXPECT_TRUE(same(cpu(cuda::sum(view, dims, false)), cpu(cuda::sum(copy, dims, false)))) << shape_str(dims);
    EXPECT_TRUE(same(cpu(cuda::var(view, dims, 1, true)), cpu(cuda::var(copy, dims, 1, true)))) << shape_str(dims);
  }
  // int64 sums wrap, exactly.
  const Tensor big = from_vector<int64_t>(std::vector<int64_t>(100000, std::numeric_limits<int64_t>::max() / 7), {100000});
  EXPECT_TRUE(same(cpu(cuda::sum(gpu(big), {}, false)), ops::sum(big)));
}

TEST(StridedCuda, MaxValuesAndFirstIndex) {
  SKIP_WITHOUT_GPU();
  for (DType dtype : {DType::Float32, DType::Float64, DType::Int64})
    for (const Shape& shape : {Shape{6, 7, 8}, Shape{2, 70000, 2}, Shape{4, 0, 3}})
      for (const Pair& x : layouts(shape, dtype, 110))
        for (int64_t dim = 0; dim < 3; ++dim)
          for (bool keepdim : {false, true}) {
            const std::string where = str_cat(dtype_name(dtype), " ", shape_str(shape), " ", x.what, " dim ", dim);
            if (shape[dim] == 0) {
              EXPECT_ERROR_CONTAINS(cuda::max(x.device, dim, keepdim), "cannot reduce over zero elements");
              continue;
            }
            const ops::MaxResult got = cuda::max(x.device, dim, keepdim);
            const ops::MaxResult want = ops::max(x.host, dim, keepdim);
            EXPECT_TRUE(same(cpu(got.values), want.values)) << where;
            EXPECT_TRUE(same(cpu(got.indices), want.indices)) << where;
          }
  // Ties, signed zeros and NaNs: the first maximum, the first NaN.
  const Tensor t = from_vector<float>({1, 3, 3, -0.0f, 0.0f, NAN, 2, NAN, 5, -INFINITY, -0.0f, 0.0f}, {3, 4});
  for (int64_t dim : {0, 1}) {
    const ops::MaxResult got = cuda::max(gpu(t), dim, false), want = ops::max(t, dim);
    EXPECT_TRUE(same(cpu(got.values), want.values)) << dim;
    EXPECT_TRUE(same(cpu(got.indices), want.indices)) << dim;
  }
  EXPECT_TRUE(same(cpu(cuda::max_all(gpu(t))), ops::max(t)));
  const Tensor zeros_only = from_vector<float>({-0.0f, 0.0f, 0.0f, -0.0f}, {1, 4});  // the first zero wins
  EXPECT_TRUE(same(cpu(cuda::max(gpu(zeros_only), 1, false).values), ops::max(zeros_only, 1).values));
  EXPECT_TRUE(same(cpu(cuda::max_all(gpu(zeros_only.narrow(1, 1, 3)))), ops::max(zeros_only.narrow(1, 1, 3))));
  Generator gen(6);
  const Tensor large = normal({3000001}, gen);
  EXPECT_TRUE(same(cpu(cuda::max_all(gpu(large))), ops::max(large)));
  const ops::MaxResult s = cuda::max(gpu(scalar_tensor(4.0)), 0, false);
  EXPECT_EQ(cpu(s.values).item(), 4.0);
  EXPECT_EQ(cpu(s.indices).item(), 0.0);
  EXPECT_ERROR_CONTAINS(cuda::max_all(gpu(zeros({0}))), "cannot reduce over zero elements");
  EXPECT_ERROR_CONTAINS(cuda::max(gpu(ones({2}, DType::Int32)), 0, false), "is not supported");
}

#endif  // MEDTL_WITH_CUDA

}  // namespace
}  // namespace medtl
