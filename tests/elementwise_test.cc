// Tests for ops/elementwise.h: every op against a naive double-precision reference with its own
// broadcast index math, plus views, dtypes, NaN handling, error messages and thread-count identity.
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "tensor/ops/elementwise.h"
#include "tensor/parallel.h"
#include "tests/test_util.h"

namespace medtl {
namespace {

using testing::tensors_close;
using testing::tensors_identical;

const double kNaN = std::numeric_limits<double>::quiet_NaN();

// ---------------------------------------------------------------- reference

// NumPy broadcasting, written independently of ops::broadcast_shapes.
Shape ref_broadcast(const std::vector<Shape>& shapes) {
  size_t rank = 0;
  for (const Shape& s : shapes) rank = std::max(rank, s.size());
  Shape out(rank, 1);
  for (const Shape& s : shapes)
    for (size_t i = 0; i < s.size(); ++i) {
      int64_t& o = out[rank - s.size() + i];
      if (s[i] != 1) o = s[i];
    }
  return out;
}

// Row-major position, inside an operand of shape `src`, of the element that feeds output element
// `flat` of shape `out` (dims aligned at the end; size-1 dims always read index 0).
int64_t ref_source_index(const Shape& src, const Shape& out, int64_t flat) {
  std::vector<int64_t> coord(out.size());
  for (int64_t d = static_cast<int64_t>(out.size()) - 1; d >= 0; --d) {
    coord[d] = flat % out[d];
    flat /= out[d];
  }
  int64_t index = 0;
  const size_t lead = out.size() - src.size();
  for (size_t i = 0; i < src.size(); ++i) index = index * src[i] + (src[i] == 1 ? 0 : coord[lead + i]);
  return index;
}

// Float64 tensor: f(values of every input at the element), element by element, broadcasting.
Tensor ref_nary(const std::vector<Tensor>& inputs, const std::function<double(const std::vector<double>&)>& f) {
  std::vector<Shape> shapes;
  std::vector<std::vector<double>> values;
  for (const Tensor& t : inputs) {
    shapes.push_back(t.shape());
    values.push_back(t.to_vector<double>());
  }
  const Shape out = ref_broadcast(shapes);
  std::vector<double> result(shape_numel(out));
  std::vector<double> args(inputs.size());
  for (int64_t i = 0; i < shape_numel(out); ++i) {
    for (size_t k = 0; k < inputs.size(); ++k) args[k] = values[k][ref_source_index(shapes[k], out, i)];
    result[i] = f(args);
  }
  return from_vector<double>(result, out);
}
Tensor ref_binary(const Tensor& a, const Tensor& b, double (*f)(double, double)) {
  return ref_nary({a, b}, [f](const std::vector<double>& v) { return f(v[0], v[1]); });
}
Tensor ref_unary(const Tensor& x, const std::function<double(double)>& f) {
  return ref_nary({x}, [&f](const std::vector<double>& v) { return f(v[0]); });
}

// float32 results are compared loosely, float64 ones tightly.
::testing::AssertionResult close_for(const Tensor& got, const Tensor& want, DType dtype) {
  return dtype == DType::Float32 ? tensors_close(got, want, 1e-5, 1e-6) : tensors_close(got, want, 1e-12, 1e-12);
}

Tensor random(const Shape& shape, DType dtype, double low, double high, uint64_t seed) {
  Generator gen(seed);
  return uniform(shape, gen, low, high, dtype);
}

// Sets the thread count for a scope and restores the previous one.
struct ThreadCountGuard {
  explicit ThreadCountGuard(int threads) : saved(get_num_threads()) { set_num_threads(threads); }
  ~ThreadCountGuard() { set_num_threads(saved); }
  int saved;
};

const DType kFloatDtypes[] = {DType::Float32, DType::Float64};

// ---------------------------------------------------------------- op tables

struct BinaryCase {
  const char* name;
  Tensor (*op)(const Tensor&, const Tensor&);
  double (*ref)(double, double);
  double a_low, a_high, b_low, b_high;  // input ranges that keep the op well defined
};
const BinaryCase kBinaryCases[] = {
    {"add", [](const Tensor& a, const Tensor& b) { return ops::add(a, b); }, [](double a, double b) { return a + b; }, -3, 3, -3, 3},
    {"sub", [](const Tensor& a, const Tensor& b) { return ops::sub(a, b); }, [](double a, double b) { return a - b; }, -3, 3, -3, 3},
    {"mul", [](const Tensor& a, const Tensor& b) { return ops::mul(a, b); }, [](double a, double b) { return a * b; }, -3, 3, -3, 3},
    {"div", [](const Tensor& a, const Tensor& b) { return ops::div(a, b); }, [](double a, double b) { return a / b; }, -3, 3, 0.5, 2},
    {"pow", [](const Tensor& a, const Tensor& b) { return ops::pow(a, b); }, [](double a, double b) { return std::pow(a, b); }, 0.1, 3, -2, 2},
    {"maximum", ops::maximum, [](double a, double b) { return std::max(a, b); }, -3, 3, -3, 3},
    {"minimum", ops::minimum, [](double a, double b) { return std::min(a, b); }, -3, 3, -3, 3},
};

struct UnaryCase {
  const char* name;
  std::function<Tensor(const Tensor&)> op;
  std::function<double(double)> ref;
  double low, high;
};
const std::vector<UnaryCase>& unary_cases() {
  static const std::vector<UnaryCase> cases = {
      {"neg", ops::neg, [](double x) { return -x; }, -5, 5},
      {"exp", ops::exp, [](double x) { return std::exp(x); }, -5, 5},
      {"log", ops::log, [](double x) { return std::log(x); }, 0.01, 10},
      {"sqrt", ops::sqrt, [](double x) { return std::sqrt(x); }, 0, 10},
      {"abs", ops::abs, [](double x) { return std::abs(x); }, -5, 5},
      {"sign", ops::sign, [](double x) { return double((x > 0) - (x < 0)); }, -5, 5},
      {"relu", ops::relu, [](double x) { return x > 0 ? x : 0.0; }, -5, 5},
      {"sigmoid", ops::sigmoid, [](double x) { return 1.0 / (1.0 + std::exp(-x)); }, -8, 8},
      {"tanh", ops::tanh, [](double x) { return std::tanh(x); }, -4, 4},
      {"clamp", [](const Tensor& x) { return ops::clamp(x, -1.5, 2.0); }, [](double x) { return std::min(std::max(x, -1.5), 2.0); }, -5, 5},
      {"add_scalar", [](const Tensor& x) { return ops::add(x, 1.25); }, [](double x) { return x + 1.25; }, -5, 5},
      {"sub_scalar", [](const Tensor& x) { return ops::sub(x, 0.5); }, [](double x) { return x - 0.5; }, -5, 5},
      {"mul_scalar", [](const Tensor& x) { return ops::mul(x, -3.0); }, [](double x) { return x * -3.0; }, -5, 5},
      {"div_scalar", [](const Tensor& x) { return ops::div(x, 4.0); }, [](double x) { return x / 4.0; }, -5, 5},
      {"pow_2", [](const Tensor& x) { return ops::pow(x, 2.0); }, [](double x) { return x * x; }, -5, 5},
      {"pow_half", [](const Tensor& x) { return ops::pow(x, 0.5); }, [](double x) { return std::sqrt(x); }, 0, 5},
      {"pow_3", [](const Tensor& x) { return ops::pow(x, 3.0); }, [](double x) { return x * x * x; }, -5, 5},
      {"pow_neg_1_5", [](const Tensor& x) { return ops::pow(x, -1.5); }, [](double x) { return std::pow(x, -1.5); }, 0.1, 5},
  };
  return cases;
}

// Pairs of shapes covering NumPy's rules: size-1 dims, missing leading dims, rank 0, size 0.
const std::vector<std::pair<Shape, Shape>> kBroadcastPairs = {
    {{3, 1}, {1, 4}}, {{2, 3, 4}, {4}}, {{2, 3, 4}, {3, 1}}, {{2, 3, 4}, {}}, {{}, {5}},
    {{}, {}},         {{4, 5}, {4, 5}}, {{0, 3}, {1, 3}},   {{2, 0}, {2, 1}}, {{1}, {7, 1, 2}},
};

// ---------------------------------------------------------------- broadcast_shapes

TEST(BroadcastShapes, FollowsNumpyRules) {
  EXPECT_EQ(ops::broadcast_shapes({3, 1}, {1, 4}), (Shape{3, 4}));
  EXPECT_EQ(ops::broadcast_shapes({2, 3, 4}, {4}), (Shape{2, 3, 4}));
  EXPECT_EQ(ops::broadcast_shapes({}, {2, 3}), (Shape{2, 3}));
  EXPECT_EQ(ops::broadcast_shapes({}, {}), (Shape{}));
  EXPECT_EQ(ops::broadcast_shapes({0, 3}, {1, 3}), (Shape{0, 3}));
  EXPECT_EQ(ops::broadcast_shapes({5, 1}, {0}), (Shape{5, 0}));
  for (const auto& [a, b] : kBroadcastPairs) EXPECT_EQ(ops::broadcast_shapes(a, b), ref_broadcast({a, b}));
}

TEST(BroadcastShapes, MismatchErrorNamesBothShapesAndTheDim) {
  EXPECT_ERROR_CONTAINS(ops::broadcast_shapes({2, 3}, {4}), "(2, 3)");
  EXPECT_ERROR_CONTAINS(ops::broadcast_shapes({2, 3}, {4}), "(4,)");
  EXPECT_ERROR_CONTAINS(ops::broadcast_shapes({2, 3}, {4}), "dim 1");
  EXPECT_ERROR_CONTAINS(ops::broadcast_shapes({2, 3}, {4}), "sizes are 3 and 4");
  EXPECT_ERROR_CONTAINS(ops::broadcast_shapes({0}, {2}), "sizes are 0 and 2");
}

// ---------------------------------------------------------------- binary

TEST(BinaryOps, MatchReferenceForEveryBroadcastPairAndFloatDtype) {
  for (DType dtype : kFloatDtypes)
    for (const BinaryCase& c : kBinaryCases)
      for (const auto& [sa, sb] : kBroadcastPairs) {
        SCOPED_TRACE(std::string(c.name) + " " + dtype_name(dtype) + " " + shape_str(sa) + " " + shape_str(sb));
        const Tensor a = random(sa, dtype, c.a_low, c.a_high, 1), b = random(sb, dtype, c.b_low, c.b_high, 2);
        const Tensor got = c.op(a, b);
        EXPECT_EQ(got.dtype(), dtype);
        EXPECT_TRUE(close_for(got, ref_binary(a, b, c.ref), dtype));
        // And with the operands swapped (a broadcast left-hand side).
        const Tensor swapped_a = random(sb, dtype, c.a_low, c.a_high, 3), swapped_b = random(sa, dtype, c.b_low, c.b_high, 4);
        EXPECT_TRUE(close_for(c.op(swapped_a, swapped_b), ref_binary(swapped_a, swapped_b, c.ref), dtype));
      }
}

TEST(BinaryOps, NonContiguousInputsPermutedSlicedAndExpanded) {
  for (DType dtype : kFloatDtypes)
    for (const BinaryCase& c : kBinaryCases) {
      SCOPED_TRACE(std::string(c.name) + " " + dtype_name(dtype));
      const Tensor permuted = random({4, 5, 3}, dtype, c.a_low, c.a_high, 5).permute({2, 0, 1});  // (3, 4, 5)
      const Tensor stepped = random({3, 4, 11}, dtype, c.b_low, c.b_high, 6).slice(2, 1, 11, 2);  // (3, 4, 5)
      const Tensor expanded = random({1, 4, 1}, dtype, c.b_low, c.b_high, 7).expand({3, 4, 5});
      ASSERT_FALSE(permuted.is_contiguous());
      ASSERT_FALSE(stepped.is_contiguous());
      EXPECT_TRUE(close_for(c.op(permuted, stepped), ref_binary(permuted, stepped, c.ref), dtype));
      EXPECT_TRUE(close_for(c.op(permuted, expanded), ref_binary(permuted, expanded, c.ref), dtype));
      const Tensor transposed_b = random({5, 3}, dtype, c.b_low, c.b_high, 8).transpose(0, 1);  // (3, 5) -> broadcast
      const Tensor row_a = random({3, 1, 5}, dtype, c.a_low, c.a_high, 9);
      EXPECT_TRUE(close_for(c.op(row_a, transposed_b.unsqueeze(1)), ref_binary(row_a, transposed_b.unsqueeze(1), c.ref), dtype));
    }
}

TEST(BinaryOps, IntegerDtypesMatchReferenceExactly) {
  const std::vector<int64_t> av = {16, 17, 20, 25, 31, 18}, bv = {0, 3, 8, 7, 1, 6};  // products stay below 256
  for (DType dtype : {DType::Int64, DType::Int32, DType::UInt8}) {
    SCOPED_TRACE(dtype_name(dtype));
    const Tensor a = from_vector<int64_t>(av, {2, 3}).to(dtype);
    const Tensor b = from_vector<int64_t>(bv, {2, 3}).to(dtype);
    const Tensor row = from_vector<int64_t>({2, 5, 1}, {3}).to(dtype);
    for (const BinaryCase& c : kBinaryCases) {
      if (std::string(c.name) == "div" || std::string(c.name) == "pow") continue;
      SCOPED_TRACE(c.name);
      EXPECT_EQ(c.op(a, b).dtype(), dtype);
      EXPECT_TRUE(tensors_close(c.op(a, b), ref_binary(a, b, c.ref), 0, 0));
      EXPECT_TRUE(tensors_close(c.op(a, row), ref_binary(a, row, c.ref), 0, 0));
    }
    EXPECT_TRUE(tensors_close(ops::add(a, 3.0), ref_unary(a, [](double x) { return x + 3; }), 0, 0));
    EXPECT_TRUE(tensors_close(ops::mul(a, 2.0), ref_unary(a, [](double x) { return x * 2; }), 0, 0));
    EXPECT_TRUE(tensors_close(ops::sub(a, 16.0), ref_unary(a, [](double x) { return x - 16; }), 0, 0));
  }
}

TEST(BinaryOps, Uint8ArithmeticWrapsInTheElementType) {
  const Tensor a = from_vector<uint8_t>({250, 3}, {2});
  EXPECT_EQ(ops::add(a, from_vector<uint8_t>({10, 1}, {2})).to_vector<uint8_t>(), (std::vector<uint8_t>{4, 4}));
  EXPECT_EQ(ops::sub(a, 4.0).to_vector<uint8_t>(), (std::vector<uint8_t>{246, 255}));
}

TEST(BinaryOps, ResultIsANewTensorNotAliasingInputs) {
  const Tensor a = random({4, 4}, DType::Float32, -1, 1, 10), b = random({4, 4}, DType::Float32, -1, 1, 11);
  const Tensor c = ops::add(a, b);
  EXPECT_FALSE(c.shares_storage_with(a));
  EXPECT_FALSE(c.shares_storage_with(b));
  EXPECT_TRUE(c.is_contiguous());
}

TEST(BinaryOps, SizeZeroDimsGiveEmptyResults) {
  const Tensor a = zeros({0, 3}), b = ones({1, 3});
  for (const BinaryCase& c : kBinaryCases) {
    const Tensor got = c.op(a, b);
    EXPECT_EQ(got.shape(), (Shape{0, 3})) << c.name;
    EXPECT_EQ(got.numel(), 0);
  }
  EXPECT_EQ(ops::exp(zeros({2, 0, 4})).shape(), (Shape{2, 0, 4}));
  EXPECT_EQ(ops::lt(zeros({0}), zeros({})).shape(), (Shape{0}));
  EXPECT_EQ(ops::where(zeros({0, 1}, DType::Bool), ones({1, 2}), zeros({})).shape(), (Shape{0, 2}));
}

TEST(BinaryOps, ShapeMismatchErrorNamesOpShapesAndDim) {
  const Tensor a = zeros({2, 3}), b = zeros({2, 4});
  EXPECT_ERROR_CONTAINS(ops::add(a, b), "add");
  EXPECT_ERROR_CONTAINS(ops::add(a, b), "(2, 3)");
  EXPECT_ERROR_CONTAINS(ops::add(a, b), "(2, 4)");
  EXPECT_ERROR_CONTAINS(ops::add(a, b), "dim 1");
  EXPECT_ERROR_CONTAINS(ops::mul(zeros({5, 2, 3}), zeros({4, 1, 3})), "dim 0");
  EXPECT_ERROR_CONTAINS(ops::lt(a, b), "lt");
}

TEST(BinaryOps, DtypeMismatchErrorNamesBothDtypesAndSuggestsTo) {
  const Tensor f32 = zeros({2}), f64 = zeros({2}, DType::Float64), i64 = zeros({2}, DType::Int64);
  EXPECT_ERROR_CONTAINS(ops::add(f32, f64), "float32");
  EXPECT_ERROR_CONTAINS(ops::add(f32, f64), "float64");
  EXPECT_ERROR_CONTAINS(ops::add(f32, f64), ".to(");
  EXPECT_ERROR_CONTAINS(ops::eq(i64, f32), "int64");
  EXPECT_ERROR_CONTAINS(ops::where(ones({2}, DType::Bool), f32, f64), "float64");
  EXPECT_ERROR_CONTAINS(ops::add_(f32, f64), "float64");
}

TEST(BinaryOps, UnsupportedDtypesAreRejectedWithTheirName) {
  EXPECT_ERROR_CONTAINS(ops::div(zeros({2}, DType::Int64), ones({2}, DType::Int64)), "int64");
  EXPECT_ERROR_CONTAINS(ops::exp(zeros({2}, DType::Int32)), "int32");
  EXPECT_ERROR_CONTAINS(ops::add(zeros({2}, DType::Bool), zeros({2}, DType::Bool)), "bool");
  EXPECT_ERROR_CONTAINS(ops::add(zeros({2}, DType::Float16), zeros({2}, DType::Float16)), "float16");
  EXPECT_ERROR_CONTAINS(ops::relu(zeros({2}, DType::BFloat16)), "bfloat16");
}

// ---------------------------------------------------------------- comparisons and where

TEST(Comparisons, ReturnBoolMatchingReferenceWithTiesAndBroadcasting) {
  struct Case {
    const char* name;
    Tensor (*op)(const Tensor&, const Tensor&);
    double (*ref)(double, double);
  };
  const Case cases[] = {
      {"eq", ops::eq, [](double a, double b) { return double(a == b); }},
      {"ne", ops::ne, [](double a, double b) { return double(a != b); }},
      {"lt", [](const Tensor& a, const Tensor& b) { return ops::lt(a, b); }, [](double a, double b) { return double(a < b); }},
      {"le", ops::le, [](double a, double b) { return double(a <= b); }},
      {"gt", [](const Tensor& a, const Tensor& b) { return ops::gt(a, b); }, [](double a, double b) { return double(a > b); }},
      {"ge", ops::ge, [](double a, double b) { return double(a >= b); }},
  };
  // Small integers, so ties happen often; both operands broadcast.
  const std::vector<int64_t> av = {0, 1, 2, 2, 1, 0, 3, 1, 2, 0, 1, 2}, bv = {1, 2, 0, 1, 2, 2, 3, 0};
  for (DType dtype : {DType::Float32, DType::Float64, DType::Int64, DType::Int32, DType::UInt8, DType::Bool})
    for (const Case& c : cases) {
      SCOPED_TRACE(std::string(c.name) + " " + dtype_name(dtype));
      const Tensor a = from_vector<int64_t>(av, {3, 1, 4}).to(dtype);
      const Tensor b = from_vector<int64_t>(bv, {4, 2}).to(dtype).transpose(0, 1);  // (2, 4), strided
      const Tensor got = c.op(a, b);
      EXPECT_EQ(got.dtype(), DType::Bool);
      EXPECT_EQ(got.shape(), (Shape{3, 2, 4}));
      EXPECT_TRUE(tensors_close(got, ref_binary(a, b, c.ref), 0, 0));
      for (uint8_t v : got.to_vector<uint8_t>()) EXPECT_TRUE(v == 0 || v == 1);
    }
}

TEST(Comparisons, NaNComparesUnequalToEverything) {
  const Tensor a = from_vector<double>({kNaN, 1.0}, {2});
  EXPECT_EQ(ops::eq(a, a).to_vector<uint8_t>(), (std::vector<uint8_t>{0, 1}));
  EXPECT_EQ(ops::ne(a, a).to_vector<uint8_t>(), (std::vector<uint8_t>{1, 0}));
  EXPECT_EQ(ops::lt(a, 2.0).to_vector<uint8_t>(), (std::vector<uint8_t>{0, 1}));
}

TEST(Comparisons, ScalarRhsComparesInDouble) {
  const Tensor f = from_vector<float>({-1.0f, 0.25f, 0.5f, 0.75f}, {2, 2});
  EXPECT_EQ(ops::gt(f, 0.5).to_vector<uint8_t>(), (std::vector<uint8_t>{0, 0, 0, 1}));
  EXPECT_EQ(ops::lt(f, 0.5).to_vector<uint8_t>(), (std::vector<uint8_t>{1, 1, 0, 0}));
  EXPECT_EQ(ops::gt(f, 0.5).dtype(), DType::Bool);
  // An integer tensor against 0.5: x > 0.5 and x < 0.5, not a truncated 0.
  const Tensor i = from_vector<int64_t>({-1, 0, 1, 2}, {4});
  EXPECT_EQ(ops::gt(i, 0.5).to_vector<uint8_t>(), (std::vector<uint8_t>{0, 0, 1, 1}));
  EXPECT_EQ(ops::lt(i, 0.5).to_vector<uint8_t>(), (std::vector<uint8_t>{1, 1, 0, 0}));
  const Tensor strided = random({6, 4}, DType::Float64, -1, 1, 12).slice(0, 0, 6, 3);
  EXPECT_TRUE(tensors_close(ops::gt(strided, 0.1), ref_unary(strided, [](double x) { return double(x > 0.1); }), 0, 0));
}

TEST(Where, MatchesReferenceWithThreeWayBroadcasting) {
  for (DType dtype : kFloatDtypes) {
    SCOPED_TRACE(dtype_name(dtype));
    const Tensor cond = ops::gt(random({3, 1}, DType::Float64, -1, 1, 13), 0.0);  // (3, 1) Bool
    const Tensor a = random({1, 4}, dtype, -5, 5, 14);
    const Tensor b = random({}, dtype, -5, 5, 15);
    const auto pick = [](const std::vector<double>& v) { return v[0] != 0 ? v[1] : v[2]; };
    const Tensor got = ops::where(cond, a, b);
    EXPECT_EQ(got.shape(), (Shape{3, 4}));
    EXPECT_EQ(got.dtype(), dtype);
    EXPECT_TRUE(tensors_close(got, ref_nary({cond, a, b}, pick), 0, 0));
    // Contiguous, same shape (the fast path) and permuted operands.
    const Tensor c2 = ops::lt(random({5, 6}, dtype, -1, 1, 16), random({5, 6}, dtype, -1, 1, 17));
    const Tensor a2 = random({5, 6}, dtype, -1, 1, 18), b2 = random({6, 5}, dtype, -1, 1, 19).transpose(0, 1);
    EXPECT_TRUE(tensors_close(ops::where(c2, a2, b2), ref_nary({c2, a2, b2}, pick), 0, 0));
  }
}

TEST(Where, AnyDtypeConditionTreatsNonzeroAsTrue) {
  const Tensor cond = from_vector<float>({0.0f, -0.0f, 2.5f, -1.0f, std::nanf("")}, {5});
  const Tensor a = full({5}, 1.0, DType::Int64), b = full({5}, 7.0, DType::Int64);
  EXPECT_EQ(ops::where(cond, a, b).to_vector<int64_t>(), (std::vector<int64_t>{7, 7, 1, 1, 1}));
  const Tensor icond = from_vector<int32_t>({0, 3, -2, 0, 1}, {5});
  EXPECT_EQ(ops::where(icond, a, b).to_vector<int64_t>(), (std::vector<int64_t>{7, 1, 1, 7, 1}));
}

TEST(Where, ShapeMismatchErrorNamesShapes) {
  EXPECT_ERROR_CONTAINS(ops::where(zeros({3}, DType::Bool), zeros({4}), zeros({})), "(3,)");
  EXPECT_ERROR_CONTAINS(ops::where(zeros({3}, DType::Bool), zeros({3}), zeros({2, 2})), "(2, 2)");
}

// ---------------------------------------------------------------- unary

TEST(UnaryOps, MatchReferenceContiguousAndNonContiguous) {
  for (DType dtype : kFloatDtypes)
    for (const UnaryCase& c : unary_cases()) {
      SCOPED_TRACE(std::string(c.name) + " " + dtype_name(dtype));
      const Tensor contiguous = random({7, 9}, dtype, c.low, c.high, 20);
      const Tensor permuted = random({4, 3, 5}, dtype, c.low, c.high, 21).permute({1, 2, 0});
      const Tensor stepped = random({9, 10}, dtype, c.low, c.high, 22).slice(0, 1, 9, 3).slice(1, 0, 10, 2);
      const Tensor expanded = random({3, 1}, dtype, c.low, c.high, 23).expand({3, 6});
      const Tensor scalar = random({}, dtype, c.low, c.high, 24);
      for (const Tensor& x : {contiguous, permuted, stepped, expanded, scalar}) {
        const Tensor got = c.op(x);
        EXPECT_EQ(got.dtype(), dtype);
        EXPECT_EQ(got.shape(), x.shape());
        EXPECT_TRUE(close_for(got, ref_unary(x, c.ref), dtype));
      }
    }
}

TEST(UnaryOps, IntegerDtypesForNegAbsSignReluClamp) {
  const Tensor x = from_vector<int64_t>({-7, -1, 0, 2, 9}, {5});
  for (DType dtype : {DType::Int64, DType::Int32}) {
    const Tensor t = x.to(dtype);
    EXPECT_TRUE(tensors_close(ops::neg(t), ref_unary(t, [](double v) { return -v; }), 0, 0));
    EXPECT_TRUE(tensors_close(ops::abs(t), ref_unary(t, [](double v) { return std::abs(v); }), 0, 0));
    EXPECT_TRUE(tensors_close(ops::sign(t), ref_unary(t, [](double v) { return double((v > 0) - (v < 0)); }), 0, 0));
    EXPECT_TRUE(tensors_close(ops::relu(t), ref_unary(t, [](double v) { return v > 0 ? v : 0; }), 0, 0));
    EXPECT_TRUE(tensors_close(ops::clamp(t, -2, 3), ref_unary(t, [](double v) { return std::clamp(v, -2.0, 3.0); }), 0, 0));
    EXPECT_EQ(ops::relu(t).dtype(), dtype);
  }
  // Bounds outside uint8's range are clipped to it.
  EXPECT_EQ(ops::clamp(from_vector<uint8_t>({0, 100, 255}, {3}), -1, 300).to_vector<uint8_t>(),
            (std::vector<uint8_t>{0, 100, 255}));
}

TEST(UnaryOps, SigmoidStaysFiniteAtPlusMinus1000) {
  for (DType dtype : kFloatDtypes) {
    SCOPED_TRACE(dtype_name(dtype));
    const Tensor x = from_vector<double>({-1000, -100, -20, 0, 20, 100, 1000}, {7}).to(dtype);
    const auto y = ops::sigmoid(x).to_vector<double>();
    for (double v : y) EXPECT_TRUE(std::isfinite(v)) << v;
    EXPECT_EQ(y[0], 0.0);
    EXPECT_EQ(y[3], 0.5);
    EXPECT_EQ(y[6], 1.0);
    EXPECT_GT(y[2], 0.0);  // exp(-20) is representable in both dtypes: no early flush to 0
    EXPECT_NEAR(y[2], 1.0 / (1.0 + std::exp(20.0)), 1e-6 * 1.0 / (1.0 + std::exp(20.0)) + 1e-30);
    EXPECT_TRUE(std::isnan(ops::sigmoid(from_vector<double>({kNaN}, {1}).to(dtype)).item()));
  }
}

TEST(UnaryOps, ReluClampSignKeepNaN) {
  for (DType dtype : kFloatDtypes) {
    SCOPED_TRACE(dtype_name(dtype));
    const Tensor x = from_vector<double>({kNaN, -2.0, 3.0, -0.0}, {4}).to(dtype);
    const auto relu = ops::relu(x).to_vector<double>();
    EXPECT_TRUE(std::isnan(relu[0]));
    EXPECT_EQ(relu[1], 0.0);
    EXPECT_EQ(relu[2], 3.0);
    EXPECT_EQ(relu[3], 0.0);
    const auto clamped = ops::clamp(x, -1.0, 1.0).to_vector<double>();
    EXPECT_TRUE(std::isnan(clamped[0]));
    EXPECT_EQ(clamped[1], -1.0);
    EXPECT_EQ(clamped[2], 1.0);
    EXPECT_TRUE(std::isnan(ops::sign(x).to_vector<double>()[0]));
    EXPECT_EQ(ops::sign(x).to_vector<double>()[3], 0.0);
  }
}

// The fused kernel of relu's backward equals the where() formulation it replaced, bit for bit,
// on every kind of output value (positive, zero, -0, negative, NaN, inf) and through a strided view.
TEST(UnaryOps, ReluBackwardEqualsWhereFormulation) {
  Generator gen(11);
  for (DType dtype : kFloatDtypes) {
    SCOPED_TRACE(dtype_name(dtype));
    const Tensor out = ops::relu(from_vector<double>({kNaN, -2.0, 3.0, -0.0, 0.0, 1e-30, INFINITY, -INFINITY}, {8})
                                     .to(dtype));
    const Tensor g = uniform({8}, gen, -1.0, 1.0, dtype);
    const auto fused = ops::relu_backward(g, out).to_vector<double>();
    EXPECT_EQ(fused, ops::where(ops::gt(out, 0.0), g, scalar_tensor(0.0, dtype)).to_vector<double>());
    EXPECT_EQ(fused[0], 0.0);  // NaN output: no gradient, as PyTorch's threshold_backward
    EXPECT_EQ(fused[2], g.to_vector<double>()[2]);
    const Tensor big = ops::relu(uniform({7, 9}, gen, -1.0, 1.0, dtype)).transpose(0, 1);  // strided
    const Tensor gb = uniform({9, 7}, gen, -1.0, 1.0, dtype);
    EXPECT_TRUE(testing::tensors_identical(ops::relu_backward(gb, big),
                                           ops::where(ops::gt(big, 0.0), gb, scalar_tensor(0.0, dtype))));
  }
}

TEST(UnaryOps, ClampRejectsLowAboveHigh) {
  EXPECT_ERROR_CONTAINS(ops::clamp(zeros({2}), 2.0, 1.0), "clamp: low 2 is greater than high 1");
}

TEST(BinaryOps, MaximumMinimumPropagateNaNFromEitherSide) {
  const Tensor a = from_vector<float>({std::nanf(""), 1.0f, 2.0f}, {3});
  const Tensor b = from_vector<float>({0.0f, std::nanf(""), 1.0f}, {3});
  for (const Tensor& r : {ops::maximum(a, b), ops::minimum(a, b), ops::maximum(b, a), ops::minimum(b, a)}) {
    const auto v = r.to_vector<double>();
    EXPECT_TRUE(std::isnan(v[0]));
    EXPECT_TRUE(std::isnan(v[1]));
  }
  EXPECT_EQ(ops::maximum(a, b).to_vector<double>()[2], 2.0);
  EXPECT_EQ(ops::minimum(a, b).to_vector<double>()[2], 1.0);
}

// ---------------------------------------------------------------- in place

TEST(InPlace, AddOnSteppedViewWritesThroughToBase) {
  for (DType dtype : kFloatDtypes) {
    SCOPED_TRACE(dtype_name(dtype));
    const Tensor base = random({4, 6}, dtype, -1, 1, 30);
    const Tensor before = base.clone();
    const Tensor view = base.slice(1, 0, 6, 2);  // (4, 3), every other column
    const Tensor row = random({3}, dtype, -1, 1, 31);
    ops::add_(view, row);
    const auto got = base.to_vector<double>(), was = before.to_vector<double>(), r = row.to_vector<double>();
    for (int64_t i = 0; i < 4; ++i)
      for (int64_t j = 0; j < 6; ++j) {
        const double sum = dtype == DType::Float32 ? double(float(was[i * 6 + j]) + float(r[j / 2]))
                                                   : was[i * 6 + j] + r[j / 2];
        const double want = j % 2 == 0 ? sum : was[i * 6 + j];
        EXPECT_EQ(got[i * 6 + j], want) << i << "," << j;
      }
  }
}

TEST(InPlace, AddScaledOnTransposedViewWithBroadcastSrc) {
  for (DType dtype : kFloatDtypes) {
    SCOPED_TRACE(dtype_name(dtype));
    const Tensor base = random({5, 3}, dtype, -1, 1, 32);
    const Tensor view = base.transpose(0, 1);  // (3, 5)
    const Tensor src = random({3, 1}, dtype, -1, 1, 33);
    const Tensor want = ref_nary({view, src}, [](const std::vector<double>& v) { return v[0] + 0.25 * v[1]; });
    ops::add_scaled_(view, src, 0.25);
    EXPECT_EQ(view.shape(), (Shape{3, 5}));
    EXPECT_TRUE(close_for(view, want, dtype));
    EXPECT_TRUE(close_for(base.transpose(0, 1), want, dtype));
  }
}

TEST(InPlace, MulOnSlicedViewLeavesTheRestUntouched) {
  const Tensor base = arange(0, 12, 1, DType::Float64).view({3, 4});
  ops::mul_(base.narrow(0, 1, 1), -2.0);
  EXPECT_EQ(base.to_vector<double>(), (std::vector<double>{0, 1, 2, 3, -8, -10, -12, -14, 8, 9, 10, 11}));
  const Tensor ints = arange(6, DType::Int64);
  ops::mul_(ints.slice(0, 0, 6, 2), 3.0);
  ops::add_(ints, from_vector<int64_t>({10}, {1}));
  EXPECT_EQ(ints.to_vector<int64_t>(), (std::vector<int64_t>{10, 11, 16, 13, 22, 15}));
}

TEST(InPlace, AddOfTensorToItselfDoubles) {
  const Tensor x = random({100}, DType::Float32, -1, 1, 34);
  const Tensor want = ops::mul(x, 2.0);
  ops::add_(x, x);
  EXPECT_TRUE(tensors_identical(x, want));
}

TEST(InPlace, ErrorsForGrowingDstExpandedDstAndDtypeMismatch) {
  EXPECT_ERROR_CONTAINS(ops::add_(zeros({3, 1}), zeros({3, 4})), "dst cannot grow");
  EXPECT_ERROR_CONTAINS(ops::add_(zeros({3, 1}), zeros({3, 4})), "(3, 4)");
  EXPECT_ERROR_CONTAINS(ops::add_(zeros({3}), zeros({4})), "dim 0");
  EXPECT_ERROR_CONTAINS(ops::add_(zeros({1, 4}).expand({3, 4}), zeros({4})), "expanded");
  EXPECT_ERROR_CONTAINS(ops::mul_(zeros({1}).expand({5}), 2.0), "expanded");
  EXPECT_ERROR_CONTAINS(ops::add_scaled_(zeros({2}), zeros({2}, DType::Float64), 1.0), "float32");
  EXPECT_ERROR_CONTAINS(ops::add_scaled_(zeros({2}, DType::Int64), zeros({2}, DType::Int64), 1.0), "int64");
}

// ---------------------------------------------------------------- threads

TEST(Threads, ResultsAreBitIdenticalForOneAndTwoThreads) {
  const Tensor a = random({257, 4099}, DType::Float32, -4, 4, 40);        // ~1M elements: many grains
  const Tensor row = random({4099}, DType::Float32, -4, 4, 41);
  const Tensor at = random({4099, 257}, DType::Float32, -4, 4, 42).transpose(0, 1);  // (257, 4099) strided
  const auto run = [&](int threads) {
    ThreadCountGuard guard(threads);
    std::vector<Tensor> out = {ops::add(a, row),       ops::div(a, at),   ops::sigmoid(at),
                               ops::pow(a, 3.0),       ops::gt(a, at),    ops::where(ops::gt(a, 0.0), a, at),
                               ops::tanh(a),           ops::mul(at, row)};
    Tensor acc = at.clone();
    ops::add_scaled_(acc, a, 0.5);
    out.push_back(acc);
    return out;
  };
  const auto one = run(1);
  const auto two = run(2);
  ASSERT_EQ(one.size(), two.size());
  for (size_t i = 0; i < one.size(); ++i) EXPECT_TRUE(tensors_identical(one[i], two[i])) << "result " << i;
  EXPECT_TRUE(close_for(one[0], ref_binary(a, row, [](double x, double y) { return x + y; }), DType::Float32));
}

TEST(Threads, GuardRestoresTheThreadCount) {
  const int before = get_num_threads();
  { ThreadCountGuard guard(1); EXPECT_EQ(get_num_threads(), 1); }
  EXPECT_EQ(get_num_threads(), before);
}

}  // namespace
}  // namespace medtl
