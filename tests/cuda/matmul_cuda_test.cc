// cuBLAS GEMM and matmul on GPU tensors against the CPU backend (ops::matmul, ops::gemm): within
// 1e-5 (normwise) in deterministic mode, bit-identical run to run. Skips, saying why, without
// --config=cuda or without a GPU.
#include <gtest/gtest.h>

#include "tensor/cuda/blas_cuda.h"
#include "tensor/cuda/device_info.h"
#include "tensor/cuda/memory.h"
#include "tensor/cuda/tensor_cuda.h"
#include "tensor/determinism.h"
#include "tensor/ops/matmul.h"
#include "tests/cuda/cuda_test_util.h"

namespace medtl {
namespace {

using cuda_test::bit_identical;
using cuda_test::close_to;

#ifndef MEDTL_WITH_CUDA

TEST(MatmulCuda, SkippedWithoutCudaBuild) { GTEST_SKIP() << MEDTL_NO_CUDA_BUILD_MESSAGE; }

#else

Tensor gpu(const Tensor& t) { return cuda::copy_to_device(t); }
Tensor cpu(const Tensor& t) { return cuda::copy_to_host(t); }

// Argument checks come before any CUDA call: they hold with or without a GPU.
TEST(MatmulCuda, RejectsBadArgumentsBeforeTouchingTheGpu) {
  EXPECT_ERROR_CONTAINS(cuda::matmul(ones({2, 3}), ones({3, 4})), "cuda::matmul: a must be on a GPU");
  EXPECT_ERROR_CONTAINS(cuda::gemm(false, false, 4, 4, 4, 1.0f, nullptr, 2, nullptr, 4, 0.0f, nullptr, 4),
                     "leading dimensions too small");
  EXPECT_ERROR_CONTAINS(cuda::gemm(false, false, -1, 4, 4, 1.0f, nullptr, 4, nullptr, 4, 0.0f, nullptr, 4),
                     "negative size");
}

TEST(MatmulCuda, MatchesCpuMatmul) {
  SKIP_WITHOUT_GPU();
  DeterministicScope det(true);
  Generator gen(3);
  struct Case { Shape a, b; };
  // Odd sizes, a ResNet-50 fc shape, a batch, a batch folded into one GEMM, K = 0 and M = 0.
  for (const Case& c : {Case{{67, 45}, {45, 33}}, Case{{1, 1}, {1, 1}}, Case{{128, 2048}, {2048, 1000}},
                        Case{{4, 37, 19}, {4, 19, 23}}, Case{{3, 50, 64}, {64, 10}}, Case{{5, 0}, {0, 7}},
                        Case{{0, 4}, {4, 3}}}) {
    const Tensor a = normal(c.a, gen), b = normal(c.b, gen);
    const Tensor got = cpu(cuda::matmul(gpu(a), gpu(b)));
    EXPECT_TRUE(close_to(got, ops::matmul(a, b), 1e-5)) << shape_str(c.a) << " @ " << shape_str(c.b);
    EXPECT_TRUE(close_to(got.to(DType::Float64), ops::matmul_reference(a.to(DType::Float64), b.to(DType::Float64)),
                         1e-5))
        << "against double: " << shape_str(c.a) << " @ " << shape_str(c.b);
  }
  EXPECT_ERROR_CONTAINS(cuda::matmul(gpu(ones({2, 3})), gpu(ones({4, 5}))), "inner dimensions differ");
  EXPECT_ERROR_CONTAINS(cuda::matmul(gpu(ones({2, 3, 4})), gpu(ones({3, 4, 5}))), "batch sizes differ");
}

TEST(MatmulCuda, GemmTransposesAndBeta) {
  SKIP_WITHOUT_GPU();
  DeterministicScope det(true);
  Generator gen(4);
  const int64_t m = 31, n = 17, k = 29;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      const Tensor a = normal(ta ? Shape{k, m} : Shape{m, k}, gen), b = normal(tb ? Shape{n, k} : Shape{k, n}, gen);
      const Tensor c0 = normal({m, n}, gen);
      Tensor want = c0.clone();
      ops::gemm(ta, tb, m, n, k, 0.5f, a.data<float>(), a.size(1), b.data<float>(), b.size(1), 2.0f,
                want.data<float>(), n);
      const Tensor da = gpu(a), db = gpu(b), dc = gpu(c0);
      cuda::gemm(ta, tb, m, n, k, 0.5f, da.device_data<float>(), a.size(1), db.device_data<float>(), b.size(1), 2.0f,
                 dc.device_data<float>(), n);
      EXPECT_TRUE(close_to(cpu(dc), want, 1e-5)) << "trans_a " << ta << ", trans_b " << tb;
    }
  }
}

TEST(MatmulCuda, DeterministicModeIsBitReproducible) {
  SKIP_WITHOUT_GPU();
  DeterministicScope det(true);
  Generator gen(5);
  const Tensor a = gpu(normal({512, 1024}, gen)), b = gpu(normal({1024, 384}, gen));
  const Tensor first = cpu(cuda::matmul(a, b));
  for (int run = 0; run < 3; ++run) EXPECT_TRUE(bit_identical(cpu(cuda::matmul(a, b)), first)) << "run " << run;
  // On a second stream the handle's workspace is set again after cublasSetStream: same bits.
  cuda::Stream side(0);
  cuda::StreamScope scope(side.handle());
  EXPECT_TRUE(bit_identical(cpu(cuda::matmul(a, b)), first)) << "on another stream";
}

TEST(MatmulCuda, FastModeStaysWithinTf32Bounds) {
  SKIP_WITHOUT_GPU();
  DeterministicScope fast(false);
  Generator gen(6);
  const Tensor a = normal({256, 512}, gen), b = normal({512, 128}, gen);
  // TF32 keeps 10 mantissa bits of each product's inputs: about 1e-3 relative, normwise.
  EXPECT_TRUE(close_to(cpu(cuda::matmul(gpu(a), gpu(b))), ops::matmul(a, b), 5e-3));
}

#endif  // MEDTL_WITH_CUDA

}  // namespace
}  // namespace medtl
