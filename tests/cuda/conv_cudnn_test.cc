// cuDNN convolutions against the CPU backend (ops::conv2d_*): forward, backward-data,
// backward-filter and bias within 1e-5 (normwise) in deterministic mode, bit-identical run to run,
// and the per-shape algorithm cache. Skips, saying why, without --config=cuda or without a GPU.
#include <gtest/gtest.h>

#include <string>

#include "tensor/cuda/conv_cudnn.h"
#include "tensor/cuda/device_info.h"
#include "tensor/cuda/tensor_cuda.h"
#include "tensor/determinism.h"
#include "tensor/ops/conv2d.h"
#include "tests/cuda/cuda_test_util.h"

namespace medtl {
namespace {

using cuda_test::bit_identical;
using cuda_test::close_to;

#ifndef MEDTL_WITH_CUDA

TEST(ConvCudnn, SkippedWithoutCudaBuild) { GTEST_SKIP() << MEDTL_NO_CUDA_BUILD_MESSAGE; }

#else

Tensor gpu(const Tensor& t) { return cuda::copy_to_device(t); }
Tensor cpu(const Tensor& t) { return cuda::copy_to_host(t); }

struct ConvCase {
  Shape x, w;
  ops::Conv2dParams p;
};

// ResNet-50's kinds of convolution (7x7 stride 2 stem, 1x1, 3x3, 1x1 stride 2 downsample) at small
// sizes, plus dilation, asymmetric padding and odd shapes.
std::vector<ConvCase> cases() {
  return {
      {{2, 3, 32, 32}, {8, 3, 7, 7}, {2, 2, 3, 3, 1, 1}},
      {{2, 16, 14, 14}, {32, 16, 1, 1}, {}},
      {{2, 16, 14, 14}, {16, 16, 3, 3}, {1, 1, 1, 1, 1, 1}},
      {{2, 32, 14, 14}, {64, 32, 1, 1}, {2, 2, 0, 0, 1, 1}},
      {{1, 5, 11, 9}, {7, 5, 3, 2}, {1, 2, 2, 0, 2, 1}},
      {{3, 4, 8, 8}, {6, 4, 3, 3}, {3, 1, 0, 1, 1, 1}},
  };
}

// Argument checks come before any CUDA call: they hold with or without a GPU.
TEST(ConvCudnn, RejectsBadArgumentsBeforeTouchingTheGpu) {
  const Tensor x = ones({1, 3, 8, 8}), w = ones({4, 3, 3, 3});
  EXPECT_ERROR_CONTAINS(cuda::conv2d_forward(x, w, Tensor(), {}), "cuda::conv2d_forward: x must be on a GPU");
  EXPECT_ERROR_CONTAINS(cuda::conv2d_backward_bias(ones({1, 4, 6, 6})), "must be on a GPU");
  EXPECT_ERROR_CONTAINS(cuda::conv2d_algorithm("sideways", x.shape(), w.shape(), {}), "kind must be forward");
  if (cuda::device_count() == 0)
    EXPECT_ERROR_CONTAINS(cuda::conv2d_algorithm("forward", x.shape(), w.shape(), {}), "cannot use cuda:0");
}

TEST(ConvCudnn, ForwardAndBackwardMatchCpu) {
  SKIP_WITHOUT_GPU();
  DeterministicScope det(true);
  Generator gen(8);
  for (const ConvCase& c : cases()) {
    const std::string what = "x " + shape_str(c.x) + ", w " + shape_str(c.w);
    const Tensor x = normal(c.x, gen), w = normal(c.w, gen), bias = normal({c.w[0]}, gen);
    const Tensor y = ops::conv2d_forward(x, w, bias, c.p);
    const Tensor gy = normal(y.shape(), gen);
    const Tensor dx = gpu(x), dw = gpu(w), dgy = gpu(gy);

    EXPECT_TRUE(close_to(cpu(cuda::conv2d_forward(dx, dw, gpu(bias), c.p)), y, 1e-5)) << "forward, " << what;
    EXPECT_TRUE(close_to(cpu(cuda::conv2d_forward(dx, dw, Tensor(), c.p)), ops::conv2d_forward(x, w, Tensor(), c.p),
                         1e-5))
        << "forward without bias, " << what;
    EXPECT_TRUE(close_to(cpu(cuda::conv2d_backward_input(dgy, dw, c.x, c.p)),
                         ops::conv2d_backward_input(gy, w, c.x, c.p), 1e-5))
        << "backward_input, " << what;
    EXPECT_TRUE(close_to(cpu(cuda::conv2d_backward_weight(dgy, dx, c.w, c.p)),
                         ops::conv2d_backward_weight(gy, x, c.w, c.p), 1e-5))
        << "backward_weight, " << what;
    EXPECT_TRUE(close_to(cpu(cuda::conv2d_backward_bias(dgy)), ops::conv2d_backward_bias(gy), 1e-5))
        << "backward_bias, " << what;
    for (const char* kind : {"forward", "backward_input", "backward_weight"}) {
      const std::string algo = cuda::conv2d_algorithm(kind, c.x, c.w, c.p);
      EXPECT_NE(algo.find("FMA math, deterministic"), std::string::npos) << kind << ": " << algo << ", " << what;
      std::printf("[ info ] %s %s: %s\n", kind, what.c_str(), algo.c_str());
    }
  }
}

TEST(ConvCudnn, DeterministicModeIsBitReproducible) {
  SKIP_WITHOUT_GPU();
  DeterministicScope det(true);
  Generator gen(9);
  // Large enough that cuDNN would split the filter-gradient reduction across blocks.
  const Shape xs{16, 64, 28, 28}, ws{64, 64, 3, 3};
  const ops::Conv2dParams p{1, 1, 1, 1, 1, 1};
  const Tensor x = gpu(normal(xs, gen)), w = gpu(normal(ws, gen)), gy = gpu(normal(xs, gen));
  const Tensor y0 = cpu(cuda::conv2d_forward(x, w, Tensor(), p));
  const Tensor gx0 = cpu(cuda::conv2d_backward_input(gy, w, xs, p));
  const Tensor gw0 = cpu(cuda::conv2d_backward_weight(gy, x, ws, p));
  for (int run = 0; run < 3; ++run) {
    EXPECT_TRUE(bit_identical(cpu(cuda::conv2d_forward(x, w, Tensor(), p)), y0)) << "run " << run;
    EXPECT_TRUE(bit_identical(cpu(cuda::conv2d_backward_input(gy, w, xs, p)), gx0)) << "run " << run;
    EXPECT_TRUE(bit_identical(cpu(cuda::conv2d_backward_weight(gy, x, ws, p)), gw0)) << "run " << run;
  }
}

TEST(ConvCudnn, AlgorithmIsChosenOncePerShape) {
  SKIP_WITHOUT_GPU();
  DeterministicScope det(true);
  Generator gen(10);
  const Shape xs{2, 8, 10, 10}, ws{4, 8, 3, 3};
  const ops::Conv2dParams p{1, 1, 1, 1, 1, 1};
  const Tensor x = gpu(normal(xs, gen)), w = gpu(normal(ws, gen));
  (void)cuda::conv2d_forward(x, w, Tensor(), p);
  const int64_t cached = cuda::conv2d_algorithm_cache_size();
  for (int i = 0; i < 3; ++i) (void)cuda::conv2d_forward(x, w, Tensor(), p);
  EXPECT_EQ(cuda::conv2d_algorithm_cache_size(), cached) << "the same shape must not be searched again";
  (void)cuda::conv2d_forward(gpu(normal({3, 8, 10, 10}, gen)), w, Tensor(), p);
  EXPECT_EQ(cuda::conv2d_algorithm_cache_size(), cached + 1) << "a new batch size is a new shape";
  {
    DeterministicScope fast(false);
    (void)cuda::conv2d_forward(x, w, Tensor(), p);
    EXPECT_EQ(cuda::conv2d_algorithm_cache_size(), cached + 2) << "fast mode has choices of its own";
  }
  cuda::synchronize();
}

TEST(ConvCudnn, FastModeStaysWithinTf32Bounds) {
  SKIP_WITHOUT_GPU();
  DeterministicScope fast(false);
  Generator gen(12);
  const Tensor x = normal({4, 32, 16, 16}, gen), w = normal({32, 32, 3, 3}, gen);
  const ops::Conv2dParams p{1, 1, 1, 1, 1, 1};
  EXPECT_TRUE(close_to(cpu(cuda::conv2d_forward(gpu(x), gpu(w), Tensor(), p)),
                       ops::conv2d_forward(x, w, Tensor(), p), 5e-3));
}

TEST(ConvCudnn, BadOperandsAreNamed) {
  SKIP_WITHOUT_GPU();
  const Tensor x = gpu(ones({1, 3, 8, 8})), w = gpu(ones({4, 2, 3, 3}));
  EXPECT_ERROR_CONTAINS(cuda::conv2d_forward(x, w, Tensor(), {}), "channel mismatch");
  EXPECT_ERROR_CONTAINS(cuda::conv2d_forward(x, ones({4, 3, 3, 3}), Tensor(), {}), "must be on a GPU");
  EXPECT_ERROR_CONTAINS(cuda::conv2d_forward(x, gpu(ones({4, 3, 3, 3})), gpu(ones({5})), {}), "bias must be (K,)");
  EXPECT_ERROR_CONTAINS(cuda::conv2d_backward_input(gpu(ones({1, 4, 5, 5})), gpu(ones({4, 3, 3, 3})), {1, 3, 8, 8}, {}),
                     "grad_y is (1, 4, 5, 5)");
}

#endif  // MEDTL_WITH_CUDA

}  // namespace
}  // namespace medtl
