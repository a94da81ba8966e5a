// Tests of the backward engine and of every differentiable op's gradient (gradcheck in float64).
#include <gtest/gtest.h>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "tensor/ops/elementwise.h"
#include "tests/test_util.h"

namespace medtl {
namespace {

using Inputs = std::vector<Tensor>;

Tensor random_leaf(const Shape& shape, uint64_t seed, double low = -1.0, double high = 1.0) {
  Generator gen(seed);
  return ag::requires_grad_leaf(uniform(shape, gen, low, high, DType::Float64));
}

void expect_gradcheck(const std::function<Tensor(const Inputs&)>& fn, const Inputs& inputs) {
  const ag::GradcheckResult result = ag::gradcheck(fn, inputs);
  EXPECT_TRUE(result.ok) << result.message;
}

// ---------------------------------------------------------------- engine

TEST(AutogradEngine, ChainRuleOnScalarExpression) {
  // y = (a * b + a)^2 at a = 3, b = 2: dy/da = 2 (ab + a)(b + 1) = 54, dy/db = 2 (ab + a) a = 54
  Tensor a = ag::requires_grad_leaf(scalar_tensor(3.0, DType::Float64));
  Tensor b = ag::requires_grad_leaf(scalar_tensor(2.0, DType::Float64));
  Tensor y = ag::pow(a * b + a, 2.0);
  ag::backward(y);
  EXPECT_DOUBLE_EQ(ag::grad(a).item(), 54.0);
  EXPECT_DOUBLE_EQ(ag::grad(b).item(), 54.0);
}

TEST(AutogradEngine, GradientsAccumulateAcrossBackwardCalls) {
  Tensor x = ag::requires_grad_leaf(full({3}, 2.0, DType::Float64));
  ag::backward(ag::sum(x * 3.0));
  ag::backward(ag::sum(x * 3.0));
  EXPECT_EQ(ag::grad(x).to_vector<double>(), std::vector<double>({6, 6, 6}));
  ag::zero_grad(x);
  EXPECT_FALSE(ag::grad(x).defined());
}

TEST(AutogradEngine, SharedSubexpressionSumsBothPaths) {
  // z = s * s with s = x + 1: dz/dx = 2 (x + 1)
  Tensor x = ag::requires_grad_leaf(from_vector<double>({1, 2}, {2}));
  Tensor s = x + 1.0;
  ag::backward(ag::sum(s * s));
  EXPECT_EQ(ag::grad(x).to_vector<double>(), std::vector<double>({4, 6}));
}

TEST(AutogradEngine, BroadcastGradientIsSummedToInputShape) {
  Tensor a = ag::requires_grad_leaf(ones({2, 3}, DType::Float64));
  Tensor b = ag::requires_grad_leaf(ones({3}, DType::Float64));
  ag::backward(ag::sum(a * b));
  EXPECT_EQ(ag::grad(b).shape(), Shape({3}));
  EXPECT_EQ(ag::grad(b).to_vector<double>(), std::vector<double>({2, 2, 2}));
  EXPECT_EQ(ag::grad(a).shape(), Shape({2, 3}));
}

TEST(AutogradEngine, NoGradGuardRecordsNothing) {
  Tensor x = random_leaf({4}, 1);
  Tensor y;
  {
    ag::NoGradGuard guard;
    EXPECT_FALSE(ag::grad_enabled());
    y = ag::exp(x);
  }
  EXPECT_TRUE(ag::grad_enabled());
  EXPECT_FALSE(ag::requires_grad(y));
  EXPECT_ERROR_CONTAINS(ag::backward(ag::sum(y)), "does not require grad");
}

TEST(AutogradEngine, DetachStopsGradientAndSharesStorage) {
  Tensor x = random_leaf({3}, 2);
  Tensor d = ag::detach(x);
  EXPECT_TRUE(d.shares_storage_with(x));
  EXPECT_FALSE(ag::requires_grad(d));
  ag::backward(ag::sum(x * d));  // d is a constant: dx = d
  EXPECT_TRUE(testing::tensors_identical(ag::grad(x), x));
}

TEST(AutogradEngine, SecondBackwardOverFreedGraphExplains) {
  Tensor x = random_leaf({3}, 3);
  Tensor y = ag::sum(ag::exp(x));
  ag::backward(y);
  EXPECT_ERROR_CONTAINS(ag::backward(y), "retain_graph");
}

TEST(AutogradEngine, RetainGraphAllowsSecondBackward) {
  Tensor x = random_leaf({3}, 4);
  Tensor y = ag::sum(ag::exp(x));
  ag::backward(y, Tensor(), /*retain_graph=*/true);
  const Tensor first = ag::grad(x).clone();
  ag::backward(y);
  EXPECT_TRUE(testing::tensors_close(ag::grad(x), ops::mul(first, 2.0)));
}

TEST(AutogradEngine, NonScalarRootNeedsGradOutput) {
  Tensor x = random_leaf({3}, 5);
  EXPECT_ERROR_CONTAINS(ag::backward(x * 2.0), "pass grad_output");
  EXPECT_ERROR_CONTAINS(ag::backward(x * 2.0, ones({4}, DType::Float64)), "grad_output has shape");
}

TEST(AutogradEngine, LeafRulesAreEnforced) {
  Tensor x = random_leaf({2}, 6);
  Tensor y = x * 2.0;
  EXPECT_TRUE(ag::is_leaf(x));
  EXPECT_FALSE(ag::is_leaf(y));
  EXPECT_EQ(ag::grad_fn(y)->name, "mul_scalar");
  EXPECT_ERROR_CONTAINS(ag::set_requires_grad(y, true), "not a leaf");
  Tensor labels = zeros({2}, DType::Int64);
  EXPECT_ERROR_CONTAINS(ag::set_requires_grad(labels, true), "only float32/float64");
}

TEST(AutogradEngine, ViewGradientReachesTheRightElements) {
  Tensor x = ag::requires_grad_leaf(zeros({2, 3}, DType::Float64));
  Tensor piece = ag::narrow(ag::transpose(x, 0, 1), 0, 1, 2);  // x[:, 1:3]^T
  ag::backward(ag::sum(piece * 2.0));
  EXPECT_EQ(ag::grad(x).to_vector<double>(), std::vector<double>({0, 2, 2, 0, 2, 2}));
}

TEST(AutogradEngine, Float32GraphsWork) {
  Generator gen(7);
  Tensor w = ag::requires_grad_leaf(uniform({4, 3}, gen));
  Tensor x = uniform({2, 4}, gen);
  ag::backward(ag::mean(ag::matmul(x, w)));
  EXPECT_EQ(ag::grad(w).dtype(), DType::Float32);
  EXPECT_EQ(ag::grad(w).shape(), Shape({4, 3}));
}

// ---------------------------------------------------------------- gradcheck itself

TEST(Gradcheck, CatchesAWrongBackward) {
  // A deliberately wrong formula (d/dx x^2 reported as x) must be caught.
  auto wrong_square = [](const Inputs& in) {
    Tensor out = ops::mul(in[0], in[0]);
    return ag::record("wrong_square", out, {in[0]}, [x = ag::detach(in[0])](const Tensor& g, const ag::NeedsGrad&) {
      return std::vector<Tensor>{ops::mul(g, x)};
    });
  };
  const ag::GradcheckResult result = ag::gradcheck(wrong_square, {random_leaf({3}, 8)});
  EXPECT_FALSE(result.ok);
  EXPECT_NE(result.message.find("analytic"), std::string::npos) << result.message;
}

TEST(Gradcheck, RejectsFloat32Inputs) {
  Generator gen(9);
  Tensor x = ag::requires_grad_leaf(uniform({2}, gen));
  EXPECT_ERROR_CONTAINS(ag::gradcheck([](const Inputs& in) { return in[0]; }, {x}), "float64");
}

// ---------------------------------------------------------------- every op

TEST(OpGradients, BinaryBroadcasting) {
  const Inputs in = {random_leaf({2, 3}, 10), random_leaf({3}, 11, 0.5, 2.0)};
  expect_gradcheck([](const Inputs& v) { return ag::add(v[0], v[1]); }, in);
  expect_gradcheck([](const Inputs& v) { return ag::sub(v[0], v[1]); }, in);
  expect_gradcheck([](const Inputs& v) { return ag::mul(v[0], v[1]); }, in);
  expect_gradcheck([](const Inputs& v) { return ag::div(v[0], v[1]); }, in);
  expect_gradcheck([](const Inputs& v) { return ag::maximum(v[0], v[1]); }, in);
  expect_gradcheck([](const Inputs& v) { return ag::minimum(v[0], v[1]); }, in);
}

TEST(OpGradients, PowWithTensorExponent) {
  const Inputs in = {random_leaf({2, 2}, 12, 0.5, 2.0), random_leaf({2, 1}, 13, -1.5, 1.5)};
  expect_gradcheck([](const Inputs& v) { return ag::pow(v[0], v[1]); }, in);
}

TEST(OpGradients, ScalarRightHandSides) {
  const Inputs in = {random_leaf({3, 2}, 14, 0.5, 2.0)};
  expect_gradcheck([](const Inputs& v) { return ag::add(v[0], 1.5); }, in);
  expect_gradcheck([](const Inputs& v) { return ag::sub(v[0], 1.5); }, in);
  expect_gradcheck([](const Inputs& v) { return ag::mul(v[0], -2.5); }, in);
  expect_gradcheck([](const Inputs& v) { return ag::div(v[0], 4.0); }, in);
  expect_gradcheck([](const Inputs& v) { return ag::pow(v[0], 3.0); }, in);
  expect_gradcheck([](const Inputs& v) { return ag::pow(v[0], -0.5); }, in);
}

TEST(OpGradients, Unary) {
  const Inputs any = {random_leaf({2, 3}, 15, -2.0, 2.0)};
  const Inputs positive = {random_leaf({2, 3}, 16, 0.2, 3.0)};
  expect_gradcheck([](const Inputs& v) { return ag::neg(v[0]); }, any);
  expect_gradcheck([](const Inputs& v) { return ag::exp(v[0]); }, any);
  expect_gradcheck([](const Inputs& v) { return ag::log(v[0]); }, positive);
  expect_gradcheck([](const Inputs& v) { return ag::sqrt(v[0]); }, positive);
  expect_gradcheck([](const Inputs& v) { return ag::abs(v[0]); }, any);
  expect_gradcheck([](const Inputs& v) { return ag::relu(v[0]); }, any);
  expect_gradcheck([](const Inputs& v) { return ag::sigmoid(v[0]); }, any);
  expect_gradcheck([](const Inputs& v) { return ag::tanh(v[0]); }, any);
  expect_gradcheck([](const Inputs& v) { return ag::clamp(v[0], -0.7, 0.9); }, any);
}

TEST(OpGradients, Where) {
  const Tensor cond = from_vector<uint8_t>({1, 0, 0, 1, 1, 0}, {2, 3}).to(DType::Bool);
  const Inputs in = {cond, random_leaf({2, 3}, 17), random_leaf({3}, 18)};
  expect_gradcheck([](const Inputs& v) { return ag::where(v[0], v[1], v[2]); }, in);
}

TEST(OpGradients, Reductions) {
  const Inputs in = {random_leaf({2, 3, 4}, 19)};
  expect_gradcheck([](const Inputs& v) { return ag::sum(v[0]); }, in);
  expect_gradcheck([](const Inputs& v) { return ag::sum(v[0], {0, 2}); }, in);
  expect_gradcheck([](const Inputs& v) { return ag::sum(v[0], {-1}, true); }, in);
  expect_gradcheck([](const Inputs& v) { return ag::mean(v[0], {1}); }, in);
  expect_gradcheck([](const Inputs& v) { return ag::mean(v[0]); }, in);
  expect_gradcheck([](const Inputs& v) { return ag::var(v[0], {2}); }, in);
  expect_gradcheck([](const Inputs& v) { return ag::var(v[0], {0, 1}, 0, true); }, in);
  expect_gradcheck([](const Inputs& v) { return ag::max(v[0], 1); }, in);
  expect_gradcheck([](const Inputs& v) { return ag::max(v[0], -1, true); }, in);
}

TEST(OpGradients, Matmul) {
  expect_gradcheck([](const Inputs& v) { return ag::matmul(v[0], v[1]); }, {random_leaf({3, 4}, 20), random_leaf({4, 2}, 21)});
  expect_gradcheck([](const Inputs& v) { return ag::matmul(v[0], v[1]); },
                   {random_leaf({2, 1, 2, 3}, 22), random_leaf({3, 3, 2}, 23)});
  expect_gradcheck([](const Inputs& v) { return ag::matmul(v[0], v[1]); }, {random_leaf({3}, 24), random_leaf({3, 2}, 25)});
  expect_gradcheck([](const Inputs& v) { return ag::matmul(v[0], v[1]); }, {random_leaf({2, 3}, 26), random_leaf({3}, 27)});
  expect_gradcheck([](const Inputs& v) { return ag::matmul(v[0], v[1]); }, {random_leaf({4}, 28), random_leaf({4}, 29)});
  expect_gradcheck([](const Inputs& v) { return ag::matmul(ag::transpose(v[0], 0, 1), v[1]); },
                   {random_leaf({4, 3}, 30), random_leaf({4, 2}, 31)});
}

TEST(OpGradients, Views) {
  const Inputs in = {random_leaf({2, 3, 4}, 32)};
  expect_gradcheck([](const Inputs& v) { return ag::reshape(v[0], {4, -1}); }, in);
  expect_gradcheck([](const Inputs& v) { return ag::permute(v[0], {2, 0, 1}); }, in);
  expect_gradcheck([](const Inputs& v) { return ag::transpose(v[0], 0, 2); }, in);
  expect_gradcheck([](const Inputs& v) { return ag::narrow(v[0], 2, 1, 2); }, in);
  expect_gradcheck([](const Inputs& v) { return ag::slice(v[0], 2, 0, 4, 2); }, in);
  expect_gradcheck([](const Inputs& v) { return ag::select(v[0], 1, -1); }, in);
  expect_gradcheck([](const Inputs& v) { return ag::flatten(v[0], 1); }, in);
  expect_gradcheck([](const Inputs& v) { return ag::contiguous(ag::permute(v[0], {1, 2, 0})); }, in);
  expect_gradcheck([](const Inputs& v) { return ag::unsqueeze(v[0], 1); }, in);
  expect_gradcheck([](const Inputs& v) { return ag::squeeze(ag::unsqueeze(v[0], 3), 3); }, in);
  expect_gradcheck([](const Inputs& v) { return ag::expand(v[0], {2, 2, 3, 4}); }, in);
  expect_gradcheck([](const Inputs& v) { return ag::expand(ag::narrow(v[0], 1, 0, 1), {2, 5, 4}); }, in);
}

TEST(OpGradients, DtypeConversionRoundTrip) {
  // Through float32 and back: the gradient is exact up to float32 rounding of the values.
  Tensor x = random_leaf({3}, 33);
  ag::backward(ag::sum(ag::to(ag::mul(ag::to(x, DType::Float32), 2.0), DType::Float64)));
  EXPECT_EQ(ag::grad(x).dtype(), DType::Float64);
  EXPECT_EQ(ag::grad(x).to_vector<double>(), std::vector<double>({2, 2, 2}));
}

TEST(OpGradients, CompositeExpression) {
  // A small MLP-like expression: mean(sigmoid(x @ w + b)^2) exercises many nodes at once.
  expect_gradcheck(
      [](const Inputs& v) { return ag::mean(ag::pow(ag::sigmoid(ag::add(ag::matmul(v[0], v[1]), v[2])), 2.0)); },
      {random_leaf({3, 4}, 34), random_leaf({4, 2}, 35), random_leaf({2}, 36)});
}

}  // namespace
}  // namespace medtl
