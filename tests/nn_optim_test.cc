// Tests of nn/ optimizers and schedulers: SGD/Adam/AdamW against hand-written double loops of
// PyTorch's update equations, clip_grad_norm_, ReduceLROnPlateau trajectories derived from
// PyTorch's algorithm, cosine and step schedules, and state export/import round trips.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "autograd/ops.h"
#include "nn/optim.h"
#include "nn/scheduler.h"
#include "tests/test_util.h"

namespace medtl {
namespace {

using testing::tensors_close;
using testing::tensors_identical;
using Vec = std::vector<double>;

constexpr int64_t kSize = 6;

Vec initial_values() { return {0.5, -1.25, 2.0, 0.0, -0.3, 1.1}; }

// The gradient fed at step t (deterministic, changes sign and size across steps and elements).
Vec gradient_at(int t, int which = 0) {
  Vec g(kSize);
  for (int64_t k = 0; k < kSize; ++k) g[k] = std::sin(1.0 + 0.9 * k + 0.7 * t + 2.3 * which) * (1.0 + 0.5 * k);
  return g;
}

Tensor make_param(DType dtype, int which = 0) {
  Vec v = initial_values();
  for (double& x : v) x += 0.1 * which;
  return ag::requires_grad_leaf(from_vector<double>(v, {2, 3}).to(dtype));
}

// Leaves exactly g in p's .grad: d/dp sum(p * G) = G.
void set_grad(Tensor& p, const Vec& g) {
  ag::zero_grad(p);
  ag::backward(ag::sum(ag::mul(p, from_vector<double>(g, {2, 3}).to(p.dtype()))));
}

// ---- Reference loops: PyTorch 1.13's equations, written out in double. ----

struct RefSgd {
  double lr, momentum, dampening, weight_decay;
  bool nesterov;
  Vec buf;
  void step(Vec& p, const Vec& g) {
    const bool first = buf.empty();
    if (momentum != 0 && first) buf.assign(p.size(), 0.0);
    for (size_t k = 0; k < p.size(); ++k) {
      double d = g[k] + weight_decay * p[k];
      if (momentum != 0) {
        buf[k] = first ? d : momentum * buf[k] + (1 - dampening) * d;
        d = nesterov ? d + momentum * buf[k] : buf[k];
      }
      p[k] -= lr * d;
    }
  }
};

struct RefAdam {
  double lr, beta1, beta2, eps, weight_decay;
  bool amsgrad, decoupled;
  Vec m, v, vmax;
  int t = 0;
  void step(Vec& p, const Vec& g_in) {
    if (m.empty()) m.assign(p.size(), 0), v.assign(p.size(), 0), vmax.assign(p.size(), 0);
    ++t;
    const double bc1 = 1 - std::pow(beta1, t), bc2 = 1 - std::pow(beta2, t);
    for (size_t k = 0; k < p.size(); ++k) {
      double g = g_in[k];
      if (decoupled) p[k] *= 1 - lr * weight_decay;
      else g += weight_decay * p[k];
      m[k] = beta1 * m[k] + (1 - beta1) * g;
      v[k] = beta2 * v[k] + (1 - beta2) * g * g;
      vmax[k] = std::max(vmax[k], v[k]);
      const double denom = std::sqrt(amsgrad ? vmax[k] : v[k]) / std::sqrt(bc2) + eps;
      p[k] -= lr / bc1 * m[k] / denom;
    }
  }
};

template <typename Ref>
void expect_matches_reference(nn::Optimizer& opt, Tensor& p, Ref ref, int steps, double rtol, double atol) {
  Vec expect = initial_values();
  for (int t = 0; t < steps; ++t) {
    set_grad(p, gradient_at(t));
    opt.step();
    ref.step(expect, gradient_at(t));
    ASSERT_TRUE(tensors_close(p, from_vector<double>(expect, {2, 3}), rtol, atol)) << "after step " << t + 1;
  }
}

// ================================================================ SGD

TEST(NnOptim, SgdVariantsMatchReferenceLoops) {
  struct Case { double lr, momentum, dampening, wd; bool nesterov; };
  const std::vector<Case> cases = {{0.1, 0, 0, 0, false},     {0.05, 0.9, 0, 0, false}, {0.05, 0.9, 0.3, 0, false},
                                   {0.05, 0.9, 0, 1e-2, true}, {0.02, 0.5, 0.1, 0.1, false}};
  for (const Case& c : cases) {
    for (DType dtype : {DType::Float64, DType::Float32}) {
      Tensor p = make_param(dtype);
      nn::SGD opt({p}, c.lr, c.momentum, c.dampening, c.wd, c.nesterov);
      const double tol = dtype == DType::Float64 ? 1e-13 : 2e-6;
      SCOPED_TRACE(::testing::Message() << "momentum " << c.momentum << " dampening " << c.dampening << " wd " << c.wd
                                        << " nesterov " << c.nesterov << " " << dtype_name(dtype));
      expect_matches_reference(opt, p, RefSgd{c.lr, c.momentum, c.dampening, c.wd, c.nesterov, {}}, 7, tol, tol);
    }
  }
}

TEST(NnOptim, SgdHandValues) {
  // lr 0.1, momentum 0.9, p = 1, g = 2 then g = 1:
  // step 1: buf = 2, p = 1 - 0.2 = 0.8; step 2: buf = 0.9 * 2 + 1 = 2.8, p = 0.8 - 0.28 = 0.52.
  Tensor p = ag::requires_grad_leaf(full({1}, 1.0, DType::Float64));
  nn::SGD opt({p}, 0.1, 0.9);
  ag::backward(ag::sum(p * 2.0));
  opt.step();
  EXPECT_NEAR(p.item(), 0.8, 1e-15);
  opt.zero_grad();
  ag::backward(ag::sum(p * 1.0));
  opt.step();
  EXPECT_NEAR(p.item(), 0.52, 1e-15);
}

TEST(NnOptim, SgdRejectsBadSettings) {
  Tensor p = make_param(DType::Float32);
  EXPECT_ERROR_CONTAINS(nn::SGD({p}, 0.1, 0.0, 0.0, 0.0, true), "Nesterov momentum requires");
  EXPECT_ERROR_CONTAINS(nn::SGD({p}, 0.1, 0.9, 0.5, 0.0, true), "zero dampening");
  EXPECT_ERROR_CONTAINS(nn::SGD({p}, -1.0), "invalid learning rate");
  EXPECT_ERROR_CONTAINS(nn::SGD({}, 0.1), "empty parameter list");
  EXPECT_ERROR_CONTAINS(nn::SGD({p, p}, 0.1), "same tensor");
  EXPECT_ERROR_CONTAINS(nn::SGD({ag::mul(p, 2.0)}, 0.1), "not a leaf");
}

// ================================================================ Adam, AdamW

TEST(NnOptim, AdamVariantsMatchReferenceLoops) {
  struct Case { double lr, beta1, beta2, eps, wd; bool amsgrad; };
  const std::vector<Case> cases = {{2e-4, 0.9, 0.999, 1e-8, 0, false},  // the paper's classification setting
                                   {0.1, 0.9, 0.999, 1e-8, 0, false},
                                   {0.05, 0.8, 0.99, 1e-6, 0.1, false},
                                   {0.05, 0.9, 0.999, 1e-8, 0, true}};
  for (const Case& c : cases) {
    for (DType dtype : {DType::Float64, DType::Float32}) {
      SCOPED_TRACE(::testing::Message() << "Adam lr " << c.lr << " wd " << c.wd << " amsgrad " << c.amsgrad << " "
                                        << dtype_name(dtype));
      Tensor p = make_param(dtype);
      nn::Adam opt({p}, c.lr, c.beta1, c.beta2, c.eps, c.wd, c.amsgrad);
      const double tol = dtype == DType::Float64 ? 1e-12 : 3e-6;
      expect_matches_reference(opt, p, RefAdam{c.lr, c.beta1, c.beta2, c.eps, c.wd, c.amsgrad, false}, 8, tol, tol);
    }
  }
}

TEST(NnOptim, AdamWMatchesReferenceLoop) {
  for (double wd : {1e-2, 0.5}) {
    for (bool amsgrad : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "AdamW wd " << wd << " amsgrad " << amsgrad);
      Tensor p = make_param(DType::Float64);
      nn::AdamW opt({p}, 0.05, 0.9, 0.999, 1e-8, wd, amsgrad);
      expect_matches_reference(opt, p, RefAdam{0.05, 0.9, 0.999, 1e-8, wd, amsgrad, true}, 8, 1e-12, 1e-12);
    }
  }
}

TEST(NnOptim, AdamFirstStepHandValues) {
  // p = 1, g = 2, lr 0.1: m = 0.2, v = 0.004, bias corrections 0.1 and 0.001, so
  // denom = sqrt(0.004) / sqrt(0.001) + 1e-8 = 2 + 1e-8 and p = 1 - (0.1 / 0.1) 0.2 / (2 + 1e-8).
  Tensor p = ag::requires_grad_leaf(full({1}, 1.0, DType::Float64));
  nn::Adam adam({p}, 0.1);
  ag::backward(ag::sum(p * 2.0));
  adam.step();
  EXPECT_NEAR(p.item(), 1.0 - 0.2 / (2.0 + 1e-8), 1e-15);
  // AdamW, wd 0.01: first p = 1 (1 - 0.1 * 0.01) = 0.999, then the same Adam step.
  Tensor q = ag::requires_grad_leaf(full({1}, 1.0, DType::Float64));
  nn::AdamW adamw({q}, 0.1, 0.9, 0.999, 1e-8, 0.01);
  ag::backward(ag::sum(q * 2.0));
  adamw.step();
  EXPECT_NEAR(q.item(), 0.999 - 0.2 / (2.0 + 1e-8), 1e-15);
}

TEST(NnOptim, ParametersWithoutGradientAreSkipped) {
  Tensor a = make_param(DType::Float32, 0), b = make_param(DType::Float32, 1);
  const Tensor b_before = b.clone();
  nn::Adam opt({a, b}, 0.1);
  set_grad(a, gradient_at(0));
  opt.step();
  EXPECT_TRUE(tensors_identical(b, b_before));
  const nn::NamedTensors state = opt.export_state();
  for (const auto& [name, t] : state) EXPECT_NE(name.rfind("state.1.", 0), 0u) << name;  // no state for b
  // zero_grad(set_to_none = false) keeps zero gradients, and Adam then still moves a with its moments.
  opt.zero_grad(false);
  EXPECT_TRUE(tensors_identical(ag::grad(a), zeros({2, 3})));
  const Tensor a_before = a.clone();
  opt.step();
  EXPECT_FALSE(tensors_identical(a, a_before));
  opt.zero_grad();
  EXPECT_FALSE(ag::grad(a).defined());
}

TEST(NnOptim, UpdatesKeepParameterIdentity) {
  Tensor p = make_param(DType::Float32);
  const void* data = p.raw_data();
  nn::SGD opt({p}, 0.1, 0.9);
  set_grad(p, gradient_at(0));
  opt.step();
  EXPECT_EQ(p.raw_data(), data);
  EXPECT_TRUE(ag::requires_grad(p));
  EXPECT_TRUE(ag::is_leaf(p));
}

// ================================================================ clip_grad_norm_

TEST(NnOptim, ClipGradNormScalesToMaxNormAndReturnsTotal) {
  Tensor a = ag::requires_grad_leaf(zeros({2}, DType::Float64));
  Tensor b = ag::requires_grad_leaf(zeros({1}, DType::Float64));
  Tensor c = ag::requires_grad_leaf(zeros({1}, DType::Float64));  // no gradient: ignored
  ag::backward(ag::sum(a * from_vector<double>({3, 4}, {2})) + ag::sum(b * 12.0));
  // total = sqrt(9 + 16 + 144) = 13; coef = 6.5 / (13 + 1e-6)
  EXPECT_DOUBLE_EQ(nn::clip_grad_norm_({a, b, c}, 6.5), 13.0);
  const double coef = 6.5 / (13.0 + 1e-6);
  EXPECT_TRUE(tensors_close(ag::grad(a), from_vector<double>({3 * coef, 4 * coef}, {2}), 1e-15, 0));
  EXPECT_NEAR(ag::grad(b).item(), 12 * coef, 1e-14);
  // Now the norm is ~6.5 < 100: nothing changes.
  const Tensor before = ag::grad(a).clone();
  EXPECT_NEAR(nn::clip_grad_norm_({a, b, c}, 100.0), 6.5, 1e-6);
  EXPECT_TRUE(tensors_identical(ag::grad(a), before));
  EXPECT_EQ(nn::clip_grad_norm_({c}, 1.0), 0.0);  // no gradients at all
}

TEST(NnOptim, ClipGradNormLargeTensorIsDeterministicAndNonFiniteCanError) {
  Generator gen(3);
  Tensor a = ag::requires_grad_leaf(zeros({300000}));
  const Tensor g = uniform({300000}, gen, -1, 1);
  ag::backward(ag::sum(a * g));
  double ref = 0;
  for (float v : g.to_vector<float>()) ref += double(v) * double(v);
  EXPECT_NEAR(nn::clip_grad_norm_({a}, 1e9), std::sqrt(ref), 1e-9 * std::sqrt(ref));
  Tensor n = ag::requires_grad_leaf(zeros({1}));
  ag::backward(ag::sum(n * std::numeric_limits<double>::infinity()));
  EXPECT_ERROR_CONTAINS(nn::clip_grad_norm_({n}, 1.0, true), "NaN or inf");
}

// ================================================================ ReduceLROnPlateau

// lr after each step(metric).
Vec plateau_trajectory(nn::ReduceLROnPlateau& sched, const Vec& metrics) {
  Vec lrs;
  for (double m : metrics) {
    sched.step(m);
    lrs.push_back(sched.lr());
  }
  return lrs;
}

void expect_lrs(const Vec& got, const Vec& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_DOUBLE_EQ(got[i], want[i]) << "after step " << i + 1;
}

TEST(NnScheduler, PlateauMinRelThresholdTrajectory) {
  // factor 0.5, patience 2, threshold 1e-4 rel. PyTorch (best starts at inf):
  //  1.0 better; 0.9 better (< 1.0 * 0.9999); 0.95 bad 1; 0.91 bad 2; 0.9 bad 3 > 2 -> lr 0.5, bad 0;
  //  0.89995 bad 1 (not < 0.9 * 0.9999 = 0.89991: too small an improvement); 0.8 better;
  //  0.85, 0.86 bad 1, 2; 0.87 bad 3 -> lr 0.25; 0.88, 0.89 bad 1, 2; 0.9 bad 3 -> lr 0.125.
  Tensor p = make_param(DType::Float32);
  nn::SGD opt({p}, 1.0);
  nn::ReduceLROnPlateau sched(opt, nn::ReduceLROnPlateau::Mode::Min, 0.5, 2, 1e-4);
  expect_lrs(plateau_trajectory(sched, {1.0, 0.9, 0.95, 0.91, 0.9, 0.89995, 0.8, 0.85, 0.86, 0.87, 0.88, 0.89, 0.9}),
             {1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125});
  EXPECT_DOUBLE_EQ(sched.best(), 0.8);
  EXPECT_EQ(sched.last_epoch(), 13);
}

TEST(NnScheduler, PlateauPaperSettingsHalveAtSixthBadEpoch) {
  // Adam lr 2e-4, factor 0.5, patience 5: improvement for 5 epochs, then flat at 0.6. Epochs 6..11
  // are bad 1..6; at bad 6 > 5 (epoch 11) lr -> 1e-4; epochs 12..17 bad 1..6 -> 5e-5 at epoch 17.
  Tensor p = make_param(DType::Float32);
  nn::Adam opt({p}, 2e-4);
  nn::ReduceLROnPlateau sched(opt, nn::ReduceLROnPlateau::Mode::Min, 0.5, 5, 1e-4);
  Vec metrics = {1.0, 0.9, 0.8, 0.7, 0.6};
  metrics.resize(17, 0.6);
  Vec want(17, 2e-4);
  for (size_t i = 10; i < 16; ++i) want[i] = 1e-4;
  want[16] = 5e-5;
  expect_lrs(plateau_trajectory(sched, metrics), want);
}

TEST(NnScheduler, PlateauCooldownAndMinLr) {
  // factor 0.1, patience 1, cooldown 2, min_lr 0.015, constant metric 1.0:
  //  e1 better; e2 bad 1; e3 bad 2 -> lr 0.1, cooldown 2; e4, e5 in cooldown (bad reset to 0);
  //  e6 bad 1; e7 bad 2 -> max(0.01, 0.015) = 0.015, cooldown 2; e8, e9 cooldown; e10 bad 1;
  //  e11 bad 2 -> max(0.0015, 0.015) = 0.015: no change (0.015 - 0.015 = 0 is not > eps).
  Tensor p = make_param(DType::Float32);
  nn::SGD opt({p}, 1.0);
  nn::ReduceLROnPlateau sched(opt, nn::ReduceLROnPlateau::Mode::Min, 0.1, 1, 1e-4,
                              nn::ReduceLROnPlateau::ThresholdMode::Rel, 2, 0.015);
  expect_lrs(plateau_trajectory(sched, Vec(11, 1.0)), {1, 1, 0.1, 0.1, 0.1, 0.1, 0.015, 0.015, 0.015, 0.015, 0.015});
  EXPECT_EQ(sched.cooldown_counter(), 2);
}

TEST(NnScheduler, PlateauMaxAbsModeEpsAndNaN) {
  // mode max, abs threshold 0.01, patience 0, factor 0.5: 0.5 better; 0.505 not > 0.51 -> lr 0.5;
  // 0.52 better; 0.52 not > 0.53 -> lr 0.25; 0.6 better.
  Tensor p = make_param(DType::Float32);
  nn::SGD opt({p}, 1.0);
  nn::ReduceLROnPlateau sched(opt, nn::ReduceLROnPlateau::Mode::Max, 0.5, 0, 0.01,
                              nn::ReduceLROnPlateau::ThresholdMode::Abs);
  expect_lrs(plateau_trajectory(sched, {0.5, 0.505, 0.52, 0.52, 0.6}), {1, 0.5, 0.5, 0.25, 0.25});
  // A reduction smaller than eps (1e-8) is not applied: 1e-8 -> 5e-9 differs by 5e-9.
  nn::SGD small({p}, 1e-8);
  nn::ReduceLROnPlateau s2(small, nn::ReduceLROnPlateau::Mode::Min, 0.5, 0);
  expect_lrs(plateau_trajectory(s2, {1.0, 1.0, 1.0}), {1e-8, 1e-8, 1e-8});
  // NaN is never better, so it counts as a bad epoch.
  nn::SGD o3({p}, 1.0);
  nn::ReduceLROnPlateau s3(o3, nn::ReduceLROnPlateau::Mode::Min, 0.5, 1);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  expect_lrs(plateau_trajectory(s3, {1.0, nan, nan}), {1, 1, 0.5});
  // PyTorch's rel rule for a negative best: a < best (1 - threshold) accepts -0.99995 after -1.
  EXPECT_TRUE(s3.is_better(-0.99995, -1.0));
  EXPECT_ERROR_CONTAINS(nn::ReduceLROnPlateau(o3, nn::ReduceLROnPlateau::Mode::Min, 1.0), "factor should be < 1.0");
}

TEST(NnScheduler, PlateauStateRoundTripContinuesIdentically) {
  const Vec metrics = {1.0, 0.9, 0.95, 0.91, 0.9, 0.92, 0.93, 0.94, 0.95, 0.96};
  Tensor p = make_param(DType::Float32);
  nn::SGD full_opt({p}, 1.0);
  nn::ReduceLROnPlateau full(full_opt, nn::ReduceLROnPlateau::Mode::Min, 0.5, 2, 1e-4,
                             nn::ReduceLROnPlateau::ThresholdMode::Rel, 1);
  const Vec want = plateau_trajectory(full, metrics);
  nn::SGD first_opt({p}, 1.0);
  nn::ReduceLROnPlateau first(first_opt, nn::ReduceLROnPlateau::Mode::Min, 0.5, 2, 1e-4,
                              nn::ReduceLROnPlateau::ThresholdMode::Rel, 1);
  Vec got = plateau_trajectory(first, Vec(metrics.begin(), metrics.begin() + 5));
  // Resume in fresh objects from the exported states.
  nn::SGD resumed_opt({p}, 123.0);
  resumed_opt.load_state(first_opt.export_state());
  nn::ReduceLROnPlateau resumed(resumed_opt, nn::ReduceLROnPlateau::Mode::Min, 0.5, 2, 1e-4,
                                nn::ReduceLROnPlateau::ThresholdMode::Rel, 1);
  resumed.load_state(first.export_state());
  for (double lr : plateau_trajectory(resumed, Vec(metrics.begin() + 5, metrics.end()))) got.push_back(lr);
  expect_lrs(got, want);
  EXPECT_ERROR_CONTAINS(resumed.load_state({{"best", 1.0}}), "no 'num_bad_epochs'");
  EXPECT_ERROR_CONTAINS(resumed.load_state({{"bogus", 1.0}}), "unexpected entry 'bogus'");
}

// ================================================================ cosine and step schedules

TEST(NnScheduler, CosineEpochFollowsPaperFormula) {
  // E = 4, lr0 = 1: after epoch 0 -> 1, 1 -> 0.5 (1 + cos(pi/4)), 2 -> 0.5, 3 -> 0.5 (1 - cos(pi/4)),
  // 4 -> 1 again (e mod E). Epochs 0 and 1 both train at lr0.
  Tensor p = make_param(DType::Float32);
  nn::Adam opt({p}, 1.0);
  nn::CosineEpoch sched(opt, 4);
  const double c = std::cos(3.14159265358979323846 / 4);
  const Vec want = {1.0, 0.5 * (1 + c), 0.5, 0.5 * (1 - c), 1.0, 0.5 * (1 + c)};
  for (size_t e = 0; e < want.size(); ++e) {
    sched.step();
    EXPECT_NEAR(opt.lr(), want[e], 1e-15) << "after epoch " << e;
  }
  EXPECT_EQ(sched.last_epoch(), 5);
  // The paper's segmentation run: lr0 1e-3, E = 200; after epoch 100 the lr is exactly half.
  EXPECT_NEAR(nn::CosineEpoch::lr_at(1e-3, 100, 200), 5e-4, 1e-18);
  EXPECT_NEAR(nn::CosineEpoch::lr_at(1e-3, 0, 200), 1e-3, 1e-18);
  // Round trip: a fresh scheduler with the exported state continues the same sequence.
  nn::Adam opt2({p}, 77.0);
  nn::CosineEpoch resumed(opt2, 4);
  resumed.load_state(sched.export_state());
  sched.step();
  resumed.step();
  EXPECT_EQ(opt2.lr(), opt.lr());
  EXPECT_NEAR(opt2.lr(), 0.5, 1e-15);  // epoch 6: 6 mod 4 = 2
}

TEST(NnScheduler, StepLrMatchesPyTorch) {
  // step_size 3, gamma 0.1: epochs 0-2 at 1, 3-5 at 0.1, 6-7 at 0.01 (lr read after each step()).
  Tensor p = make_param(DType::Float32);
  nn::SGD opt({p}, 1.0);
  nn::StepLR sched(opt, 3, 0.1);
  Vec got = {opt.lr()};
  for (int e = 1; e < 8; ++e) {
    sched.step();
    got.push_back(opt.lr());
  }
  const Vec want = {1, 1, 1, 0.1, 0.1, 0.1, 0.1 * 0.1, 0.1 * 0.1};
  expect_lrs(got, want);
  nn::SGD opt2({p}, 0.01);
  nn::StepLR resumed(opt2, 3, 0.1);
  resumed.load_state(sched.export_state());
  EXPECT_EQ(resumed.last_epoch(), 7);
  resumed.step();  // last_epoch 8: no change
  resumed.step();  // last_epoch 9: x 0.1
  EXPECT_NEAR(opt2.lr(), 0.001, 1e-18);
}

// ================================================================ optimizer state round trip

template <typename MakeOpt>
void expect_round_trip(MakeOpt make_opt) {
  // A: 6 steps straight. B: 3 steps, export; C: fresh params copied from B, load, 3 more steps.
  Tensor pa0 = make_param(DType::Float32, 0), pa1 = make_param(DType::Float32, 1);
  Tensor pb0 = make_param(DType::Float32, 0), pb1 = make_param(DType::Float32, 1);
  auto a = make_opt(std::vector<Tensor>{pa0, pa1});
  auto b = make_opt(std::vector<Tensor>{pb0, pb1});
  for (int t = 0; t < 6; ++t) {
    set_grad(pa0, gradient_at(t, 0));
    set_grad(pa1, gradient_at(t, 1));
    a->step();
    if (t < 3) {
      set_grad(pb0, gradient_at(t, 0));
      set_grad(pb1, gradient_at(t, 1));
      b->step();
    }
  }
  const nn::NamedTensors state = b->export_state();
  Tensor pc0 = ag::requires_grad_leaf(pb0.clone()), pc1 = ag::requires_grad_leaf(pb1.clone());
  auto c = make_opt(std::vector<Tensor>{pc0, pc1});
  c->set_lr(999.0);  // overwritten by the loaded state
  c->load_state(state);
  for (int t = 3; t < 6; ++t) {
    set_grad(pc0, gradient_at(t, 0));
    set_grad(pc1, gradient_at(t, 1));
    c->step();
  }
  EXPECT_TRUE(tensors_identical(pc0, pa0));
  EXPECT_TRUE(tensors_identical(pc1, pa1));
  // The exported state is a snapshot: later steps of b do not change it.
  const Tensor first_buffer = state[2].second.clone();
  set_grad(pb0, gradient_at(9));
  b->step();
  EXPECT_TRUE(tensors_identical(state[2].second, first_buffer));
}

TEST(NnOptim, StateExportImportRoundTripContinuesIdentically) {
  expect_round_trip([](std::vector<Tensor> ps) { return std::make_unique<nn::SGD>(ps, 0.05, 0.9, 0.0, 1e-3, true); });
  expect_round_trip([](std::vector<Tensor> ps) { return std::make_unique<nn::Adam>(ps, 0.01); });
  expect_round_trip([](std::vector<Tensor> ps) {
    return std::make_unique<nn::AdamW>(ps, 0.01, 0.9, 0.999, 1e-8, 0.05, true);
  });
}

TEST(NnOptim, StateKeysAndLoadErrors) {
  Tensor p = make_param(DType::Float32);
  nn::Adam opt({p}, 0.01);
  set_grad(p, gradient_at(0));
  opt.step();
  const nn::NamedTensors state = opt.export_state();
  std::vector<std::string> names;
  for (const auto& [name, t] : state) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"lr", "state.0.step", "state.0.exp_avg", "state.0.exp_avg_sq"}));
  EXPECT_EQ(state[1].second.dtype(), DType::Int64);
  EXPECT_EQ(state[1].second.item(), 1.0);

  nn::NamedTensors bad_shape = state;
  bad_shape[2].second = zeros({3, 2});
  EXPECT_ERROR_CONTAINS(opt.load_state(bad_shape), "state.0.exp_avg");
  nn::NamedTensors bad_index = state;
  bad_index[2].first = "state.4.exp_avg";
  EXPECT_ERROR_CONTAINS(opt.load_state(bad_index), "has 1 parameters");
  nn::NamedTensors missing = {state[0], state[1], state[2]};
  EXPECT_ERROR_CONTAINS(opt.load_state(missing), "state.0.exp_avg_sq");
  nn::NamedTensors unknown = state;
  unknown.emplace_back("state.0.momentum_buffer", zeros({2, 3}));
  EXPECT_ERROR_CONTAINS(opt.load_state(unknown), "does not keep");
  EXPECT_ERROR_CONTAINS(opt.load_state({state[1]}), "no 'lr'");
  // A failed load leaves the optimizer as it was.
  EXPECT_DOUBLE_EQ(opt.lr(), 0.01);
  EXPECT_EQ(opt.export_state().size(), 4u);
}

}  // namespace
}  // namespace medtl
