// GPU batch norm, max pooling and upsampling against the CPU backend (ops::batch_norm_*,
// ops::max_pool2d_*, ops::upsample_nearest2x*): batch-norm training within 1e-5 (normwise) with
// running-stat updates, eval bit-identical, run to run bit-identical; max pooling (values, indices,
// gradients) and upsampling (forward, backward) bit-identical. Skips, saying why, without
// --config=cuda or without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "tensor/cuda/batch_norm_cuda.h"
#include "tensor/cuda/device_info.h"
#include "tensor/cuda/pooling_cuda.h"
#include "tensor/cuda/tensor_cuda.h"
#include "tensor/cuda/upsample_cuda.h"
#include "tensor/ops/batch_norm.h"
#include "tensor/ops/pooling.h"
#include "tensor/ops/upsample.h"
#include "tests/cuda/cuda_test_util.h"

namespace medtl {
namespace {

using cuda_test::bit_identical;
using cuda_test::close_to;

#ifndef MEDTL_WITH_CUDA

TEST(BatchNormCuda, SkippedWithoutCudaBuild) { GTEST_SKIP() << MEDTL_NO_CUDA_BUILD_MESSAGE; }

#else

Tensor gpu(const Tensor& t) { return t.defined() ? cuda::copy_to_device(t) : t; }
Tensor cpu(const Tensor& t) { return cuda::copy_to_host(t); }

// Argument checks come before any CUDA call: they hold with or without a GPU.
TEST(BatchNormCuda, RejectsBadArgumentsBeforeTouchingTheGpu) {
  EXPECT_ERROR_CONTAINS(cuda::batch_norm_forward(ones({2, 3, 4, 4}), Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1,
                                              1e-5),
                     "cuda::batch_norm_forward: x must be on a GPU");
  EXPECT_ERROR_CONTAINS(cuda::batch_norm_backward(ones({2, 3}), ones({2, 3}), Tensor(), Tensor(), Tensor(), true),
                     "must be on a GPU");
}

TEST(BatchNormCuda, TrainingMatchesCpu) {
  SKIP_WITHOUT_GPU();
  Generator gen(41);
  // A stem-like shape, a deep one, 2-D (N, C), a large mean (cancellation in the variance), no affine.
  struct Case { Shape x; double offset; bool affine; };
  for (const Case& c : {Case{{4, 8, 56, 56}, 0.0, true}, Case{{8, 64, 7, 7}, 0.0, true}, Case{{32, 10}, 0.0, true},
                        Case{{2, 3, 17, 9}, 100.0, true}, Case{{3, 5, 4, 4}, 0.5, false}}) {
    const std::string what = shape_str(c.x) + (c.affine ? "" : ", no affine");
    const int64_t C = c.x[1];
    const Tensor x = normal(c.x, gen, c.offset, 2.0);
    const Tensor w = c.affine ? normal({C}, gen) : Tensor(), b = c.affine ? normal({C}, gen) : Tensor();
    const Tensor rm = normal({C}, gen), rv = uniform({C}, gen, 0.5, 2.0);
    const Tensor rm_cpu = rm.clone(), rv_cpu = rv.clone(), rm_gpu = gpu(rm), rv_gpu = gpu(rv);

    const ops::BatchNormForward want = ops::batch_norm_forward(x, w, b, rm_cpu, rv_cpu, true, 0.1, 1e-5);
    const ops::BatchNormForward got = cuda::batch_norm_forward(gpu(x), gpu(w), gpu(b), rm_gpu, rv_gpu, true, 0.1, 1e-5);
    EXPECT_TRUE(close_to(cpu(got.y), want.y, 1e-5)) << "y, " << what;
    EXPECT_TRUE(close_to(cpu(got.save_mean), want.save_mean, 1e-5)) << "save_mean, " << what;
    EXPECT_TRUE(close_to(cpu(got.save_invstd), want.save_invstd, 1e-5)) << "save_invstd, " << what;
    EXPECT_TRUE(close_to(cpu(rm_gpu), rm_cpu, 1e-5)) << "running_mean, " << what;
    EXPECT_TRUE(close_to(cpu(rv_gpu), rv_cpu, 1e-5)) << "running_var, " << what;

    const Tensor gy = normal(c.x, gen);
    const ops::BatchNormBackward gwant = ops::batch_norm_backward(gy, x, w, want.save_mean, want.save_invstd, true);
    // The GPU's own saved statistics, as training uses them.
    const ops::BatchNormBackward ggot =
        cuda::batch_norm_backward(gpu(gy), gpu(x), gpu(w), got.save_mean, got.save_invstd, true);
    EXPECT_TRUE(close_to(cpu(ggot.grad_x), gwant.grad_x, 1e-5)) << "grad_x, " << what;
    EXPECT_TRUE(close_to(cpu(ggot.grad_weight), gwant.grad_weight, 1e-5)) << "grad_weight, " << what;
    EXPECT_TRUE(close_to(cpu(ggot.grad_bias), gwant.grad_bias, 1e-5)) << "grad_bias, " << what;

    // Fixed trees: the same bits on a second run.
    const Tensor rm2 = gpu(rm), rv2 = gpu(rv);
    const ops::BatchNormForward again = cuda::batch_norm_forward(gpu(x), gpu(w), gpu(b), rm2, rv2, true, 0.1, 1e-5);
    EXPECT_TRUE(bit_identical(cpu(again.y), cpu(got.y))) << "run to run, " << what;
  }
  EXPECT_ERROR_CONTAINS(cuda::batch_norm_forward(gpu(ones({1, 3, 1, 1})), Tensor(), Tensor(), Tensor(), Tensor(), true,
                                              0.1, 1e-5),
                     "more than 1 value per channel");
}

TEST(BatchNormCuda, EvalIsBitIdenticalToCpu) {
  SKIP_WITHOUT_GPU();
  Generator gen(42);
  const Tensor x = normal({4, 16, 9, 9}, gen), w = normal({16}, gen), b = normal({16}, gen);
  const Tensor rm = normal({16}, gen), rv = uniform({16}, gen, 0.5, 2.0);
  // Eval uses the given statistics: every step is the same IEEE operation on both sides.
  const ops::BatchNormForward want = ops::batch_norm_forward(x, w, b, rm, rv, false, 0.1, 1e-5);
  const ops::BatchNormForward got = cuda::batch_norm_forward(gpu(x), gpu(w), gpu(b), gpu(rm), gpu(rv), false, 0.1, 1e-5);
  EXPECT_TRUE(bit_identical(cpu(got.y), want.y));
  EXPECT_TRUE(bit_identical(cpu(got.save_invstd), want.save_invstd));
  const Tensor gy = normal(x.shape(), gen);
  const ops::BatchNormBackward gwant = ops::batch_norm_backward(gy, x, w, want.save_mean, want.save_invstd, false);
  const ops::BatchNormBackward ggot =
      cuda::batch_norm_backward(gpu(gy), gpu(x), gpu(w), gpu(want.save_mean), gpu(want.save_invstd), false);
  EXPECT_TRUE(bit_identical(cpu(ggot.grad_x), gwant.grad_x));
  EXPECT_TRUE(close_to(cpu(ggot.grad_weight), gwant.grad_weight, 1e-5));
  EXPECT_ERROR_CONTAINS(cuda::batch_norm_forward(gpu(x), Tensor(), Tensor(), Tensor(), Tensor(), false, 0.1, 1e-5),
                     "eval mode needs the running statistics");
}

TEST(BatchNormCuda, EmptyBatch) {
  SKIP_WITHOUT_GPU();
  const Tensor rm = gpu(full({3}, 2.0)), rv = gpu(full({3}, 3.0));
  const ops::BatchNormForward r = cuda::batch_norm_forward(gpu(zeros({0, 3, 4, 4})), Tensor(), Tensor(), rm, rv, true,
                                                           0.1, 1e-5);
  EXPECT_EQ(r.y.shape(), Shape({0, 3, 4, 4}));
  EXPECT_TRUE(bit_identical(cpu(r.save_mean), zeros({3})));
  EXPECT_TRUE(bit_identical(cpu(rm), full({3}, 2.0))) << "running stats are left alone";
}

TEST(MaxPoolCuda, RejectsBadArgumentsBeforeTouchingTheGpu) {
  EXPECT_ERROR_CONTAINS(cuda::max_pool2d_forward(ones({1, 1, 4, 4}), {}), "cuda::max_pool2d_forward: x must be on a GPU");
  EXPECT_ERROR_CONTAINS(cuda::max_pool2d_backward(ones({1, 1, 2, 2}), Tensor(), {1, 1, 4, 4}, {}), "must be on a GPU");
}

TEST(MaxPoolCuda, ForwardAndBackwardBitIdenticalToCpu) {
  SKIP_WITHOUT_GPU();
  Generator gen(43);
  struct Case { Shape x; ops::MaxPool2dParams p; };
  // ResNet-50's stem pool (3x3, stride 2, pad 1), the U-Net's 2x2, overlapping stride 1, odd sizes.
  for (const Case& c : {Case{{2, 8, 112, 112}, {3, 3, 2, 2, 1, 1}}, Case{{2, 4, 16, 16}, {2, 2, 2, 2, 0, 0}},
                        Case{{1, 3, 9, 7}, {3, 3, 1, 1, 1, 1}}, Case{{3, 2, 11, 13}, {3, 2, 2, 3, 1, 0}}}) {
    const std::string what = shape_str(c.x);
    // Few distinct values: many ties, so the first-maximum rule is exercised; some NaN and -inf.
    std::vector<float> v = uniform(c.x, gen, 0.0, 4.0).to_vector<float>();
    for (size_t i = 0; i < v.size(); ++i) {
      v[i] = static_cast<float>(static_cast<int>(v[i]));
      if (i % 97 == 5) v[i] = NAN;
      if (i % 89 == 7) v[i] = -INFINITY;
    }
    const Tensor x = from_vector<float>(v, c.x);
    const ops::MaxPool2dForward want = ops::max_pool2d_forward(x, c.p);
    const ops::MaxPool2dForward got = cuda::max_pool2d_forward(gpu(x), c.p);
    EXPECT_TRUE(bit_identical(cpu(got.y), want.y)) << "y, " << what;
    EXPECT_TRUE(bit_identical(cpu(got.indices), want.indices)) << "indices, " << what;
    const Tensor gy = normal(want.y.shape(), gen);
    EXPECT_TRUE(bit_identical(cpu(cuda::max_pool2d_backward(gpu(gy), got.indices, c.x, c.p)),
                              ops::max_pool2d_backward(gy, want.indices, c.x, c.p)))
        << "grad_x, " << what;
  }
  EXPECT_ERROR_CONTAINS(cuda::max_pool2d_forward(gpu(ones({1, 1, 4, 4})), {2, 2, 2, 2, 2, 2}), "at most half");
}

TEST(UpsampleCuda, BitIdenticalToCpu) {
  EXPECT_ERROR_CONTAINS(cuda::upsample_nearest2x(ones({1, 1, 2, 2})), "must be on a GPU");  // no GPU needed
  SKIP_WITHOUT_GPU();
  Generator gen(44);
  for (const Shape& shape : {Shape{2, 3, 7, 5}, Shape{1, 64, 28, 28}, Shape{0, 2, 3, 3}, Shape{1, 1, 1, 1}}) {
    const Tensor x = normal(shape, gen);
    EXPECT_TRUE(bit_identical(cpu(cuda::upsample_nearest2x(gpu(x))), ops::upsample_nearest2x(x))) << shape_str(shape);
    const Tensor gy = normal({shape[0], shape[1], 2 * shape[2], 2 * shape[3]}, gen);
    EXPECT_TRUE(bit_identical(cpu(cuda::upsample_nearest2x_backward(gpu(gy))), ops::upsample_nearest2x_backward(gy)))
        << shape_str(shape);
  }
  EXPECT_ERROR_CONTAINS(cuda::upsample_nearest2x_backward(gpu(ones({1, 1, 3, 4}))), "(N, C, 2H, 2W)");
}

#endif  // MEDTL_WITH_CUDA

}  // namespace
}  // namespace medtl
