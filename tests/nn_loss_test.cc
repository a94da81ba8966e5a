// Tests of nn/ losses: values against double references (extreme logits, soft targets, saturated
// probabilities), reductions, closed-form gradients, float64 gradcheck, and error messages.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "nn/loss.h"
#include "tests/test_util.h"

namespace medtl {
namespace {

using nn::Reduction;
using testing::tensors_close;
using Inputs = std::vector<Tensor>;

Tensor random_leaf(const Shape& shape, uint64_t seed, double low, double high) {
  Generator gen(seed);
  return ag::requires_grad_leaf(uniform(shape, gen, low, high, DType::Float64));
}

void expect_gradcheck(const std::function<Tensor(const Inputs&)>& fn, const Inputs& inputs) {
  const ag::GradcheckResult result = ag::gradcheck(fn, inputs);
  EXPECT_TRUE(result.ok) << result.message;
}

double ref_sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// -[y log s + (1 - y) log(1 - s)] in double, with log1p for accuracy; x moderate.
double ref_bce_logits(double x, double y) {
  return -(y * std::log(ref_sigmoid(x)) + (1.0 - y) * std::log1p(-ref_sigmoid(x)));
}

// ================================================================ binary_cross_entropy_with_logits

TEST(NnLoss, BceWithLogitsMatchesDoubleReference) {
  const std::vector<double> x = {-3.0, -0.5, 0.0, 0.25, 2.0, 7.5};
  const std::vector<double> y = {0.0, 1.0, 0.3, 1.0, 0.0, 0.85};  // soft targets included
  for (DType dtype : {DType::Float32, DType::Float64}) {
    const Tensor logits = from_vector<double>(x, {2, 3}).to(dtype);
    const Tensor targets = from_vector<double>(y, {2, 3}).to(dtype);
    std::vector<double> expect;
    double sum = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      expect.push_back(ref_bce_logits(x[i], y[i]));
      sum += expect.back();
    }
    const double tol = dtype == DType::Float32 ? 1e-6 : 1e-12;
    EXPECT_TRUE(tensors_close(nn::binary_cross_entropy_with_logits(logits, targets, Reduction::None),
                              from_vector<double>(expect, {2, 3}), tol, tol));
    EXPECT_NEAR(nn::binary_cross_entropy_with_logits(logits, targets, Reduction::Sum).item(), sum, 10 * tol);
    const Tensor mean = nn::binary_cross_entropy_with_logits(logits, targets);
    EXPECT_EQ(mean.dim(), 0);
    EXPECT_NEAR(mean.item(), sum / 6.0, 10 * tol);
  }
  // Hand values: x = 0 gives log 2 for any y; x = 2, y = 0 gives log(1 + e^2) = 2.126928011042972.
  const Tensor l = nn::binary_cross_entropy_with_logits(from_vector<float>({0.0f, 2.0f}, {2}),
                                                        from_vector<float>({0.7f, 0.0f}, {2}), Reduction::None);
  EXPECT_NEAR(l.at({0}), std::log(2.0), 1e-6);
  EXPECT_NEAR(l.at({1}), 2.126928011042972, 1e-6);
}

TEST(NnLoss, BceWithLogitsExtremeLogitsStayFinite) {
  // float32, x = +-100: the naive log(sigmoid(x)) would give log(0) = -inf.
  Tensor logits = ag::requires_grad_leaf(from_vector<float>({100.0f, -100.0f, 100.0f, -100.0f, 88.0f}, {5}));
  const Tensor targets = from_vector<float>({0.0f, 1.0f, 1.0f, 0.0f, 0.5f}, {5});
  const Tensor l = nn::binary_cross_entropy_with_logits(logits, targets, Reduction::None);
  const auto v = l.to_vector<double>();
  EXPECT_NEAR(v[0], 100.0, 1e-5);
  EXPECT_NEAR(v[1], 100.0, 1e-5);
  EXPECT_NEAR(v[2], 0.0, 1e-30);  // log1p(e^-100) = 3.7e-44, a float32 denormal
  EXPECT_NEAR(v[3], 0.0, 1e-30);
  EXPECT_NEAR(v[4], 44.0, 1e-5);  // 88 - 44 + log1p(e^-88)
  ag::backward(ag::sum(l));
  // d/dx = sigmoid(x) - y: 1, -1, 0, 0, 0.5
  EXPECT_TRUE(tensors_close(ag::grad(logits), from_vector<float>({1.0f, -1.0f, 0.0f, 0.0f, 0.5f}, {5}), 0, 1e-6));
}

TEST(NnLoss, BceWithLogitsGradientAtZeroIsSigmoidMinusTarget) {
  Tensor logits = ag::requires_grad_leaf(zeros({3}, DType::Float64));
  const Tensor targets = from_vector<double>({0.0, 1.0, 0.25}, {3});
  ag::backward(nn::binary_cross_entropy_with_logits(logits, targets, Reduction::Sum));
  EXPECT_TRUE(tensors_close(ag::grad(logits), from_vector<double>({0.5, -0.5, 0.25}, {3}), 0, 1e-15));
}

TEST(NnLoss, BceWithLogitsGradcheckForLogitsAndTargets) {
  for (Reduction r : {Reduction::None, Reduction::Mean, Reduction::Sum}) {
    expect_gradcheck([r](const Inputs& in) { return nn::binary_cross_entropy_with_logits(in[0], in[1], r); },
                     {random_leaf({2, 3}, 1, -4, 4), random_leaf({2, 3}, 2, 0, 1)});
  }
}

// ================================================================ binary_cross_entropy (probabilities)

TEST(NnLoss, BceOnProbabilitiesMatchesReferenceAndClampsLogs) {
  const Tensor p = from_vector<double>({0.1, 0.5, 0.9, 0.0, 1.0, 0.0, 1.0, 0.3}, {8});
  const Tensor y = from_vector<double>({0.0, 1.0, 0.6, 0.0, 1.0, 1.0, 0.0, 0.3}, {8});
  const Tensor l = nn::binary_cross_entropy(p, y, Reduction::None);
  const std::vector<double> expect = {
      -std::log(0.9), -std::log(0.5), -(0.6 * std::log(0.9) + 0.4 * std::log(0.1)),
      0.0, 0.0,        // p = y at the ends: 0 (the clamped log is multiplied by 0)
      100.0, 100.0,    // p = 0, y = 1 and p = 1, y = 0: log clamped at -100
      -(0.3 * std::log(0.3) + 0.7 * std::log(0.7))};
  EXPECT_TRUE(tensors_close(l, from_vector<double>(expect, {8}), 1e-12, 1e-12));
  double sum = 0;
  for (double e : expect) sum += e;
  EXPECT_NEAR(nn::binary_cross_entropy(p, y, Reduction::Sum).item(), sum, 1e-10);
  EXPECT_NEAR(nn::binary_cross_entropy(p, y).item(), sum / 8, 1e-12);
}

TEST(NnLoss, BceOnProbabilitiesSaturatedSigmoidHasFiniteGradient) {
  // float32 sigmoid(20) rounds to exactly 1: PyTorch's gradient (p - y) / max(p (1 - p), 1e-12)
  // stays finite, and through the sigmoid (whose derivative is then 0) the logit gets 0, not NaN.
  Tensor logits = ag::requires_grad_leaf(from_vector<float>({20.0f, -120.0f, 0.5f}, {3}));
  const Tensor targets = from_vector<float>({0.0f, 1.0f, 1.0f}, {3});
  const Tensor probs = ag::sigmoid(logits);
  EXPECT_EQ(probs.at({0}), 1.0);
  const Tensor loss = nn::binary_cross_entropy(probs, targets, Reduction::None);
  EXPECT_NEAR(loss.at({0}), 100.0, 1e-4);
  EXPECT_NEAR(loss.at({1}), 100.0, 1e-4);
  ag::backward(ag::sum(loss));
  for (double g : ag::grad(logits).to_vector<double>()) EXPECT_TRUE(std::isfinite(g)) << g;
  EXPECT_NEAR(ag::grad(logits).at({2}), ref_sigmoid(0.5) - 1.0, 1e-6);
  // Directly at p = 0 and 1:
  Tensor p = ag::requires_grad_leaf(from_vector<double>({0.0, 1.0}, {2}));
  ag::backward(nn::binary_cross_entropy(p, from_vector<double>({1.0, 0.0}, {2}), Reduction::Sum));
  EXPECT_TRUE(tensors_close(ag::grad(p), from_vector<double>({-1e12, 1e12}, {2}), 1e-12, 0));
}

TEST(NnLoss, BceOnSigmoidEqualsBceWithLogitsForModerateLogits) {
  Tensor a = random_leaf({3, 4}, 3, -5, 5), b = ag::requires_grad_leaf(ag::detach(a).clone());
  const Tensor y = random_leaf({3, 4}, 4, 0, 1);
  const Tensor la = nn::binary_cross_entropy(ag::sigmoid(a), ag::detach(y));
  const Tensor lb = nn::binary_cross_entropy_with_logits(b, ag::detach(y));
  EXPECT_NEAR(la.item(), lb.item(), 1e-12);
  ag::backward(la);
  ag::backward(lb);
  EXPECT_TRUE(tensors_close(ag::grad(a), ag::grad(b), 1e-9, 1e-12));
}

TEST(NnLoss, BceOnProbabilitiesGradcheck) {
  for (Reduction r : {Reduction::None, Reduction::Mean, Reduction::Sum}) {
    expect_gradcheck([r](const Inputs& in) { return nn::binary_cross_entropy(in[0], in[1], r); },
                     {random_leaf({2, 3}, 5, 0.05, 0.95), random_leaf({2, 3}, 6, 0, 1)});
  }
}

TEST(NnLoss, BceOnProbabilitiesRejectsOutOfRangeButPassesNaN) {
  EXPECT_ERROR_CONTAINS(
      nn::binary_cross_entropy(from_vector<float>({0.5f, 1.5f}, {2}), from_vector<float>({0.0f, 1.0f}, {2})),
      "element 1 (row-major) is 1.5");
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const Tensor l = nn::binary_cross_entropy(from_vector<float>({nan}, {1}), from_vector<float>({1.0f}, {1}));
  EXPECT_TRUE(std::isnan(l.item()));  // not the loss function's business
}

// ================================================================ cross_entropy

TEST(NnLoss, CrossEntropyMatchesLogSumExpReference) {
  const std::vector<double> x = {1.0, 2.0, 3.0, -1.0, 0.5, 0.0};
  const Tensor logits = from_vector<double>(x, {2, 3});
  const Tensor targets = from_vector<int64_t>({2, 0}, {2});
  // Row 0: lse = log(e + e^2 + e^3) = 3.40760596444438; loss = 3.40760596... - 3 = 0.40760596444438
  // Row 1: lse = log(e^-1 + e^0.5 + 1) = 1.1041306053367284; loss = lse + 1 (target 0 has logit -1)
  const double lse1 = 1.1041306053367284;
  const Tensor l = nn::cross_entropy(logits, targets, Reduction::None);
  EXPECT_NEAR(l.at({0}), 0.40760596444438, 1e-12);
  EXPECT_NEAR(l.at({1}), lse1 + 1.0, 1e-12);
  EXPECT_NEAR(nn::cross_entropy(logits, targets).item(), (0.40760596444438 + lse1 + 1.0) / 2, 1e-12);
  EXPECT_NEAR(nn::cross_entropy(logits, targets, Reduction::Sum).item(), 0.40760596444438 + lse1 + 1.0, 1e-12);
  // float32 too.
  EXPECT_NEAR(nn::cross_entropy(logits.to(DType::Float32), targets, Reduction::None).at({0}), 0.40760596444438, 1e-6);
}

TEST(NnLoss, CrossEntropyHugeLogitsAndGradientIsSoftmaxMinusOneHot) {
  Tensor logits = ag::requires_grad_leaf(from_vector<float>({1000.0f, 0.0f, -1000.0f, 5.0f, 5.0f, 5.0f}, {2, 3}));
  const Tensor targets = from_vector<int64_t>({1, 2}, {2});
  const Tensor l = nn::cross_entropy(logits, targets, Reduction::None);
  EXPECT_NEAR(l.at({0}), 1000.0, 1e-3);       // finite: exp(1000) never computed
  EXPECT_NEAR(l.at({1}), std::log(3.0), 1e-6);  // uniform over 3 classes
  ag::backward(ag::sum(l));
  const float third = 1.0f / 3.0f;
  EXPECT_TRUE(tensors_close(ag::grad(logits), from_vector<float>({1, -1, 0, third, third, third - 1}, {2, 3}), 0, 1e-6));
  // A -inf logit elsewhere in the row does not turn the loss into NaN.
  const float inf = std::numeric_limits<float>::infinity();
  const Tensor l2 = nn::cross_entropy(from_vector<float>({0.0f, -inf}, {1, 2}), from_vector<int64_t>({0}, {1}));
  EXPECT_NEAR(l2.item(), 0.0, 1e-7);
}

TEST(NnLoss, CrossEntropyGradcheck) {
  const Tensor targets = from_vector<int64_t>({3, 0, 1}, {3});
  for (Reduction r : {Reduction::None, Reduction::Mean, Reduction::Sum})
    expect_gradcheck([&](const Inputs& in) { return nn::cross_entropy(in[0], targets, r); },
                     {random_leaf({3, 4}, 7, -3, 3)});
}

TEST(NnLoss, CrossEntropyErrorsNameTheProblem) {
  const Tensor logits = zeros({2, 3});
  EXPECT_ERROR_CONTAINS(nn::cross_entropy(logits, from_vector<int64_t>({0, 5}, {2})), "target 5 (row 1)");
  EXPECT_ERROR_CONTAINS(nn::cross_entropy(logits, from_vector<int64_t>({-1, 0}, {2})), "target -1 (row 0)");
  EXPECT_ERROR_CONTAINS(nn::cross_entropy(logits, zeros({2})), "Int64");
  EXPECT_ERROR_CONTAINS(nn::cross_entropy(logits, from_vector<int64_t>({0, 1, 2}, {3})), "(2, 3)");
  EXPECT_ERROR_CONTAINS(nn::cross_entropy(zeros({2, 3, 4}), from_vector<int64_t>({0, 1}, {2})), "(N, C)");
}

// ================================================================ mse_loss

TEST(NnLoss, MseValuesReductionsAndGradcheck) {
  const Tensor a = from_vector<double>({1.0, 2.0, -1.0, 0.5}, {2, 2});
  const Tensor b = from_vector<double>({0.0, 2.5, 1.0, 0.5}, {2, 2});
  EXPECT_TRUE(tensors_close(nn::mse_loss(a, b, Reduction::None), from_vector<double>({1.0, 0.25, 4.0, 0.0}, {2, 2})));
  EXPECT_DOUBLE_EQ(nn::mse_loss(a, b).item(), 5.25 / 4);
  EXPECT_DOUBLE_EQ(nn::mse_loss(a, b, Reduction::Sum).item(), 5.25);
  for (Reduction r : {Reduction::None, Reduction::Mean, Reduction::Sum})
    expect_gradcheck([r](const Inputs& in) { return nn::mse_loss(in[0], in[1], r); },
                     {random_leaf({2, 3}, 8, -1, 1), random_leaf({2, 3}, 9, -1, 1)});
}

// ================================================================ shared checks

TEST(NnLoss, ShapeAndDtypeMismatchesNameBoth) {
  const Tensor a = zeros({2, 3}), b = zeros({3, 2});
  EXPECT_ERROR_CONTAINS(nn::binary_cross_entropy_with_logits(a, b), "logits has shape (2, 3) but targets has shape (3, 2)");
  EXPECT_ERROR_CONTAINS(nn::binary_cross_entropy(a, b), "probs has shape (2, 3) but targets has shape (3, 2)");
  EXPECT_ERROR_CONTAINS(nn::mse_loss(a, b), "input has shape (2, 3) but target has shape (3, 2)");
  EXPECT_ERROR_CONTAINS(nn::binary_cross_entropy_with_logits(a, zeros({2, 3}, DType::Float64)), "float64");
  EXPECT_ERROR_CONTAINS(nn::mse_loss(zeros({2}, DType::Int64), zeros({2}, DType::Int64)), "int64");
}

TEST(NnLoss, NaNLogitsGiveNaNLossWithoutError) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const Tensor l = nn::binary_cross_entropy_with_logits(from_vector<float>({nan, 1.0f}, {2}),
                                                        from_vector<float>({1.0f, 0.0f}, {2}));
  EXPECT_TRUE(std::isnan(l.item()));
}

}  // namespace
}  // namespace medtl
