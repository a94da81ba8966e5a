// Tests for ops/reduce.h: every reduction against a naive double-precision reference, on
// contiguous and non-contiguous inputs, error messages, and bit-identity across thread counts.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "tensor/ops/reduce.h"
#include "tensor/parallel.h"
#include "tests/test_util.h"

namespace medtl {
namespace {

using testing::tensors_close;
using testing::tensors_identical;

// ---------------------------------------------------------------- naive reference

// For each element of a tensor of `shape` (row-major), the row-major index of the output element
// it reduces into, and the output shape. dims empty = all.
struct RefMap {
  Shape out_shape;
  std::vector<int64_t> out_index;
  int64_t outputs = 1;
  int64_t per_output = 1;  // N: elements reduced into each output
};

RefMap ref_map(const Shape& shape, std::vector<int64_t> dims, bool keepdim) {
  const int64_t ndim = static_cast<int64_t>(shape.size());
  std::vector<bool> reduced(ndim, dims.empty());
  for (int64_t d : dims) reduced[d < 0 ? d + ndim : d] = true;
  RefMap map;
  for (int64_t d = 0; d < ndim; ++d) {
    if (!reduced[d]) {
      map.out_shape.push_back(shape[d]);
      map.outputs *= shape[d];
    } else {
      map.per_output *= shape[d];
      if (keepdim) map.out_shape.push_back(1);
    }
  }
  const int64_t n = shape_numel(shape);
  map.out_index.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    int64_t rest = i, out = 0, scale = 1;
    for (int64_t d = ndim - 1; d >= 0; --d) {
      const int64_t index = rest % shape[d];
      rest /= shape[d];
      if (!reduced[d]) {
        out += index * scale;
        scale *= shape[d];
      }
    }
    map.out_index[i] = out;
  }
  return map;
}

enum class RefOp { Sum, Mean, Var };

// The reduction in double (var two-pass), as a Float64 tensor.
Tensor reference(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, RefOp op, int64_t correction = 1) {
  const RefMap map = ref_map(x.shape(), dims, keepdim);
  const auto values = x.to_vector<double>();
  std::vector<double> sums(map.outputs, 0.0), out(map.outputs);
  for (size_t i = 0; i < values.size(); ++i) sums[map.out_index[i]] += values[i];
  const double n = static_cast<double>(map.per_output);
  for (int64_t m = 0; m < map.outputs; ++m) out[m] = op == RefOp::Sum ? sums[m] : sums[m] / n;
  if (op == RefOp::Var) {
    std::vector<double> squares(map.outputs, 0.0);
    for (size_t i = 0; i < values.size(); ++i) {
      const double d = values[i] - out[map.out_index[i]];
      squares[map.out_index[i]] += d * d;
    }
    for (int64_t m = 0; m < map.outputs; ++m) out[m] = squares[m] / std::max(0.0, n - correction);
  }
  return from_vector<double>(out, map.out_shape);
}

// Dim sets for a 4-D input: single, negative, non-adjacent, unordered, all, none-given (= all).
const std::vector<std::vector<int64_t>> kDimSets = {
    {}, {0}, {1}, {2}, {3}, {-1}, {-3}, {0, 2}, {1, 3}, {0, 3}, {3, 0}, {-1, 1}, {0, 2, 3}, {1, 2, 3}, {0, 1, 2, 3}};

// Inputs of one dtype: contiguous, permuted, sliced (offset and step), and both at once. All 4-D.
std::vector<std::pair<const char*, Tensor>> inputs(DType dtype, uint64_t seed) {
  Generator gen(seed);
  const Tensor base = normal({4, 6, 5, 7}, gen, 0.5, 2.0, dtype);
  const Tensor big = normal({6, 10, 14, 9}, gen, 0.0, 1.0, dtype);
  return {{"contiguous", base},
          {"permuted", normal({7, 4, 5, 6}, gen, 0.0, 1.0, dtype).permute({1, 3, 2, 0})},
          {"sliced", big.slice(1, 1, 10, 2).narrow(2, 3, 9)},
          {"permuted+sliced", big.slice(0, 1, 6, 2).permute({3, 0, 2, 1})},
          {"size-1 dim", normal({3, 1, 8, 2}, gen, 0.0, 1.0, dtype)}};
}

double float_tol(DType dtype) { return dtype == DType::Float32 ? 2e-5 : 1e-12; }

// Runs `op` against `ref_op` over every input, dim set and keepdim, for both dtypes.
template <typename Op>
void check_against_reference(Op op, RefOp ref_op, int64_t correction = 1) {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    for (const auto& [name, x] : inputs(dtype, 7)) {
      for (const auto& dims : kDimSets) {
        for (bool keepdim : {false, true}) {
          SCOPED_TRACE(::testing::Message() << dtype_name(dtype) << " " << name << " " << shape_str(x.shape())
                                            << " dims " << shape_str(dims) << " keepdim " << keepdim);
          const Tensor got = op(x, dims, keepdim);
          EXPECT_EQ(got.dtype(), dtype);
          const RefMap map = ref_map(x.shape(), dims, keepdim);
          const double scale = ref_op == RefOp::Sum ? std::sqrt(static_cast<double>(map.per_output)) : 1.0;
          EXPECT_TRUE(tensors_close(got.to(DType::Float64), reference(x, dims, keepdim, ref_op, correction),
                                    float_tol(dtype), float_tol(dtype) * scale));
        }
      }
    }
  }
}

// Sets the thread count for a scope and restores the previous one.
class ThreadCount {
 public:
  explicit ThreadCount(int threads) : saved_(get_num_threads()) { set_num_threads(threads); }
  ~ThreadCount() { set_num_threads(saved_); }

 private:
  int saved_;
};

const double kNaN = std::numeric_limits<double>::quiet_NaN();

// ---------------------------------------------------------------- sum, mean, var

TEST(ReduceTest, SumMatchesReference) {
  check_against_reference([](const Tensor& x, auto dims, bool k) { return ops::sum(x, dims, k); }, RefOp::Sum);
}

TEST(ReduceTest, MeanMatchesReference) {
  check_against_reference([](const Tensor& x, auto dims, bool k) { return ops::mean(x, dims, k); }, RefOp::Mean);
}

TEST(ReduceTest, VarUnbiasedMatchesReference) {
  check_against_reference([](const Tensor& x, auto dims, bool k) { return ops::var(x, dims, 1, k); }, RefOp::Var, 1);
}

TEST(ReduceTest, VarPopulationMatchesReference) {
  check_against_reference([](const Tensor& x, auto dims, bool k) { return ops::var(x, dims, 0, k); }, RefOp::Var, 0);
}

TEST(ReduceTest, ManyChunksMatchReference) {
  // Runs longer than one chunk (4096), reduced dims innermost or not, with ragged last chunks.
  for (DType dtype : {DType::Float32, DType::Float64}) {
    Generator gen(3);
    const Tensor x = normal({3, 9001, 2}, gen, 1.0, 1.0, dtype);
    for (const std::vector<int64_t>& dims : {std::vector<int64_t>{1}, {1, 2}, {0, 1}, {}}) {
      SCOPED_TRACE(::testing::Message() << dtype_name(dtype) << " dims " << shape_str(dims));
      const double n = static_cast<double>(ref_map(x.shape(), dims, false).per_output);
      EXPECT_TRUE(tensors_close(ops::sum(x, dims).to(DType::Float64), reference(x, dims, false, RefOp::Sum),
                                float_tol(dtype), float_tol(dtype) * std::sqrt(n)));
      EXPECT_TRUE(tensors_close(ops::mean(x, dims).to(DType::Float64), reference(x, dims, false, RefOp::Mean),
                                float_tol(dtype), float_tol(dtype)));
      EXPECT_TRUE(tensors_close(ops::var(x, dims).to(DType::Float64), reference(x, dims, false, RefOp::Var),
                                float_tol(dtype), float_tol(dtype)));
    }
  }
}

TEST(ReduceTest, Float32SumIsAccurateOnALongRun) {
  Generator gen(11);
  const Tensor x = uniform({3000000}, gen, -1.0, 1.0);
  double abs_sum = 0.0;
  for (float v : x.to_vector<float>()) abs_sum += std::abs(v);
  const double exact = reference(x, {}, false, RefOp::Sum).item();
  // Worst-case bound for this order is ~(256 + 10 + 4) * eps * sum|x|; typical error far below.
  EXPECT_LE(std::abs(ops::sum(x).item() - exact), 1e-6 * abs_sum);
  // A large mean offset is where one-pass variance fails; two-pass keeps it accurate.
  const Tensor shifted = normal({100000}, gen, 1000.0, 1.0);
  EXPECT_NEAR(ops::var(shifted).item(), reference(shifted, {}, false, RefOp::Var).item(), 1e-3);
}

TEST(ReduceTest, PermutedInputGivesTheBitsOfItsContiguousCopy) {
  Generator gen(5);
  const Tensor x = normal({30, 7, 300}, gen).permute({2, 0, 1});  // (300, 30, 7)
  for (const std::vector<int64_t>& dims : {std::vector<int64_t>{0}, {0, 2}, {}}) {
    EXPECT_TRUE(tensors_identical(ops::sum(x, dims), ops::sum(x.contiguous(), dims)));
    EXPECT_TRUE(tensors_identical(ops::var(x, dims), ops::var(x.contiguous(), dims)));
  }
}

TEST(ReduceTest, Int64SumIsExact) {
  const Tensor x = from_vector<int64_t>({1, -2, 3, 4000000000000LL, 5, 6, -7, 8}, {2, 4});
  const Tensor rows = ops::sum(x, {1});
  EXPECT_EQ(rows.dtype(), DType::Int64);
  EXPECT_EQ(rows.to_vector<int64_t>(), (std::vector<int64_t>{4000000000002LL, 12}));
  EXPECT_EQ(ops::sum(x, {0}, true).to_vector<int64_t>(), (std::vector<int64_t>{6, 4, -4, 4000000000008LL}));
  EXPECT_EQ(ops::sum(x).to_vector<int64_t>(), (std::vector<int64_t>{4000000000014LL}));
  const Tensor long_run = arange(10000);
  EXPECT_EQ(ops::sum(long_run).to_vector<int64_t>(), (std::vector<int64_t>{49995000}));
}

TEST(ReduceTest, ZeroDimInput) {
  const Tensor s = scalar_tensor(2.5, DType::Float64);
  for (const std::vector<int64_t>& dims : {std::vector<int64_t>{}, {0}, {-1}}) {
    EXPECT_EQ(ops::sum(s, dims).shape(), Shape{});
    EXPECT_EQ(ops::sum(s, dims).item(), 2.5);
    EXPECT_EQ(ops::mean(s, dims, true).item(), 2.5);
    EXPECT_EQ(ops::var(s, dims, 0).item(), 0.0);
  }
  EXPECT_TRUE(std::isnan(ops::var(s).item()));  // N - correction = 0: 0/0
  EXPECT_EQ(ops::max(s).item(), 2.5);
  const auto m = ops::max(s, 0);
  EXPECT_EQ(m.values.item(), 2.5);
  EXPECT_EQ(m.indices.item(), 0.0);
}

TEST(ReduceTest, EmptyInputs) {
  const Tensor x = zeros({3, 0, 2});
  const Tensor s = ops::sum(x, {1});
  EXPECT_EQ(s.shape(), (Shape{3, 2}));
  EXPECT_TRUE(tensors_close(s, zeros({3, 2})));
  EXPECT_TRUE(std::isnan(ops::mean(x, {1}).at({0, 0})));
  EXPECT_TRUE(std::isnan(ops::var(x, {1}).at({2, 1})));
  EXPECT_EQ(ops::sum(x, {0}, true).shape(), (Shape{1, 0, 2}));  // no outputs: nothing to compute
  EXPECT_EQ(ops::max(x, 0).values.shape(), (Shape{0, 2}));
  EXPECT_EQ(ops::sum(x).item(), 0.0);
}

TEST(ReduceTest, VarCorrectionAtOrBeyondN) {
  // Divides by max(0, N - correction), like PyTorch: inf where the deviations are not all zero.
  const Tensor x = from_vector<float>({1.0f, 2.0f, 3.0f, 3.0f}, {2, 2});
  const auto v = ops::var(x, {1}, 2).to_vector<float>();
  EXPECT_TRUE(std::isinf(v[0]) && v[0] > 0);
  EXPECT_TRUE(std::isnan(v[1]));
  EXPECT_TRUE(std::isinf(ops::var(x, {1}, 5).at({0})));
  EXPECT_EQ(ops::var(x, {1}, 0).to_vector<float>(), (std::vector<float>{0.25f, 0.0f}));
}

// ---------------------------------------------------------------- max, argmax

TEST(ReduceTest, MaxMatchesReference) {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    for (const auto& [name, x] : inputs(dtype, 9)) {
      const Shape shape = x.shape();
      const auto values = x.to_vector<double>();
      for (int64_t dim = -4; dim < 4; ++dim) {
        for (bool keepdim : {false, true}) {
          SCOPED_TRACE(::testing::Message() << dtype_name(dtype) << " " << name << " dim " << dim
                                            << " keepdim " << keepdim);
          const RefMap map = ref_map(shape, {dim}, keepdim);
          std::vector<double> best(map.outputs, -std::numeric_limits<double>::infinity());
          std::vector<int64_t> where(map.outputs, -1);
          const int64_t d = dim < 0 ? dim + 4 : dim;
          int64_t inner = 1;
          for (int64_t k = d + 1; k < 4; ++k) inner *= shape[k];
          for (size_t i = 0; i < values.size(); ++i) {
            const int64_t m = map.out_index[i], index = (static_cast<int64_t>(i) / inner) % shape[d];
            if (values[i] > best[m]) {
              best[m] = values[i];
              where[m] = index;
            }
          }
          const auto result = ops::max(x, dim, keepdim);
          EXPECT_TRUE(tensors_identical(result.values, from_vector<double>(best, map.out_shape).to(dtype)));
          EXPECT_EQ(result.indices.dtype(), DType::Int64);
          EXPECT_TRUE(tensors_identical(result.indices, from_vector<int64_t>(where, map.out_shape)));
          EXPECT_TRUE(tensors_identical(ops::argmax(x, dim, keepdim), result.indices));
        }
      }
      EXPECT_EQ(ops::max(x).item(), *std::max_element(values.begin(), values.end()));
      EXPECT_EQ(ops::max(x).shape(), Shape{});
    }
  }
}

TEST(ReduceTest, MaxTiesPickTheFirst) {
  const Tensor x = from_vector<float>({1, 3, 3, 2, 5, 5, 5, 5, -1, -1, -2, -1}, {3, 4});
  EXPECT_EQ(ops::argmax(x, 1).to_vector<int64_t>(), (std::vector<int64_t>{1, 0, 0}));
  EXPECT_EQ(ops::max(x, 1).values.to_vector<float>(), (std::vector<float>{3, 5, -1}));
  EXPECT_EQ(ops::argmax(x, 0).to_vector<int64_t>(), (std::vector<int64_t>{1, 1, 1, 1}));
  // Across chunk boundaries (4096): the maximum appears first in a later chunk, then again.
  std::vector<double> long_run(10000, 0.0);
  long_run[5000] = 7.0;
  long_run[9000] = 7.0;
  long_run[100] = 6.0;
  EXPECT_EQ(ops::argmax(from_vector<double>(long_run, {10000}), 0).item(), 5000.0);
}

TEST(ReduceTest, MaxNaNPropagatesAndFirstNaNWins) {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    const Tensor x = from_vector<double>({1, kNaN, 5, kNaN, kNaN, 2, 9, 3}, {2, 4}).to(dtype);
    const auto r = ops::max(x, 1);
    const auto v = r.values.to_vector<double>();
    EXPECT_TRUE(std::isnan(v[0]) && std::isnan(v[1]));
    EXPECT_EQ(r.indices.to_vector<int64_t>(), (std::vector<int64_t>{1, 0}));
    EXPECT_TRUE(std::isnan(ops::max(x).item()));
    EXPECT_TRUE(std::isnan(ops::sum(x).item()));
  }
  std::vector<double> long_run(9000, 1.0);
  long_run[10] = 100.0;
  long_run[5000] = kNaN;  // a NaN in a later chunk beats a larger number in an earlier one
  long_run[8500] = kNaN;
  const auto r = ops::max(from_vector<double>(long_run, {9000}), 0);
  EXPECT_TRUE(std::isnan(r.values.item()));
  EXPECT_EQ(r.indices.item(), 5000.0);
}

TEST(ReduceTest, MaxInt64) {
  const Tensor x = from_vector<int64_t>({4, -9, 12, 12, 0, 12}, {2, 3});
  EXPECT_EQ(ops::max(x, 0).values.to_vector<int64_t>(), (std::vector<int64_t>{12, 0, 12}));
  EXPECT_EQ(ops::argmax(x, 1).to_vector<int64_t>(), (std::vector<int64_t>{2, 0}));
  EXPECT_EQ(ops::max(x).item(), 12.0);
}

// ---------------------------------------------------------------- sum_to

TEST(ReduceTest, SumToBroadcastPatterns) {
  Generator gen(13);
  const Tensor x = normal({2, 3, 4, 5}, gen, 0.0, 1.0, DType::Float64);
  struct Case {
    Shape shape;
    std::vector<int64_t> dims;  // what sum_to must reduce, keepdim then viewed as `shape`
  };
  const std::vector<Case> cases = {
      {{3, 4, 5}, {0}},         {{4, 5}, {0, 1}},     {{5}, {0, 1, 2}},      {{}, {0, 1, 2, 3}},
      {{1, 4, 1}, {0, 1, 3}},   {{2, 1, 4, 1}, {1, 3}}, {{1, 1, 1, 1}, {}},  {{3, 1, 5}, {0, 2}},
      {{1, 3, 4, 5}, {0}}};
  for (const auto& c : cases) {
    SCOPED_TRACE(shape_str(c.shape));
    const Tensor got = ops::sum_to(x, c.shape);
    EXPECT_EQ(got.shape(), c.shape);
    EXPECT_TRUE(tensors_close(got, reference(x, c.dims, true, RefOp::Sum).reshape(c.shape), 1e-12, 1e-12));
  }
  const Tensor same = ops::sum_to(x, x.shape());
  EXPECT_TRUE(same.shares_storage_with(x));
  EXPECT_EQ(same.shape(), x.shape());
  // A size-1 dim of x that the target keeps, and a permuted (non-contiguous) x.
  const Tensor y = normal({6, 1, 4}, gen).permute({2, 1, 0});  // (4, 1, 6)
  EXPECT_TRUE(tensors_close(ops::sum_to(y, {1, 1, 6}), ops::sum(y, {0}, true), 1e-6, 1e-6));
}

TEST(ReduceTest, SumToRejectsShapesThatDoNotBroadcast) {
  const Tensor x = zeros({2, 3, 4});
  EXPECT_ERROR_CONTAINS(ops::sum_to(x, {5, 4}), "does not broadcast to x's shape (2, 3, 4)");
  EXPECT_ERROR_CONTAINS(ops::sum_to(x, {2, 4}), "dim 1 of x has size 3, the target has 2");
  EXPECT_ERROR_CONTAINS(ops::sum_to(x, {1, 2, 3, 4}), "has more dims than x's shape");
}

// ---------------------------------------------------------------- errors

TEST(ReduceTest, BadDimsAndDtypesAreClearErrors) {
  const Tensor x = zeros({2, 3});
  EXPECT_ERROR_CONTAINS(ops::sum(x, {2}), "sum: dim 2 is out of range for a tensor with 2 dims");
  EXPECT_ERROR_CONTAINS(ops::mean(x, {-3}), "mean: dim -3 is out of range");
  EXPECT_ERROR_CONTAINS(ops::var(x, {1, -1}), "var: dim -1 (dim 1 of shape (2, 3)) appears more than once");
  EXPECT_ERROR_CONTAINS(ops::sum(x, {0, 0}), "appears more than once");
  EXPECT_ERROR_CONTAINS(ops::max(x, 5), "max: dim 5 is out of range");
  EXPECT_ERROR_CONTAINS(ops::argmax(x, -3), "argmax: dim -3 is out of range");
  EXPECT_ERROR_CONTAINS(ops::sum(scalar_tensor(1.0), {1}), "sum: dim 1 is out of range");
  EXPECT_ERROR_CONTAINS(ops::sum(zeros({2}, DType::Int32)), "sum: dtype int32 is not supported");
  EXPECT_ERROR_CONTAINS(ops::mean(zeros({2}, DType::Int64)), "mean: dtype int64 is not supported");
  EXPECT_ERROR_CONTAINS(ops::var(zeros({2}, DType::Float16)), "var: dtype");
  EXPECT_ERROR_CONTAINS(ops::max(zeros({2}, DType::Bool)), "max: dtype bool is not supported");
  EXPECT_ERROR_CONTAINS(ops::max(zeros({3, 0}), 1), "max: cannot reduce over zero elements");
  EXPECT_ERROR_CONTAINS(ops::max(zeros({0})), "cannot reduce over zero elements");
  EXPECT_ERROR_CONTAINS(ops::sum(Tensor()), "sum: the tensor is undefined");
}

// ---------------------------------------------------------------- determinism across threads

// Each of fn's results with 2 and 3 threads must equal its result with 1 thread, bit for bit.
template <typename Fn>
void expect_same_bits_for_any_thread_count(Fn fn) {
  Tensor one;
  {
    ThreadCount threads(1);
    one = fn();
  }
  for (int count : {2, 3}) {
    ThreadCount threads(count);
    SCOPED_TRACE(::testing::Message() << count << " threads");
    EXPECT_TRUE(tensors_identical(fn(), one));
  }
}

TEST(ReduceDeterminismTest, FullReductionOf3MElements) {
  Generator gen(21);
  for (DType dtype : {DType::Float32, DType::Float64}) {
    const Tensor x = normal({3000000}, gen, 0.1, 1.0, dtype);
    expect_same_bits_for_any_thread_count([&] { return ops::sum(x); });
    expect_same_bits_for_any_thread_count([&] { return ops::mean(x); });
    expect_same_bits_for_any_thread_count([&] { return ops::var(x); });
    expect_same_bits_for_any_thread_count([&] { return ops::max(x, 0).indices; });
  }
}

TEST(ReduceDeterminismTest, RowsOf100000) {
  Generator gen(22);
  const Tensor x = normal({64, 100000}, gen);
  expect_same_bits_for_any_thread_count([&] { return ops::sum(x, {1}); });
  expect_same_bits_for_any_thread_count([&] { return ops::var(x, {-1}, 0, true); });
  expect_same_bits_for_any_thread_count([&] { return ops::sum(x, {0}); });
}

TEST(ReduceDeterminismTest, BatchNormStatisticsOverNHW) {
  Generator gen(23);
  const Tensor x = normal({8, 64, 32, 32}, gen, 0.3, 2.0);
  expect_same_bits_for_any_thread_count([&] { return ops::sum(x, {0, 2, 3}); });
  expect_same_bits_for_any_thread_count([&] { return ops::mean(x, {0, 2, 3}, true); });
  expect_same_bits_for_any_thread_count([&] { return ops::var(x, {0, 2, 3}, 0); });
  expect_same_bits_for_any_thread_count([&] { return ops::sum_to(x, {64, 1, 1}); });
}

}  // namespace
}  // namespace medtl
