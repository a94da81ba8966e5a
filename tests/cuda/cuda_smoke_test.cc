// Proves the CUDA path end to end: cudart (allocator, copies, a kernel), cuBLAS (one sgemm against
// a CPU loop) and cuDNN (a handle and its version). Skips, saying why, without --config=cuda or
// without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "tensor/cuda/device_info.h"
#include "tensor/cuda/elementwise_cuda.h"
#include "tensor/cuda/tensor_cuda.h"
#include "tensor/tensor.h"
#include "tests/test_util.h"

#ifdef MEDTL_WITH_CUDA
#include "tensor/cuda/cuda_check.h"
#endif

namespace medtl {
namespace {

// A tolerance check of its own: the 1 + |want| scale suits these small hand-made values.
[[maybe_unused]] ::testing::AssertionResult same_values(const Tensor& got, const Tensor& want, double tol = 0.0) {
  if (got.shape() != want.shape() || got.dtype() != want.dtype())
    return ::testing::AssertionFailure() << got.str() << " vs " << want.str();
  const std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i)
    if (!(std::abs(g[i] - w[i]) <= tol * (1.0 + std::abs(w[i]))))
      return ::testing::AssertionFailure() << "element " << i << " (row-major): " << g[i] << " vs " << w[i];
  return ::testing::AssertionSuccess();
}

#ifndef MEDTL_WITH_CUDA

TEST(CudaSmoke, SkippedWithoutCudaBuild) {
  GTEST_SKIP() << "built without --config=cuda; rebuild with "
                  "`bazel test --config=cuda //tests/cuda:cuda_smoke_test` on a GPU machine "
                  "(or tools/gpu/pack.sh here, tools/gpu/run.sh there)";
}

#else

// Skips the calling test when no GPU is usable, with the runtime's reason.
#define SKIP_WITHOUT_GPU()                                                                            \
  do {                                                                                                \
    if (cuda::device_count() == 0)                                                                    \
      GTEST_SKIP() << "built with CUDA but no usable GPU: " << cuda::no_device_reason();              \
  } while (0)

TEST(CudaSmoke, VersionsAreReportedWithoutGpu) {
  // These need no GPU: they prove the libraries are linked and loadable.
  EXPECT_GE(cuda::runtime_version(), 13000);
  EXPECT_GE(cuda::cublas_version(), 130000);
  EXPECT_GE(cuda::cudnn_version(), 90000);
  EXPECT_GE(cuda::device_count(), 0);
  std::printf("[ info ] %s\n", cuda::version_summary().c_str());
}

TEST(CudaSmoke, ChecksThrowMedtlErrorNamingTheCall) {
  cuda::init();
  // An absurd allocation runs the GPU out of memory (the caching allocator's message), or fails in
  // the device check without a GPU (the CUDA runtime's reason).
  try {
    (void)empty({int64_t{1} << 50}, DType::Float32, Device::cuda(0));
    ADD_FAILURE() << "expected medtl::Error";
  } catch (const Error& e) {
    const std::string what = e.what();
    if (cuda::device_count() > 0)
      EXPECT_NE(what.find("CUDA out of memory on cuda:0"), std::string::npos) << what;
    else
      EXPECT_NE(what.find("cannot use cuda:0"), std::string::npos) << what;
  }
  EXPECT_ERROR_CONTAINS(MEDTL_CUDA_CHECK(cudaErrorInvalidValue), "cudaErrorInvalidValue");
  EXPECT_ERROR_CONTAINS(MEDTL_CUBLAS_CHECK(CUBLAS_STATUS_INVALID_VALUE), "CUBLAS_STATUS_INVALID_VALUE");
  EXPECT_ERROR_CONTAINS(MEDTL_CUDNN_CHECK(CUDNN_STATUS_BAD_PARAM), "CUDNN_STATUS_BAD_PARAM");
  EXPECT_ERROR_CONTAINS(MEDTL_CUDA_CHECK(cudaErrorInsufficientDriver), "nvidia-smi");
}

TEST(CudaSmoke, DeviceName) {
  SKIP_WITHOUT_GPU();
  const std::string name = cuda::device_name(0);
  EXPECT_FALSE(name.empty());
  EXPECT_GE(cuda::compute_capability(0), 90) << name << ": the kernels are built for sm_90";
  EXPECT_ERROR_CONTAINS(cuda::device_name(cuda::device_count()), "out of range");
}

TEST(CudaSmoke, CopyRoundTripAndAdd) {
  SKIP_WITHOUT_GPU();
  Generator gen(1234);
  for (const Shape& shape : {Shape{}, Shape{0}, Shape{7}, Shape{3, 5, 129}, Shape{1 << 20}}) {
    const Tensor a = normal(shape, gen), b = normal(shape, gen);
    const Tensor da = cuda::copy_to_device(a), db = cuda::copy_to_device(b);
    EXPECT_TRUE(da.device().is_cuda()) << da.str();
    EXPECT_TRUE(same_values(cuda::copy_to_host(da), a)) << shape_str(shape);

    const Tensor sum = cuda::copy_to_host(cuda::add(da, db));
    std::vector<float> expected = a.to_vector<float>();
    const std::vector<float> vb = b.to_vector<float>();
    for (size_t i = 0; i < expected.size(); ++i) expected[i] += vb[i];
    // Each element is one float32 addition on both sides: bit-identical.
    EXPECT_TRUE(same_values(sum, from_vector<float>(expected, shape))) << shape_str(shape);
  }
  // Non-contiguous input is made contiguous on the way in; int64 round-trips bytes unchanged.
  const Tensor t = arange(12).view({3, 4}).transpose(0, 1);
  EXPECT_TRUE(same_values(cuda::copy_to_host(cuda::copy_to_device(t)), t.contiguous()));
  const Tensor x = cuda::copy_to_device(ones({4}));
  EXPECT_ERROR_CONTAINS(cuda::add(x, cuda::copy_to_device(ones({5}))), "shapes differ");
  EXPECT_ERROR_CONTAINS(cuda::add(x, cuda::copy_to_device(ones({4}, DType::Float64))), "must be float32");
  cuda::synchronize();
}

TEST(CudaSmoke, CublasSgemmMatchesCpuLoop) {
  SKIP_WITHOUT_GPU();
  // C (m x n) = A (m x k) * B (k x n), row-major. cuBLAS is column-major, so compute
  // C^T = B^T * A^T: pass B as the first operand with the dimensions swapped.
  const int m = 67, k = 45, n = 33;
  Generator gen(7);
  const Tensor a = normal({m, k}, gen), b = normal({k, n}, gen);
  const Tensor da = cuda::copy_to_device(a), db = cuda::copy_to_device(b);
  Tensor dc = cuda::copy_to_device(zeros({m, n}));

  cublasHandle_t handle = nullptr;
  MEDTL_CUBLAS_CHECK(cublasCreate(&handle));
  // Plain float32 arithmetic (no TF32), so the CPU loop is a tight reference.
  MEDTL_CUBLAS_CHECK(cublasSetMathMode(handle, CUBLAS_PEDANTIC_MATH));
  const float alpha = 1.0f, beta = 0.0f;
  MEDTL_CUBLAS_CHECK(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, &alpha, db.device_data<float>(), n,
                                 da.device_data<float>(), k, &beta, dc.device_data<float>(), n));
  cuda::synchronize();
  MEDTL_CUBLAS_CHECK(cublasDestroy(handle));

  const std::vector<float> va = a.to_vector<float>(), vb = b.to_vector<float>();
  std::vector<double> expected(static_cast<size_t>(m) * n, 0.0);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double acc = 0.0;
      for (int p = 0; p < k; ++p) acc += static_cast<double>(va[i * k + p]) * vb[p * n + j];
      expected[static_cast<size_t>(i) * n + j] = acc;
    }
  EXPECT_TRUE(same_values(cuda::copy_to_host(dc).to(DType::Float64), from_vector<double>(expected, {m, n}), 1e-4));
}

TEST(CudaSmoke, CudnnHandleAndVersion) {
  SKIP_WITHOUT_GPU();
  cudnnHandle_t handle = nullptr;
  MEDTL_CUDNN_CHECK(cudnnCreate(&handle));
  const size_t version = cudnnGetVersion();
  EXPECT_GE(version, 90000u) << "expected cuDNN 9";
  EXPECT_EQ(version / 10000, static_cast<size_t>(CUDNN_MAJOR)) << "runtime cuDNN differs in major from the headers";
  // cuDNN's own view of the CUDA runtime it runs on must be CUDA 13.
  EXPECT_GE(cudnnGetCudartVersion(), 13000u);
  MEDTL_CUDNN_CHECK(cudnnDestroy(handle));
}

#endif  // MEDTL_WITH_CUDA

}  // namespace
}  // namespace medtl
