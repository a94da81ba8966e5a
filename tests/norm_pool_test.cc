// Tests of batch norm, max pooling, global average pooling and dropout: kernels against naive
// double references, gradients by formula and by float64 gradcheck, thread-count identity, errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/norm_pool_ops.h"
#include "autograd/ops.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/reduce.h"
#include "tensor/parallel.h"
#include "tests/test_util.h"

namespace medtl {
namespace {

using testing::tensors_close;
using testing::tensors_identical;
using Inputs = std::vector<Tensor>;

Tensor random_tensor(const Shape& shape, uint64_t seed, DType dtype = DType::Float64, double low = -1.0,
                     double high = 1.0) {
  Generator gen(seed);
  return uniform(shape, gen, low, high, dtype);
}

Tensor random_leaf(const Shape& shape, uint64_t seed, double low = -1.0, double high = 1.0) {
  return ag::requires_grad_leaf(random_tensor(shape, seed, DType::Float64, low, high));
}

void expect_gradcheck(const std::function<Tensor(const Inputs&)>& fn, const Inputs& inputs) {
  const ag::GradcheckResult result = ag::gradcheck(fn, inputs);
  EXPECT_TRUE(result.ok) << result.message;
}

// Restores the thread count on scope exit, so a failing test does not leak its setting.
class ThreadCountGuard {
 public:
  ThreadCountGuard() : saved_(get_num_threads()) {}
  ~ThreadCountGuard() { set_num_threads(saved_); }

 private:
  int saved_;
};

// ================================================================ batch norm: naive reference

// x seen as (N, C, S); everything in double.
struct NaiveBn {
  std::vector<double> y, mean, invstd, var_biased, var_unbiased;
};

NaiveBn naive_bn_forward(const Tensor& x, const std::vector<double>& w, const std::vector<double>& b,
                         const std::vector<double>& rm, const std::vector<double>& rv, bool training, double eps) {
  const int64_t N = x.size(0), C = x.size(1), S = x.numel() / std::max<int64_t>(1, N * C);
  const auto v = x.to_vector<double>();
  NaiveBn r;
  r.y.resize(v.size());
  for (int64_t c = 0; c < C; ++c) {
    double mean = 0, var = 0;
    if (training) {
      for (int64_t n = 0; n < N; ++n)
        for (int64_t s = 0; s < S; ++s) mean += v[(n * C + c) * S + s];
      mean /= static_cast<double>(N * S);
      for (int64_t n = 0; n < N; ++n)
        for (int64_t s = 0; s < S; ++s) var += std::pow(v[(n * C + c) * S + s] - mean, 2);
      r.var_biased.push_back(var / static_cast<double>(N * S));
      r.var_unbiased.push_back(var / static_cast<double>(N * S - 1));
      var /= static_cast<double>(N * S);
    } else {
      mean = rm[c];
      var = rv[c];
    }
    const double invstd = 1.0 / std::sqrt(var + eps);
    r.mean.push_back(mean);
    r.invstd.push_back(invstd);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t s = 0; s < S; ++s) {
        const int64_t i = (n * C + c) * S + s;
        r.y[i] = (v[i] - mean) * invstd * w[c] + b[c];
      }
  }
  return r;
}

struct NaiveBnGrad {
  std::vector<double> gx, gw, gb;
};

NaiveBnGrad naive_bn_backward(const Tensor& g_t, const Tensor& x_t, const std::vector<double>& w,
                              const std::vector<double>& mean, const std::vector<double>& invstd, bool training) {
  const int64_t N = x_t.size(0), C = x_t.size(1), S = x_t.numel() / std::max<int64_t>(1, N * C);
  const auto g = g_t.to_vector<double>(), x = x_t.to_vector<double>();
  const double M = static_cast<double>(N * S);
  NaiveBnGrad r;
  r.gx.resize(x.size());
  for (int64_t c = 0; c < C; ++c) {
    double sum_g = 0, sum_gxhat = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t s = 0; s < S; ++s) {
        const int64_t i = (n * C + c) * S + s;
        sum_g += g[i];
        sum_gxhat += g[i] * (x[i] - mean[c]) * invstd[c];
      }
    r.gb.push_back(sum_g);
    r.gw.push_back(sum_gxhat);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t s = 0; s < S; ++s) {
        const int64_t i = (n * C + c) * S + s;
        const double xhat = (x[i] - mean[c]) * invstd[c];
        r.gx[i] = training ? invstd[c] * w[c] * (g[i] - sum_g / M - xhat * sum_gxhat / M) : g[i] * w[c] * invstd[c];
      }
  }
  return r;
}

Tensor as_tensor(const std::vector<double>& v, const Shape& shape, DType dtype) {
  return from_vector(v, shape).to(dtype);
}

// Training forward twice (running stats after 2 steps with momentum 0.1), then eval.
void check_bn_forward(const Shape& shape, DType dtype, double rtol, double atol) {
  SCOPED_TRACE(shape_str(shape) + " " + dtype_name(dtype));
  const int64_t C = shape[1];
  const double momentum = 0.1, eps = 1e-5;
  const Tensor w = random_tensor({C}, 11, dtype, 0.5, 1.5), b = random_tensor({C}, 12, dtype);
  const auto wv = w.to_vector<double>(), bv = b.to_vector<double>();
  Tensor rm = random_tensor({C}, 13, dtype), rv = random_tensor({C}, 14, dtype, 0.5, 2.0);
  std::vector<double> rm_ref = rm.to_vector<double>(), rv_ref = rv.to_vector<double>();
  for (int step = 0; step < 2; ++step) {
    // An offset mean (3) makes the variance a small difference: what double accumulation is for.
    const Tensor x = random_tensor(shape, 20 + step, dtype, 2.0, 4.0);
    const ops::BatchNormForward f = ops::batch_norm_forward(x, w, b, rm, rv, true, momentum, eps);
    const NaiveBn r = naive_bn_forward(x, wv, bv, {}, {}, true, eps);
    EXPECT_TRUE(tensors_close(f.y, as_tensor(r.y, shape, DType::Float64), rtol, atol));
    EXPECT_TRUE(tensors_close(f.save_mean, as_tensor(r.mean, {C}, DType::Float64), rtol, atol));
    EXPECT_TRUE(tensors_close(f.save_invstd, as_tensor(r.invstd, {C}, DType::Float64), rtol, atol));
    for (int64_t c = 0; c < C; ++c) {
      rm_ref[c] = 0.9 * rm_ref[c] + 0.1 * r.mean[c];
      rv_ref[c] = 0.9 * rv_ref[c] + 0.1 * r.var_unbiased[c];
    }
    EXPECT_TRUE(tensors_close(rm, as_tensor(rm_ref, {C}, DType::Float64), rtol, atol)) << "step " << step;
    EXPECT_TRUE(tensors_close(rv, as_tensor(rv_ref, {C}, DType::Float64), rtol, atol)) << "step " << step;
  }
  // Eval: running stats, not updated.
  const Tensor x = random_tensor(shape, 30, dtype, 2.0, 4.0);
  const Tensor rm_before = rm.clone(), rv_before = rv.clone();
  const ops::BatchNormForward f = ops::batch_norm_forward(x, w, b, rm, rv, false, momentum, eps);
  const NaiveBn r = naive_bn_forward(x, wv, bv, rm_ref, rv_ref, false, eps);
  EXPECT_TRUE(tensors_close(f.y, as_tensor(r.y, shape, DType::Float64), rtol, atol));
  EXPECT_TRUE(tensors_identical(rm, rm_before));
  EXPECT_TRUE(tensors_identical(rv, rv_before));
  EXPECT_TRUE(tensors_identical(f.save_mean, rm));
}

TEST(BatchNorm, ForwardTrainAndEvalMatchNaiveReference) {
  check_bn_forward({3, 4, 5, 6}, DType::Float64, 1e-12, 1e-12);
  check_bn_forward({3, 4, 5, 6}, DType::Float32, 1e-5, 1e-5);
  check_bn_forward({2, 3, 70, 70}, DType::Float32, 1e-5, 1e-5);  // several chunks per channel, spanning planes
  check_bn_forward({4, 3}, DType::Float64, 1e-12, 1e-12);        // (N, C)
  check_bn_forward({5000, 3}, DType::Float32, 1e-5, 1e-5);       // (N, C), > 1 chunk
  check_bn_forward({2, 3, 1, 1}, DType::Float64, 1e-12, 1e-12);  // 2 values per channel
}

TEST(BatchNorm, OptionalWeightBiasAndRunningStats) {
  const Tensor x = random_tensor({3, 2, 4, 5}, 1);
  const Tensor w = ones({2}, DType::Float64), b = zeros({2}, DType::Float64);
  const ops::BatchNormForward with = ops::batch_norm_forward(x, w, b, Tensor(), Tensor(), true, 0.1, 1e-5);
  const ops::BatchNormForward without = ops::batch_norm_forward(x, Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1, 1e-5);
  EXPECT_TRUE(tensors_identical(with.y, without.y));
  const Tensor g = random_tensor({3, 2, 4, 5}, 2);
  const ops::BatchNormBackward bw = ops::batch_norm_backward(g, x, w, with.save_mean, with.save_invstd, true);
  const ops::BatchNormBackward bwo = ops::batch_norm_backward(g, x, Tensor(), with.save_mean, with.save_invstd, true);
  EXPECT_TRUE(tensors_identical(bw.grad_x, bwo.grad_x));
  EXPECT_TRUE(tensors_identical(bw.grad_weight, bwo.grad_weight));
}

TEST(BatchNorm, Float64MeanEqualsReduceMeanBitForBit) {
  // Same chunks, lanes and trees as reduce_cpu.cc, with a double accumulator for float64.
  const Tensor x = random_tensor({3, 5, 41, 43}, 3);
  const ops::BatchNormForward f = ops::batch_norm_forward(x, Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1, 1e-5);
  EXPECT_TRUE(tensors_identical(f.save_mean, ops::mean(x, {0, 2, 3})));
}

TEST(BatchNorm, NonContiguousInputGivesTheSameBits) {
  const Tensor base = random_tensor({3, 4, 6, 5}, 4, DType::Float32);
  const Tensor x = base.permute({0, 1, 3, 2});  // (3, 4, 5, 6), not contiguous
  const Tensor w = random_tensor({4}, 5, DType::Float32), b = random_tensor({4}, 6, DType::Float32);
  const auto f1 = ops::batch_norm_forward(x, w, b, Tensor(), Tensor(), true, 0.1, 1e-5);
  const auto f2 = ops::batch_norm_forward(x.contiguous(), w, b, Tensor(), Tensor(), true, 0.1, 1e-5);
  EXPECT_TRUE(tensors_identical(f1.y, f2.y));
  const Tensor g = random_tensor({3, 4, 6, 5}, 7, DType::Float32).transpose(2, 3);
  const auto b1 = ops::batch_norm_backward(g, x, w, f1.save_mean, f1.save_invstd, true);
  const auto b2 = ops::batch_norm_backward(g.contiguous(), x.contiguous(), w, f1.save_mean, f1.save_invstd, true);
  EXPECT_TRUE(tensors_identical(b1.grad_x, b2.grad_x));
  EXPECT_TRUE(tensors_identical(b1.grad_weight, b2.grad_weight));
}

TEST(BatchNorm, OneValuePerChannelInTrainingIsAnError) {
  Tensor rm = zeros({3}, DType::Float64), rv = ones({3}, DType::Float64);
  EXPECT_ERROR_CONTAINS(ops::batch_norm_forward(random_tensor({1, 3}, 1), Tensor(), Tensor(), rm, rv, true, 0.1, 1e-5),
                        "Expected more than 1 value per channel when training, got input size (1, 3)");
  EXPECT_ERROR_CONTAINS(
      ops::batch_norm_forward(random_tensor({1, 3, 1, 1}, 1), Tensor(), Tensor(), rm, rv, true, 0.1, 1e-5),
      "Expected more than 1 value per channel when training");
  // The running stats were not touched by the failed calls; eval with one value works.
  EXPECT_EQ(rm.to_vector<double>(), std::vector<double>(3, 0.0));
  EXPECT_EQ(rv.to_vector<double>(), std::vector<double>(3, 1.0));
  const auto f = ops::batch_norm_forward(full({1, 3}, 2.0, DType::Float64), Tensor(), Tensor(), rm, rv, false, 0.1, 0.0);
  EXPECT_TRUE(tensors_close(f.y, full({1, 3}, 2.0, DType::Float64)));
}

TEST(BatchNorm, EmptyBatchGivesEmptyOutputAndLeavesRunningStats) {
  // As PyTorch: nothing to estimate from, so the running stats stay; saved stats are zeros.
  Tensor rm = full({3}, 0.5, DType::Float64), rv = full({3}, 2.0, DType::Float64);
  const Tensor x = zeros({0, 3, 4, 4}, DType::Float64);
  const auto f = ops::batch_norm_forward(x, Tensor(), Tensor(), rm, rv, true, 0.1, 1e-5);
  EXPECT_EQ(f.y.shape(), x.shape());
  EXPECT_TRUE(tensors_identical(rm, full({3}, 0.5, DType::Float64)));
  EXPECT_TRUE(tensors_identical(rv, full({3}, 2.0, DType::Float64)));
  const auto b = ops::batch_norm_backward(x, x, Tensor(), f.save_mean, f.save_invstd, true);
  EXPECT_EQ(b.grad_x.shape(), x.shape());
  EXPECT_TRUE(tensors_identical(b.grad_bias, zeros({3}, DType::Float64)));
}

TEST(BatchNorm, BackwardMatchesReferenceFormulas) {
  for (DType dtype : {DType::Float64, DType::Float32}) {
    for (const Shape& shape : {Shape{3, 4, 5, 6}, Shape{6, 5}, Shape{2, 3, 70, 70}}) {
      for (bool training : {true, false}) {
        SCOPED_TRACE(shape_str(shape) + (training ? " train " : " eval ") + dtype_name(dtype));
        const double tol = dtype == DType::Float64 ? 1e-11 : 2e-4;
        const int64_t C = shape[1];
        const Tensor x = random_tensor(shape, 40, dtype, -2.0, 3.0);
        const Tensor g = random_tensor(shape, 41, dtype);
        const Tensor w = random_tensor({C}, 42, dtype, 0.5, 1.5), b = random_tensor({C}, 43, dtype);
        Tensor rm = random_tensor({C}, 44, dtype), rv = random_tensor({C}, 45, dtype, 0.5, 2.0);
        const auto f = ops::batch_norm_forward(x, w, b, rm, rv, training, 0.1, 1e-5);
        const auto bw = ops::batch_norm_backward(g, x, w, f.save_mean, f.save_invstd, training);
        const NaiveBnGrad r = naive_bn_backward(g, x, w.to_vector<double>(), f.save_mean.to_vector<double>(),
                                                f.save_invstd.to_vector<double>(), training);
        EXPECT_TRUE(tensors_close(bw.grad_x, as_tensor(r.gx, shape, DType::Float64), tol, tol));
        EXPECT_TRUE(tensors_close(bw.grad_weight, as_tensor(r.gw, {C}, DType::Float64), tol, tol));
        EXPECT_TRUE(tensors_close(bw.grad_bias, as_tensor(r.gb, {C}, DType::Float64), tol, tol));
      }
    }
  }
}

TEST(BatchNorm, Gradcheck) {
  for (const Shape& shape : {Shape{3, 2, 2, 3}, Shape{4, 3}}) {
    for (bool training : {true, false}) {
      SCOPED_TRACE(shape_str(shape) + (training ? " train" : " eval"));
      const int64_t C = shape[1];
      const Tensor rm = random_tensor({C}, 50), rv = random_tensor({C}, 51, DType::Float64, 0.5, 2.0);
      const Inputs in = {random_leaf(shape, 52, -2.0, 2.0), random_leaf({C}, 53, 0.5, 1.5), random_leaf({C}, 54)};
      expect_gradcheck(
          [&](const Inputs& v) {
            // Fresh running stats per call: the output must not depend on how often fn ran.
            Tensor m = rm.clone(), s = rv.clone();
            return ag::batch_norm(v[0], v[1], v[2], m, s, training, 0.1, 1e-5);
          },
          in);
      // Without weight and bias.
      expect_gradcheck(
          [&](const Inputs& v) { return ag::batch_norm(v[0], Tensor(), Tensor(), rm.clone(), rv.clone(), training, 0.1, 1e-5); },
          {in[0]});
    }
  }
}

TEST(BatchNorm, AutogradUpdatesRunningStatsAndOnlyDifferentiatesInputs) {
  Tensor x = random_leaf({4, 3, 2, 2}, 60);
  Tensor w = random_leaf({3}, 61), b = random_leaf({3}, 62);
  Tensor rm = zeros({3}, DType::Float64), rv = ones({3}, DType::Float64);
  Tensor y = ag::batch_norm(x, w, b, rm, rv, true, 0.1, 1e-5);
  ag::backward(ag::sum(ag::mul(y, y)));
  EXPECT_TRUE(ag::grad(x).defined());
  EXPECT_TRUE(ag::grad(w).defined());
  EXPECT_TRUE(ag::grad(b).defined());
  EXPECT_FALSE(ag::requires_grad(rm));
  EXPECT_TRUE(tensors_close(rm, ops::mul(ops::mean(x, {0, 2, 3}), 0.1), 1e-12, 1e-14));
}

TEST(BatchNorm, ThreadCountDoesNotChangeBits) {
  ThreadCountGuard guard;
  const Shape shape = {8, 64, 56, 56};
  const Tensor x = random_tensor(shape, 70, DType::Float32, -1.0, 3.0);
  const Tensor g = random_tensor(shape, 71, DType::Float32);
  const Tensor w = random_tensor({64}, 72, DType::Float32), b = random_tensor({64}, 73, DType::Float32);
  std::vector<ops::BatchNormForward> fs;
  std::vector<ops::BatchNormBackward> bs;
  std::vector<Tensor> rms;
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    Tensor rm = zeros({64}), rv = ones({64});
    fs.push_back(ops::batch_norm_forward(x, w, b, rm, rv, true, 0.1, 1e-5));
    bs.push_back(ops::batch_norm_backward(g, x, w, fs.back().save_mean, fs.back().save_invstd, true));
    rms.push_back(rv);
  }
  EXPECT_TRUE(tensors_identical(fs[0].y, fs[1].y));
  EXPECT_TRUE(tensors_identical(fs[0].save_mean, fs[1].save_mean));
  EXPECT_TRUE(tensors_identical(fs[0].save_invstd, fs[1].save_invstd));
  EXPECT_TRUE(tensors_identical(rms[0], rms[1]));
  EXPECT_TRUE(tensors_identical(bs[0].grad_x, bs[1].grad_x));
  EXPECT_TRUE(tensors_identical(bs[0].grad_weight, bs[1].grad_weight));
  EXPECT_TRUE(tensors_identical(bs[0].grad_bias, bs[1].grad_bias));
}

TEST(BatchNorm, Errors) {
  const Tensor x = random_tensor({2, 3, 4, 4}, 1);
  const Tensor c3 = ones({3}, DType::Float64);
  EXPECT_ERROR_CONTAINS(ops::batch_norm_forward(random_tensor({6}, 1), Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1, 1e-5),
                        "x must be (N, C) or (N, C, H, W)");
  EXPECT_ERROR_CONTAINS(ops::batch_norm_forward(x, ones({4}, DType::Float64), Tensor(), Tensor(), Tensor(), true, 0.1, 1e-5),
                        "weight must have shape (3,)");
  EXPECT_ERROR_CONTAINS(ops::batch_norm_forward(x, ones({3}), Tensor(), Tensor(), Tensor(), true, 0.1, 1e-5),
                        "weight is float32 but x is float64");
  EXPECT_ERROR_CONTAINS(ops::batch_norm_forward(x, Tensor(), Tensor(), Tensor(), Tensor(), false, 0.1, 1e-5),
                        "evaluation mode (training = false) normalises with running_mean and running_var");
  EXPECT_ERROR_CONTAINS(ops::batch_norm_forward(x, Tensor(), Tensor(), c3.clone(), Tensor(), true, 0.1, 1e-5),
                        "give both running_mean and running_var");
  EXPECT_ERROR_CONTAINS(
      ops::batch_norm_forward(x.to(DType::Int64), Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1, 1e-5), "int64");
  const auto f = ops::batch_norm_forward(x, c3, c3, Tensor(), Tensor(), true, 0.1, 1e-5);
  EXPECT_ERROR_CONTAINS(ops::batch_norm_backward(random_tensor({2, 3, 4}, 2), x, c3, f.save_mean, f.save_invstd, true),
                        "grad_y must have x's shape (2, 3, 4, 4)");
  EXPECT_ERROR_CONTAINS(ops::batch_norm_backward(x, x, c3, Tensor(), f.save_invstd, true), "save_mean and save_invstd");
}

// ================================================================ max pooling: naive reference

struct NaivePool {
  std::vector<double> y;
  std::vector<int64_t> idx;
  std::vector<double> gx;
};

// Forward and (given g) backward by definition: scan each window, then scatter g to the choice.
NaivePool naive_max_pool(const Tensor& x_t, const ops::MaxPool2dParams& pp, const Tensor& g_t) {
  const int64_t N = x_t.size(0), C = x_t.size(1), H = x_t.size(2), W = x_t.size(3);
  const int64_t P = (H + 2 * pp.pad_h - pp.kernel_h) / pp.stride_h + 1;
  const int64_t Q = (W + 2 * pp.pad_w - pp.kernel_w) / pp.stride_w + 1;
  const auto x = x_t.to_vector<double>();
  const auto g = g_t.defined() ? g_t.to_vector<double>() : std::vector<double>(N * C * P * Q, 0.0);
  NaivePool r;
  r.gx.assign(x.size(), 0.0);
  for (int64_t pl = 0; pl < N * C; ++pl)
    for (int64_t p = 0; p < P; ++p)
      for (int64_t q = 0; q < Q; ++q) {
        double best = -std::numeric_limits<double>::infinity();
        int64_t best_i = -1;
        for (int64_t i = 0; i < pp.kernel_h; ++i)
          for (int64_t j = 0; j < pp.kernel_w; ++j) {
            const int64_t h = p * pp.stride_h - pp.pad_h + i, w = q * pp.stride_w - pp.pad_w + j;
            if (h < 0 || h >= H || w < 0 || w >= W) continue;
            const double v = x[pl * H * W + h * W + w];
            if (best_i < 0 || (!std::isnan(best) && (v > best || std::isnan(v)))) {
              best = v;
              best_i = h * W + w;
            }
          }
        r.y.push_back(best);
        r.idx.push_back(best_i);
        r.gx[pl * H * W + best_i] += g[(pl * P + p) * Q + q];
      }
  return r;
}

ops::MaxPool2dParams pool_params(int64_t k, int64_t s, int64_t pad) {
  ops::MaxPool2dParams p;
  p.kernel_h = p.kernel_w = k;
  p.stride_h = p.stride_w = s;
  p.pad_h = p.pad_w = pad;
  return p;
}

void check_max_pool(const Tensor& x, const ops::MaxPool2dParams& pp) {
  SCOPED_TRACE(shape_str(x.shape()) + " k" + std::to_string(pp.kernel_h) + "x" + std::to_string(pp.kernel_w) + " s" +
               std::to_string(pp.stride_h) + "x" + std::to_string(pp.stride_w) + " p" + std::to_string(pp.pad_h) + "x" +
               std::to_string(pp.pad_w) + " " + dtype_name(x.dtype()));
  const auto f = ops::max_pool2d_forward(x, pp);
  const Tensor g = random_tensor(f.y.shape(), 99, x.dtype());
  const NaivePool r = naive_max_pool(x, pp, g);
  EXPECT_TRUE(tensors_close(f.y, as_tensor(r.y, f.y.shape(), DType::Float64), 0, 0));
  EXPECT_EQ(f.indices.to_vector<int64_t>(), r.idx);
  const Tensor gx = ops::max_pool2d_backward(g, f.indices, x.shape(), pp);
  const double tol = x.dtype() == DType::Float64 ? 1e-15 : 1e-6;
  EXPECT_TRUE(tensors_close(gx, as_tensor(r.gx, x.shape(), DType::Float64), tol, tol));
}

TEST(MaxPool2d, ForwardBackwardMatchNaiveReference) {
  for (DType dtype : {DType::Float64, DType::Float32}) {
    check_max_pool(random_tensor({2, 3, 16, 16}, 1, dtype), pool_params(3, 2, 1));  // ResNet stem
    check_max_pool(random_tensor({2, 3, 9, 11}, 2, dtype), pool_params(3, 2, 1));   // odd sizes
    check_max_pool(random_tensor({2, 3, 8, 8}, 3, dtype), pool_params(2, 2, 0));
    check_max_pool(random_tensor({1, 2, 7, 9}, 4, dtype), pool_params(2, 2, 0));    // odd: last row/col dropped
    check_max_pool(random_tensor({1, 2, 7, 6}, 5, dtype), pool_params(3, 1, 1));    // overlapping, stride 1
    check_max_pool(random_tensor({1, 2, 9, 8}, 9, dtype), pool_params(4, 1, 2));    // 4 windows per pixel and dim
    check_max_pool(random_tensor({1, 2, 13, 12}, 10, dtype), pool_params(5, 3, 2));
    ops::MaxPool2dParams rect;
    rect.kernel_h = 3, rect.kernel_w = 2, rect.stride_h = 1, rect.stride_w = 3, rect.pad_h = 1, rect.pad_w = 0;
    check_max_pool(random_tensor({2, 1, 5, 8}, 6, dtype), rect);
  }
}

TEST(MaxPool2d, TiesChooseFirstAndGradientsSumOverWindows) {
  // Constant input: every window picks its first valid element; overlapping windows that pick the
  // same element add their gradients.
  const Tensor x = full({1, 1, 5, 5}, 1.0, DType::Float64);
  check_max_pool(x, pool_params(3, 2, 1));
  check_max_pool(x, pool_params(3, 1, 1));
  const auto f = ops::max_pool2d_forward(x, pool_params(3, 2, 1));
  EXPECT_EQ(f.indices.to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 3, 5, 6, 8, 15, 16, 18}));
  // A quantised random input has many ties.
  check_max_pool(ops::mul(ops::sqrt(ops::mul(random_tensor({2, 2, 9, 9}, 7, DType::Float64, 0, 1), 9.0)), 1.0)
                     .to(DType::Int64)
                     .to(DType::Float64),
                 pool_params(3, 2, 1));
}

TEST(MaxPool2d, PaddingNeverWinsAndNaNPropagates) {
  // All negative: a padded zero would win if padding were not -inf.
  const Tensor neg = random_tensor({1, 2, 6, 6}, 8, DType::Float32, -3.0, -1.0);
  const auto f = ops::max_pool2d_forward(neg, pool_params(3, 2, 1));
  EXPECT_LT(ops::max(f.y).item(), -1.0 + 1e-6);
  // -inf everywhere: the first valid element is chosen, its value -inf.
  const Tensor inf = full({1, 1, 4, 4}, -std::numeric_limits<double>::infinity(), DType::Float64);
  const auto fi = ops::max_pool2d_forward(inf, pool_params(2, 2, 1));
  EXPECT_EQ(fi.indices.to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 3, 4, 5, 7, 12, 13, 15}));
  // NaN wins over larger values; the first NaN in scan order is the one chosen.
  std::vector<double> v(16, 0.0);
  v[5] = 100.0, v[6] = std::nan(""), v[9] = std::nan(""), v[10] = 5.0;
  const Tensor xn = from_vector(v, {1, 1, 4, 4});
  check_max_pool(xn, pool_params(2, 1, 0));
  const auto fn = ops::max_pool2d_forward(xn, pool_params(2, 1, 0));
  EXPECT_EQ(fn.indices.to_vector<int64_t>(), (std::vector<int64_t>{5, 6, 6, 9, 6, 6, 9, 9, 10}));
  const auto yv = fn.y.to_vector<double>();
  EXPECT_EQ(yv[0], 100.0);
  EXPECT_TRUE(std::isnan(yv[1]) && std::isnan(yv[4]));
  EXPECT_EQ(yv[8], 5.0);
}

TEST(MaxPool2d, Gradcheck) {
  // Distinct values (a scaled permutation) so no tie sits within the finite-difference step.
  std::vector<double> v(2 * 2 * 5 * 6);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>((i * 37) % v.size()) * 0.05 - 1.0;
  const Tensor x = ag::requires_grad_leaf(from_vector(v, {2, 2, 5, 6}));
  expect_gradcheck([](const Inputs& in) { return ag::max_pool2d(in[0], pool_params(3, 2, 1)); }, {x});
  expect_gradcheck([](const Inputs& in) { return ag::max_pool2d(in[0], pool_params(2, 2, 0)); }, {x});
  expect_gradcheck([](const Inputs& in) { return ag::max_pool2d(in[0], pool_params(3, 1, 1)); }, {x});
}

TEST(MaxPool2d, ThreadCountDoesNotChangeBits) {
  ThreadCountGuard guard;
  const Tensor x = random_tensor({4, 16, 56, 56}, 80, DType::Float32);
  const auto pp = pool_params(3, 2, 1);
  std::vector<ops::MaxPool2dForward> fs;
  std::vector<Tensor> gs;
  const Tensor g = random_tensor({4, 16, 28, 28}, 81, DType::Float32);
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    fs.push_back(ops::max_pool2d_forward(x, pp));
    gs.push_back(ops::max_pool2d_backward(g, fs.back().indices, x.shape(), pp));
  }
  EXPECT_TRUE(tensors_identical(fs[0].y, fs[1].y));
  EXPECT_TRUE(tensors_identical(fs[0].indices, fs[1].indices));
  EXPECT_TRUE(tensors_identical(gs[0], gs[1]));
}

TEST(MaxPool2d, Errors) {
  const Tensor x = random_tensor({1, 2, 6, 6}, 1);
  EXPECT_ERROR_CONTAINS(ops::max_pool2d_forward(random_tensor({2, 6, 6}, 1), pool_params(2, 2, 0)),
                        "x must be (N, C, H, W)");
  EXPECT_ERROR_CONTAINS(ops::max_pool2d_forward(x, pool_params(3, 2, 2)), "pad should be at most half of kernel size");
  EXPECT_ERROR_CONTAINS(ops::max_pool2d_forward(x, pool_params(0, 2, 0)), "kernel size must be positive");
  EXPECT_ERROR_CONTAINS(ops::max_pool2d_forward(x, pool_params(2, 0, 0)), "stride must be positive");
  EXPECT_ERROR_CONTAINS(ops::max_pool2d_forward(random_tensor({1, 1, 2, 2}, 1), pool_params(3, 1, 0)),
                        "output size is too small");
  EXPECT_ERROR_CONTAINS(ops::max_pool2d_forward(x.to(DType::Int64), pool_params(2, 2, 0)), "int64");
  const auto f = ops::max_pool2d_forward(x, pool_params(2, 2, 0));
  EXPECT_ERROR_CONTAINS(ops::max_pool2d_backward(f.y, f.indices, {1, 2, 8, 8}, pool_params(2, 2, 0)),
                        "grad_y must have shape (1, 2, 4, 4)");
  Tensor bad = f.indices.clone();
  bad.data<int64_t>()[4] = 0;  // output (0, 0, 1, 1) cannot have chosen element 0
  EXPECT_ERROR_CONTAINS(ops::max_pool2d_backward(f.y, bad, x.shape(), pool_params(2, 2, 0)),
                        "is not inside that output's window");
}

// ================================================================ adaptive average pooling

TEST(AdaptiveAvgPool, ValuesAndGradcheck) {
  const Tensor x = random_tensor({2, 3, 4, 5}, 1);
  EXPECT_TRUE(tensors_identical(ag::adaptive_avg_pool2d_1x1(x), ops::mean(x, {2, 3}, true)));
  EXPECT_EQ(ag::adaptive_avg_pool2d_1x1(x).shape(), (Shape{2, 3, 1, 1}));
  expect_gradcheck([](const Inputs& in) { return ag::adaptive_avg_pool2d_1x1(in[0]); }, {random_leaf({2, 3, 3, 2}, 2)});
  EXPECT_ERROR_CONTAINS(ag::adaptive_avg_pool2d_1x1(random_tensor({2, 3}, 1)), "x must be (N, C, H, W)");
}

// ================================================================ dropout

TEST(Dropout, SameSeedSameMaskAndRateNearP) {
  const Tensor x = ones({1000, 1000}, DType::Float32);
  const Tensor a = ag::dropout(x, 0.3, true, 42, 7), b = ag::dropout(x, 0.3, true, 42, 7);
  EXPECT_TRUE(tensors_identical(a, b));
  const Tensor c = ag::dropout(x, 0.3, true, 42, 8);
  EXPECT_FALSE(tensors_identical(a, c));
  // Rate over 1M elements: standard deviation sqrt(p (1 - p) / n) ~ 4.6e-4.
  const auto v = a.to_vector<float>();
  int64_t zeros_count = 0;
  for (float e : v) {
    if (e == 0.0f) ++zeros_count;
    else EXPECT_FLOAT_EQ(e, 1.0f / 0.7f);
  }
  EXPECT_NEAR(static_cast<double>(zeros_count) / 1e6, 0.3, 0.003);
  // The mask is exactly uniform_keyed(...) < p.
  const auto u = uniform_keyed({1000, 1000}, 42, 7, 0.0, 1.0, DType::Float32).to_vector<float>();
  for (size_t i = 0; i < v.size(); i += 997) EXPECT_EQ(v[i] == 0.0f, u[i] < 0.3f) << i;
}

TEST(Dropout, ScalingBackwardAndEdgeCases) {
  Tensor x = random_leaf({4, 50}, 1);
  Tensor y = ag::dropout(x, 0.5, true, 3, 0);
  const auto xv = x.to_vector<double>(), yv = y.to_vector<double>();
  for (size_t i = 0; i < xv.size(); ++i) EXPECT_TRUE(yv[i] == 0.0 || yv[i] == xv[i] * 2.0) << i;
  const Tensor g = random_tensor({4, 50}, 2);
  ag::backward(y, g);
  const auto gv = g.to_vector<double>(), dx = ag::grad(x).to_vector<double>();
  for (size_t i = 0; i < xv.size(); ++i) EXPECT_EQ(dx[i], yv[i] == 0.0 ? 0.0 : gv[i] * 2.0) << i;

  // Eval and p = 0: the identity (the same tensor).
  EXPECT_TRUE(ag::dropout(x, 0.5, false, 3, 0).shares_storage_with(x));
  EXPECT_TRUE(ag::dropout(x, 0.0, true, 3, 0).shares_storage_with(x));
  // p = 1: all zeros, gradient zero.
  ag::zero_grad(x);
  Tensor z = ag::dropout(x, 1.0, true, 3, 0);
  EXPECT_TRUE(tensors_identical(z, zeros({4, 50}, DType::Float64)));
  ag::backward(ag::sum(z));
  EXPECT_TRUE(tensors_identical(ag::grad(x), zeros({4, 50}, DType::Float64)));
  // Non-contiguous input: element i of the row-major order uses mask element i.
  const Tensor xt = random_tensor({50, 4}, 3).transpose(0, 1);
  EXPECT_TRUE(tensors_identical(ag::dropout(xt, 0.5, true, 3, 0), ag::dropout(xt.contiguous(), 0.5, true, 3, 0)));

  EXPECT_ERROR_CONTAINS(ag::dropout(x, 1.5, true, 3, 0), "between 0 and 1, but got p = 1.5");
  EXPECT_ERROR_CONTAINS(ag::dropout(x, -0.1, false, 3, 0), "between 0 and 1");
  EXPECT_ERROR_CONTAINS(ag::dropout(x, std::nan(""), true, 3, 0), "between 0 and 1");
}

TEST(Dropout, Gradcheck) {
  expect_gradcheck([](const Inputs& in) { return ag::dropout(in[0], 0.4, true, 123, 5); }, {random_leaf({3, 7}, 9)});
}

}  // namespace
}  // namespace medtl
