// Tests of nn/ layers and init: state_dict names and order, shapes, freezing, BatchNorm modes and
// buffers, init statistics, layers vs their functional ops, and a tiny conv net that learns.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "autograd/layer_ops.h"
#include "autograd/ops.h"
#include "nn/init.h"
#include "nn/layers.h"
#include "nn/loss.h"
#include "nn/optim.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/reduce.h"
#include "tests/test_util.h"

namespace medtl {
namespace {

using nn::NamedTensors;
using testing::tensors_close;
using testing::tensors_identical;

std::vector<std::string> names_of(const NamedTensors& named) {
  std::vector<std::string> out;
  for (const auto& [name, t] : named) out.push_back(name);
  return out;
}

struct Stats {
  double mean = 0, std = 0, max_abs = 0;
};
Stats stats_of(const Tensor& t) {
  const auto v = t.to_vector<double>();
  Stats s;
  for (double x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  for (double x : v) {
    s.std += (x - s.mean) * (x - s.mean);
    s.max_abs = std::max(s.max_abs, std::abs(x));
  }
  s.std = std::sqrt(s.std / static_cast<double>(v.size()));
  return s;
}

// Conv2d(3, 4, 3) + BatchNorm2d(4) + ReLU + AdaptiveAvgPool2d(1) + Flatten + Linear(4, 2).
std::shared_ptr<nn::Sequential> small_net(Generator& gen) {
  auto net = std::make_shared<nn::Sequential>();
  net->push_back(std::make_shared<nn::Conv2d>(3, 4, 3, gen, 1, 1));
  net->push_back(std::make_shared<nn::BatchNorm2d>(4));
  net->push_back(std::make_shared<nn::ReLU>());
  net->push_back(std::make_shared<nn::AdaptiveAvgPool2d>(1));
  net->push_back(std::make_shared<nn::Flatten>());
  net->push_back(std::make_shared<nn::Linear>(4, 2, gen));
  return net;
}

// ================================================================ naming, shapes, freezing

TEST(NnModule, StateDictNamesAndOrderMatchPyTorch) {
  Generator gen(1);
  auto net = small_net(gen);
  // What print(net.state_dict().keys()) shows for the same torch.nn.Sequential.
  EXPECT_EQ(names_of(net->state_dict()),
            (std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                                      "1.num_batches_tracked", "5.weight", "5.bias"}));
  EXPECT_EQ(names_of(net->named_parameters()),
            (std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias", "5.weight", "5.bias"}));
  EXPECT_EQ(names_of(net->named_buffers()),
            (std::vector<std::string>{"1.running_mean", "1.running_var", "1.num_batches_tracked"}));
}

TEST(NnModule, ParameterAndBufferShapesAndDtypes) {
  Generator gen(2);
  auto net = small_net(gen);
  const NamedTensors sd = net->state_dict();
  const std::vector<Shape> shapes = {{4, 3, 3, 3}, {4}, {4}, {4}, {4}, {4}, {}, {2, 4}, {2}};
  ASSERT_EQ(sd.size(), shapes.size());
  for (size_t i = 0; i < sd.size(); ++i) EXPECT_EQ(sd[i].second.shape(), shapes[i]) << sd[i].first;
  EXPECT_EQ(sd[6].second.dtype(), DType::Int64);  // num_batches_tracked
  EXPECT_EQ(sd[0].second.dtype(), DType::Float32);
  for (const auto& [name, t] : net->named_parameters()) EXPECT_TRUE(ag::requires_grad(t)) << name;
  for (const auto& [name, t] : net->named_buffers()) EXPECT_FALSE(ag::requires_grad(t)) << name;
}

TEST(NnModule, BiasFreeConvHasNoBiasEntry) {
  Generator gen(3);
  nn::Conv2d conv(2, 5, 1, gen, 1, 0, 1, /*bias=*/false);
  EXPECT_EQ(names_of(conv.state_dict()), std::vector<std::string>{"weight"});
  EXPECT_FALSE(conv.bias().defined());
  nn::Linear fc(3, 2, gen, /*bias=*/false);
  EXPECT_EQ(names_of(fc.state_dict()), std::vector<std::string>{"weight"});
}

TEST(NnModule, StateDictSharesStorageWithLayers) {
  Generator gen(4);
  nn::Linear fc(3, 2, gen);
  const NamedTensors sd = fc.state_dict();
  EXPECT_TRUE(sd[0].second.shares_storage_with(fc.weight()));
  nn::init::constant_(sd[0].second, 0.25);  // writing the state_dict entry changes the layer
  EXPECT_EQ(fc.weight().to_vector<float>(), std::vector<float>(6, 0.25f));
}

TEST(NnModule, FreezingByPrefixStopsGradients) {
  Generator gen(5);
  auto net = small_net(gen);
  EXPECT_EQ(net->set_requires_grad("0.", false), 2);
  EXPECT_EQ(net->trainable_parameters().size(), 4u);
  const Tensor x = uniform({2, 3, 5, 5}, gen, -1, 1);
  ag::backward(ag::sum(net->forward(x)));
  const NamedTensors params = net->named_parameters();
  EXPECT_FALSE(ag::grad(params[0].second).defined());  // 0.weight frozen
  EXPECT_FALSE(ag::grad(params[1].second).defined());  // 0.bias frozen
  EXPECT_TRUE(ag::grad(params[2].second).defined());   // 1.weight trains
  EXPECT_TRUE(ag::grad(params[5].second).defined());   // 5.bias trains
  EXPECT_ERROR_CONTAINS(net->set_requires_grad("layer9.", false), "layer9.");
}

// ================================================================ BatchNorm2d

TEST(NnBatchNorm, TrainingUsesBatchStatsAndUpdatesBuffersEvalUsesRunningStats) {
  Generator gen(6);
  nn::BatchNorm2d bn(3);
  const int64_t N = 4, C = 3, S = 10;
  const Tensor x = uniform({N, C, 2, 5}, gen, -2, 3);
  const auto xv = x.to_vector<double>();
  std::vector<double> mean(C, 0), var_b(C, 0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t s = 0; s < S; ++s) mean[c] += xv[(n * C + c) * S + s] / (N * S);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t s = 0; s < S; ++s) var_b[c] += std::pow(xv[(n * C + c) * S + s] - mean[c], 2) / (N * S);

  EXPECT_EQ(bn.num_batches_tracked(), 0);
  const Tensor y = bn.forward(x);
  EXPECT_EQ(bn.num_batches_tracked(), 1);
  std::vector<double> expect(xv.size()), rm(C), rv(C);
  for (int64_t c = 0; c < C; ++c) {
    rm[c] = 0.1 * mean[c];                                       // 0.9 * 0 + 0.1 * mean
    rv[c] = 0.9 * 1.0 + 0.1 * var_b[c] * (N * S) / (N * S - 1);  // unbiased variance
  }
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t s = 0; s < S; ++s) {
        const int64_t i = (n * C + c) * S + s;
        expect[i] = (xv[i] - mean[c]) / std::sqrt(var_b[c] + 1e-5);
      }
  EXPECT_TRUE(tensors_close(y, from_vector<double>(expect, x.shape()), 1e-4, 1e-5));
  EXPECT_TRUE(tensors_close(bn.running_mean(), from_vector<double>(rm, {C}), 1e-5, 1e-6));
  EXPECT_TRUE(tensors_close(bn.running_var(), from_vector<double>(rv, {C}), 1e-5, 1e-6));

  bn.eval();
  EXPECT_FALSE(bn.is_training());
  const Tensor y_eval = bn.forward(x);
  EXPECT_EQ(bn.num_batches_tracked(), 1);  // eval does not count
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t s = 0; s < S; ++s) {
        const int64_t i = (n * C + c) * S + s;
        expect[i] = (xv[i] - rm[c]) / std::sqrt(rv[c] + 1e-5);
      }
  EXPECT_TRUE(tensors_close(y_eval, from_vector<double>(expect, x.shape()), 1e-4, 1e-5));
  EXPECT_TRUE(tensors_close(bn.running_mean(), from_vector<double>(rm, {C}), 1e-5, 1e-6));  // untouched

  bn.train();
  bn.forward(x);
  bn.forward(x);
  EXPECT_EQ(bn.num_batches_tracked(), 3);
}

TEST(NnBatchNorm, SequentialTrainEvalReachesChildren) {
  Generator gen(7);
  auto net = small_net(gen);
  auto bn = std::dynamic_pointer_cast<nn::BatchNorm2d>(net->submodule("1"));
  ASSERT_NE(bn, nullptr);
  const Tensor x = uniform({2, 3, 4, 4}, gen, -1, 1);
  net->forward(x);
  EXPECT_EQ(bn->num_batches_tracked(), 1);
  net->eval();
  EXPECT_FALSE(bn->is_training());
  const Tensor a = net->forward(x), b = net->forward(x);
  EXPECT_TRUE(tensors_identical(a, b));  // eval is deterministic and changes no buffer
  EXPECT_EQ(bn->num_batches_tracked(), 1);
  // The buffer tensor in the state_dict is the one that counts.
  EXPECT_EQ(net->state_dict()[6].second.item(), 1.0);
}

TEST(NnBatchNorm, WorksOnTwoDimensionalInput) {
  Generator gen(8);
  nn::BatchNorm2d bn(5);
  const Tensor x = uniform({6, 5}, gen, -1, 1);
  const Tensor y = bn.forward(x);
  EXPECT_EQ(y.shape(), Shape({6, 5}));
  const Tensor m = ops::mean(y, {0});
  EXPECT_TRUE(tensors_close(m, zeros({5}), 0, 1e-5));
  EXPECT_EQ(bn.num_batches_tracked(), 1);
}

TEST(NnBatchNorm, RejectsWrongChannelsAndSingleValuePerChannel) {
  nn::BatchNorm2d bn(4);
  EXPECT_ERROR_CONTAINS(bn.forward(zeros({2, 3, 2, 2})), "BatchNorm2d(4)");
  EXPECT_ERROR_CONTAINS(bn.forward(zeros({1, 4})), "more than 1 value per channel");
  EXPECT_EQ(bn.num_batches_tracked(), 0);  // a rejected batch is not counted
}

// ================================================================ init

TEST(NnInit, KaimingNormalFanOutStd) {
  Generator gen(9);
  Tensor w = empty({256, 128, 3, 3});
  const void* before = w.raw_data();
  nn::init::kaiming_normal_(w, gen, nn::init::FanMode::FanOut, nn::init::Nonlinearity::Relu);
  EXPECT_EQ(w.raw_data(), before);  // in place
  const Stats s = stats_of(w);
  const double expect_std = std::sqrt(2.0 / (256 * 9));
  EXPECT_NEAR(s.std, expect_std, 0.01 * expect_std);
  EXPECT_NEAR(s.mean, 0.0, 4 * expect_std / std::sqrt(w.numel()));
  // fan_in mode uses 128 * 9.
  nn::init::kaiming_normal_(w, gen, nn::init::FanMode::FanIn, nn::init::Nonlinearity::Relu);
  EXPECT_NEAR(stats_of(w).std, std::sqrt(2.0 / (128 * 9)), 0.01 * std::sqrt(2.0 / (128 * 9)));
}

TEST(NnInit, HeadNormalAndZeroBiasKeepParameterIdentity) {
  Generator gen(10);
  nn::Linear head(2048, 14, gen);
  const Tensor w_before = head.weight();
  nn::init::normal_(head.weight(), gen, 0.0, 0.01);
  nn::init::zeros_(head.bias());
  EXPECT_TRUE(head.weight().shares_storage_with(w_before));
  EXPECT_TRUE(ag::requires_grad(head.weight()));
  const Stats s = stats_of(head.weight());
  EXPECT_NEAR(s.std, 0.01, 0.0002);
  EXPECT_NEAR(s.mean, 0.0, 4 * 0.01 / std::sqrt(head.weight().numel()));
  EXPECT_EQ(head.bias().to_vector<float>(), std::vector<float>(14, 0.0f));
  // The state_dict sees the new values.
  EXPECT_TRUE(tensors_identical(head.state_dict()[0].second, head.weight()));
}

TEST(NnInit, DefaultConvAndLinearInitMatchPyTorchBounds) {
  Generator gen(11);
  nn::Conv2d conv(32, 64, 3, gen);
  const double bound = 1.0 / std::sqrt(32.0 * 9.0);  // kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(fan_in), ..)
  const Stats w = stats_of(conv.weight());
  EXPECT_LE(w.max_abs, bound);
  EXPECT_GT(w.max_abs, 0.99 * bound);
  EXPECT_NEAR(w.std, bound / std::sqrt(3.0), 0.02 * bound / std::sqrt(3.0));
  EXPECT_LE(stats_of(conv.bias()).max_abs, bound);
  nn::Linear fc(50, 400, gen);
  EXPECT_LE(stats_of(fc.weight()).max_abs, 1.0 / std::sqrt(50.0));
  EXPECT_GT(stats_of(fc.bias()).max_abs, 0.9 / std::sqrt(50.0));  // 400 draws reach near the bound
  EXPECT_LE(stats_of(fc.bias()).max_abs, 1.0 / std::sqrt(50.0));
}

TEST(NnInit, FansGainsXavierAndConstants) {
  EXPECT_EQ(nn::init::calculate_fans(empty({64, 32, 3, 3})).fan_in, 288);
  EXPECT_EQ(nn::init::calculate_fans(empty({64, 32, 3, 3})).fan_out, 576);
  EXPECT_EQ(nn::init::calculate_fans(empty({10, 20})).fan_in, 20);
  EXPECT_ERROR_CONTAINS(nn::init::calculate_fans(empty({10})), "fewer than 2");
  EXPECT_DOUBLE_EQ(nn::init::calculate_gain(nn::init::Nonlinearity::Relu), std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(nn::init::calculate_gain(nn::init::Nonlinearity::Tanh), 5.0 / 3.0);
  EXPECT_DOUBLE_EQ(nn::init::calculate_gain(nn::init::Nonlinearity::LeakyRelu, std::sqrt(5.0)), std::sqrt(1.0 / 3.0));
  Generator gen(12);
  Tensor w = empty({100, 200}, DType::Float64);
  nn::init::xavier_uniform_(w, gen);
  const double bound = std::sqrt(6.0 / 300.0);
  EXPECT_LE(stats_of(w).max_abs, bound);
  EXPECT_NEAR(stats_of(w).std, bound / std::sqrt(3.0), 0.02 * bound / std::sqrt(3.0));
  nn::init::xavier_normal_(w, gen, 2.0);
  EXPECT_NEAR(stats_of(w).std, 2.0 * std::sqrt(2.0 / 300.0), 0.02 * 2.0 * std::sqrt(2.0 / 300.0));
  nn::init::kaiming_uniform_(w, gen, nn::init::FanMode::FanIn, nn::init::Nonlinearity::Relu);
  EXPECT_LE(stats_of(w).max_abs, std::sqrt(6.0 / 200.0));
  nn::init::uniform_(w, gen, 2.0, 3.0);
  EXPECT_NEAR(stats_of(w).mean, 2.5, 0.01);
  nn::init::ones_(w);
  EXPECT_EQ(stats_of(w).mean, 1.0);
  // Writing through a strided view writes only that view.
  Tensor z = zeros({3, 4});
  nn::init::constant_(z.select(1, 2), 7.0);
  EXPECT_EQ(z.to_vector<float>(), std::vector<float>({0, 0, 7, 0, 0, 0, 7, 0, 0, 0, 7, 0}));
  EXPECT_ERROR_CONTAINS(nn::init::normal_(zeros({2}, DType::Int64), gen), "float32 or float64");
}

TEST(NnInit, SameSeedSameWeightsDifferentSeedDifferent) {
  Generator g1(42), g2(42), g3(43);
  nn::Conv2d a(3, 8, 3, g1), b(3, 8, 3, g2), c(3, 8, 3, g3);
  EXPECT_TRUE(tensors_identical(a.weight(), b.weight()));
  EXPECT_TRUE(tensors_identical(a.bias(), b.bias()));
  EXPECT_FALSE(tensors_identical(a.weight(), c.weight()));
  EXPECT_EQ(g1.next_stream(), 2u);  // one stream for the weight, one for the bias
}

// ================================================================ layers vs functional ops

TEST(NnLayers, ForwardMatchesFunctionalOps) {
  Generator gen(13);
  const Tensor x = uniform({2, 3, 7, 7}, gen, -1, 1);
  nn::Conv2d conv(3, 5, 3, gen, 2, 1, 1);
  ops::Conv2dParams p;
  p.stride_h = p.stride_w = 2;
  p.pad_h = p.pad_w = 1;
  EXPECT_TRUE(tensors_identical(conv.forward(x), ag::conv2d(x, conv.weight(), conv.bias(), p)));
  EXPECT_EQ(conv.forward(x).shape(), Shape({2, 5, 4, 4}));

  nn::MaxPool2d pool(3, 2, 1);
  ops::MaxPool2dParams mp;
  mp.kernel_h = mp.kernel_w = 3;
  mp.stride_h = mp.stride_w = 2;
  mp.pad_h = mp.pad_w = 1;
  EXPECT_TRUE(tensors_identical(pool.forward(x), ag::max_pool2d(x, mp)));
  EXPECT_EQ(nn::MaxPool2d(2).params().stride_h, 2);  // stride defaults to the kernel size

  EXPECT_TRUE(tensors_identical(nn::AdaptiveAvgPool2d(1).forward(x), ops::mean(x, {2, 3}, true)));
  EXPECT_EQ(nn::Flatten().forward(x).shape(), Shape({2, 147}));
  EXPECT_TRUE(tensors_identical(nn::ReLU().forward(x), ag::relu(x)));
  EXPECT_TRUE(tensors_identical(nn::Sigmoid().forward(x), ag::sigmoid(x)));

  nn::Linear fc(147, 4, gen);
  const Tensor flat = x.reshape({2, 147});
  EXPECT_TRUE(tensors_identical(fc.forward(flat), ag::linear(flat, fc.weight(), fc.bias())));
}

TEST(NnLayers, ShapeErrorsNameTheLayer) {
  Generator gen(14);
  nn::Conv2d conv(3, 5, 3, gen);
  EXPECT_ERROR_CONTAINS(conv.forward(zeros({1, 4, 8, 8})), "Conv2d(3, 5)");
  nn::Linear fc(6, 2, gen);
  EXPECT_ERROR_CONTAINS(fc.forward(zeros({3, 5})), "Linear(6, 2)");
  EXPECT_ERROR_CONTAINS(nn::AdaptiveAvgPool2d(7), "only output size 1");
  EXPECT_ERROR_CONTAINS(nn::Dropout(1.5), "between 0 and 1");
}

TEST(NnLayers, DropoutFreshMaskPerCallReproducibleFromSeed) {
  const Tensor x = ones({1000});
  nn::Dropout a(0.5, 7), b(0.5, 7), c(0.5, 8);
  const Tensor a1 = a.forward(x), a2 = a.forward(x);
  EXPECT_FALSE(tensors_identical(a1, a2));  // a fresh mask each call
  EXPECT_EQ(a.stream(), 2u);
  EXPECT_TRUE(tensors_identical(a1, b.forward(x)));  // same seed: same sequence
  EXPECT_TRUE(tensors_identical(a2, b.forward(x)));
  EXPECT_FALSE(tensors_identical(a1, c.forward(x)));
  int kept = 0;
  for (float v : a1.to_vector<float>()) {
    EXPECT_TRUE(v == 0.0f || v == 2.0f);
    kept += v != 0.0f;
  }
  EXPECT_NEAR(kept, 500, 60);
  a.eval();
  EXPECT_TRUE(tensors_identical(a.forward(x), x));
  EXPECT_EQ(a.stream(), 2u);  // eval draws nothing
  // Resuming at a saved stream gives the same next mask.
  nn::Dropout d(0.5, 7);
  d.set_stream(1);
  EXPECT_TRUE(tensors_identical(d.forward(x), a2));
}

// ================================================================ learning

TEST(NnLayers, TinyConvNetLossDecreasesWithSgd) {
  Generator gen(15);
  auto net = std::make_shared<nn::Sequential>();
  net->push_back(std::make_shared<nn::Conv2d>(1, 4, 3, gen, 1, 1));
  net->push_back(std::make_shared<nn::BatchNorm2d>(4));
  net->push_back(std::make_shared<nn::ReLU>());
  net->push_back(std::make_shared<nn::MaxPool2d>(2));
  net->push_back(std::make_shared<nn::AdaptiveAvgPool2d>(1));
  net->push_back(std::make_shared<nn::Flatten>());
  net->push_back(std::make_shared<nn::Linear>(4, 1, gen));
  // Label: is the image's mean above zero? (inputs shifted per sample so both classes occur)
  const int64_t N = 8;
  Tensor x = uniform({N, 1, 8, 8}, gen, -1, 1);
  std::vector<float> shift = {-0.5f, 0.5f, -0.3f, 0.3f, -0.2f, 0.4f, -0.4f, 0.2f};
  x = ops::add(x, from_vector<float>(shift, {N, 1, 1, 1}));
  const Tensor targets = ops::gt(ops::mean(x, {1, 2, 3}), 0.0).to(DType::Float32).reshape({N, 1});
  nn::SGD opt(net->parameters(), 0.1, 0.9);
  std::vector<double> losses;
  for (int step = 0; step < 20; ++step) {
    opt.zero_grad();
    const Tensor loss = nn::binary_cross_entropy_with_logits(net->forward(x), targets);
    losses.push_back(loss.item());
    ag::backward(loss);
    opt.step();
  }
  EXPECT_LT(losses.back(), 0.5 * losses.front()) << "first " << losses.front() << ", last " << losses.back();
  for (double l : losses) EXPECT_TRUE(std::isfinite(l));
}

}  // namespace
}  // namespace medtl
