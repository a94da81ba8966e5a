// The backend's own kernels against the CPU backend: elementwise ops (bit-identical), fixed-tree
// sums (1e-5 of the CPU, a few ulps of the exact sum, bit-identical run to run) and the fused Adam
// and SGD updates (bit-identical to nn::Adam, nn::AdamW and nn::SGD). Skips, saying why, without --config=cuda or without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "autograd/graph.h"
#include "autograd/ops.h"
#include "nn/optim.h"
#include "tensor/cuda/device_info.h"
#include "tensor/cuda/elementwise_cuda.h"
#include "tensor/cuda/optim_cuda.h"
#include "tensor/cuda/reduce_cuda.h"
#include "tensor/cuda/tensor_cuda.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/matmul.h"
#include "tensor/ops/reduce.h"
#include "tests/cuda/cuda_test_util.h"

namespace medtl {
namespace {

using cuda_test::bit_identical;
using cuda_test::close_to;

#ifndef MEDTL_WITH_CUDA

TEST(KernelsCuda, SkippedWithoutCudaBuild) { GTEST_SKIP() << MEDTL_NO_CUDA_BUILD_MESSAGE; }

#else

Tensor gpu(const Tensor& t) { return cuda::copy_to_device(t); }
Tensor cpu(const Tensor& t) { return cuda::copy_to_host(t); }

// Normal values with the awkward ones mixed in: signed zeros, NaN, infinities, subnormals.
Tensor awkward(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  std::vector<float> v = normal(shape, gen).to_vector<float>();
  const float specials[] = {0.0f, -0.0f, std::numeric_limits<float>::quiet_NaN(), INFINITY, -INFINITY, 1e-40f, -1e-40f};
  for (size_t i = 0; i < v.size(); i += 13) v[i] = specials[(i / 13) % 7];
  return from_vector<float>(v, shape);
}

// Argument checks come before any CUDA call: they hold with or without a GPU.
TEST(KernelsCuda, RejectsCpuAndNonFloatOperands) {
  const Tensor c = ones({4});
  EXPECT_ERROR_CONTAINS(cuda::relu(c), "cuda::relu: x must be on a GPU");
  EXPECT_ERROR_CONTAINS(cuda::add(c, c), "cuda::add: the first operand must be on a GPU");
  EXPECT_ERROR_CONTAINS(cuda::sum(c), "cuda::sum: x must be on a GPU");
  EXPECT_ERROR_CONTAINS(cuda::sum_channels(c), "must be on a GPU");
  EXPECT_ERROR_CONTAINS(cuda::adam_step_(c, c, c, c, Tensor(), cuda::AdamConfig{}, 1), "cuda::adam_step_: param must be on a GPU");
}

TEST(KernelsCuda, ElementwiseBitIdenticalToCpu) {
  SKIP_WITHOUT_GPU();
  for (const Shape& shape : {Shape{}, Shape{0}, Shape{1}, Shape{3, 5, 129}, Shape{1 << 20}, Shape{70001}}) {
    const Tensor a = awkward(shape, 1), b = awkward(shape, 2);
    const Tensor da = gpu(a), db = gpu(b);
    EXPECT_TRUE(bit_identical(cpu(cuda::add(da, db)), ops::add(a, b))) << shape_str(shape);
    EXPECT_TRUE(bit_identical(cpu(cuda::mul(da, db)), ops::mul(a, b))) << shape_str(shape);
    EXPECT_TRUE(bit_identical(cpu(cuda::relu(da)), ops::relu(a))) << shape_str(shape);
    EXPECT_TRUE(bit_identical(cpu(cuda::relu_backward(da, db)), ops::relu_backward(a, b))) << shape_str(shape);
  }
  const Tensor x = gpu(ones({4}));
  EXPECT_ERROR_CONTAINS(cuda::mul(x, gpu(ones({2, 2}))), "shapes differ");
  EXPECT_ERROR_CONTAINS(cuda::relu(gpu(ones({4}, DType::Float64))), "must be float32");
}

TEST(KernelsCuda, SumMatchesCpuAndExactSum) {
  SKIP_WITHOUT_GPU();
  Generator gen(11);
  // Sizes around the one-pass / two-pass boundary (2^16) and a large one.
  for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{255}, int64_t{65536}, int64_t{65537}, int64_t{3000001}}) {
    const Tensor x = uniform({n}, gen, 0.0, 1.0);
    const Tensor got = cpu(cuda::sum(gpu(x)));
    EXPECT_EQ(got.shape(), Shape{});
    EXPECT_TRUE(close_to(got, ops::sum(x), 1e-5)) << n;
    // Against the sum in double: double accumulation, one rounding, so within 2 float32 ulps.
    EXPECT_TRUE(close_to(got.to(DType::Float64), ops::sum(x.to(DType::Float64)), 2.5e-7)) << n;
  }
  // Fixed tree: the same bits on every run, cancellation included.
  const Tensor y = gpu(normal({1 << 22}, gen));
  const Tensor first = cpu(cuda::sum(y));
  for (int run = 0; run < 3; ++run) EXPECT_TRUE(bit_identical(cpu(cuda::sum(y)), first));
}

TEST(KernelsCuda, SumRowsAndChannelsMatchCpu) {
  SKIP_WITHOUT_GPU();
  Generator gen(12);
  for (const Shape& shape : {Shape{1, 1}, Shape{7, 1000}, Shape{300, 3}, Shape{2, 100000}, Shape{5, 0}}) {
    const Tensor x = normal(shape, gen);
    EXPECT_TRUE(close_to(cpu(cuda::sum_rows(gpu(x))), ops::sum(x, {1}), 1e-5)) << shape_str(shape);
  }
  for (const Shape& shape : {Shape{2, 3, 4, 5}, Shape{8, 64, 28, 28}, Shape{1, 1, 1, 1}, Shape{3, 2, 1, 1}}) {
    const Tensor x = normal(shape, gen);
    const Tensor want = ops::sum(x, {0, 2, 3});
    const Tensor got = cpu(cuda::sum_channels(gpu(x)));
    EXPECT_TRUE(close_to(got, want, 1e-5)) << shape_str(shape);
    EXPECT_TRUE(bit_identical(cpu(cuda::sum_channels(gpu(x))), got)) << "run to run, " << shape_str(shape);
  }
  EXPECT_ERROR_CONTAINS(cuda::sum_channels(gpu(ones({2, 3}))), "expected x: (N, C, H, W)");
}

// ops::matmul on GPU tensors (the backend's batched_matmul) with an empty inner or row dim: zeros
// or an empty result (a reshape to -1 there used to throw for these).
TEST(KernelsCuda, MatmulWithEmptyDimsThroughDispatch) {
  SKIP_WITHOUT_GPU();
  const Tensor a = ones({2, 3, 0}), b = ones({0, 4});
  EXPECT_TRUE(bit_identical(cpu(ops::matmul(gpu(a), gpu(b))), zeros({2, 3, 4})));
  const Tensor c = ones({2, 0, 3}), d = ones({2, 3, 4});
  EXPECT_EQ(cpu(ops::matmul(gpu(c), gpu(d))).shape(), (Shape{2, 0, 4}));
}

// Leaves exactly g in p's .grad: d/dp sum(p * g) = g.
void set_grad(Tensor& p, const Tensor& g) {
  ag::zero_grad(p);
  ag::backward(ag::sum(ag::mul(p, g)));
}

struct AdamCase {
  double lr, beta1, beta2, eps, wd;
  bool amsgrad, decoupled;
};

TEST(KernelsCuda, FusedAdamBitIdenticalToNnAdam) {
  SKIP_WITHOUT_GPU();
  const AdamCase cases[] = {{1e-3, 0.9, 0.999, 1e-8, 0.0, false, false},
                            {3e-2, 0.8, 0.99, 1e-6, 1e-2, false, false},
                            {1e-2, 0.9, 0.999, 1e-8, 0.0, true, false},
                            {1e-3, 0.9, 0.999, 1e-8, 5e-2, false, true},
                            {5e-3, 0.5, 0.9, 1e-3, 1e-1, true, true}};
  const Shape shape{33, 77};
  for (const AdamCase& c : cases) {
    Generator gen(21);
    Tensor p_cpu = ag::requires_grad_leaf(normal(shape, gen));
    std::unique_ptr<nn::Optimizer> opt;
    if (c.decoupled) opt = std::make_unique<nn::AdamW>(std::vector<Tensor>{p_cpu}, c.lr, c.beta1, c.beta2, c.eps, c.wd, c.amsgrad);
    else opt = std::make_unique<nn::Adam>(std::vector<Tensor>{p_cpu}, c.lr, c.beta1, c.beta2, c.eps, c.wd, c.amsgrad);

    const Tensor p = gpu(ag::detach(p_cpu));
    const Tensor m = gpu(zeros(shape)), v = gpu(zeros(shape)), vmax = gpu(zeros(shape));
    const cuda::AdamConfig config{c.lr, c.beta1, c.beta2, c.eps, c.wd, c.amsgrad, c.decoupled};
    for (int64_t step = 1; step <= 6; ++step) {
      // Gradients that change sign and scale across steps, so amsgrad's max matters.
      const Tensor g = ops::mul(normal(shape, gen), std::pow(-3.0, static_cast<double>(step % 3)));
      set_grad(p_cpu, g);
      opt->step();
      cuda::adam_step_(p, gpu(g), m, v, vmax, config, step);
      ASSERT_TRUE(bit_identical(cpu(p), ag::detach(p_cpu)))
          << "step " << step << ", lr " << c.lr << ", wd " << c.wd << (c.amsgrad ? ", amsgrad" : "")
          << (c.decoupled ? ", AdamW" : "");
    }
  }
  const Tensor x = gpu(zeros({3}));
  EXPECT_ERROR_CONTAINS(cuda::adam_step_(x, x, x, x, Tensor(), cuda::AdamConfig{}, 0), "step counts from 1");
  EXPECT_ERROR_CONTAINS(cuda::adam_step_(x, gpu(zeros({4})), x, x, Tensor(), cuda::AdamConfig{}, 1), "an operand is (4)");
}

struct SgdCase {
  double lr, momentum, dampening, wd;
  bool nesterov;
};

TEST(KernelsCuda, FusedSgdBitIdenticalToNnSgd) {
  SKIP_WITHOUT_GPU();
  const SgdCase cases[] = {{1e-1, 0.0, 0.0, 0.0, false},
                           {1e-2, 0.9, 0.0, 1e-4, false},
                           {5e-2, 0.9, 0.1, 0.0, false},
                           {1e-2, 0.8, 0.0, 5e-4, true}};
  const Shape shape{129, 5};
  for (const SgdCase& c : cases) {
    Generator gen(31);
    Tensor p_cpu = ag::requires_grad_leaf(normal(shape, gen));
    nn::SGD opt({p_cpu}, c.lr, c.momentum, c.dampening, c.wd, c.nesterov);
    const Tensor p = gpu(ag::detach(p_cpu)), buf = gpu(zeros(shape));
    const cuda::SgdConfig config{c.lr, c.momentum, c.dampening, c.wd, c.nesterov};
    for (int step = 1; step <= 5; ++step) {
      const Tensor g = ops::mul(normal(shape, gen), step % 2 ? 1.0 : -0.5);
      set_grad(p_cpu, g);
      opt.step();
      cuda::sgd_step_(p, gpu(g), buf, config, step == 1);
      ASSERT_TRUE(bit_identical(cpu(p), ag::detach(p_cpu)))
          << "step " << step << ", momentum " << c.momentum << ", dampening " << c.dampening << ", wd " << c.wd
          << (c.nesterov ? ", nesterov" : "");
    }
  }
  const Tensor x = gpu(zeros({3}));
  EXPECT_ERROR_CONTAINS(cuda::sgd_step_(x, x, x, cuda::SgdConfig{0.1, 0.9, 0.5, 0.0, true}, true), "Nesterov");
}

#endif  // MEDTL_WITH_CUDA

}  // namespace
}  // namespace medtl
