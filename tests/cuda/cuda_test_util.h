// Helpers shared by the CUDA tests: comparisons against the CPU backend, the skip-without-GPU
// macro and error-message checks. (//tests:test_util is private to //tests.)
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "tensor/error.h"
#include "tensor/tensor.h"
#include "tests/test_util.h"  // EXPECT_ERROR_CONTAINS

namespace medtl::cuda_test {

// max |got - want| / max |want| over all elements (0 when want is all zero and got equals it).
// Normwise, not per element: a GEMM or convolution output element that cancels to near zero has
// a large relative error in either backend, so per-element bounds would test luck, not the code.
inline double normwise_rel_error(const Tensor& got, const Tensor& want) {
  const std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  double max_diff = 0.0, max_want = 0.0;
  for (size_t i = 0; i < g.size(); ++i) {
    const double d = std::abs(g[i] - w[i]);
    max_diff = std::isnan(d) ? INFINITY : std::max(max_diff, d);
    max_want = std::max(max_want, std::abs(w[i]));
  }
  return max_want == 0.0 ? max_diff : max_diff / max_want;
}

inline ::testing::AssertionResult close_to(const Tensor& got, const Tensor& want, double rel_tol) {
  if (got.shape() != want.shape() || got.dtype() != want.dtype())
    return ::testing::AssertionFailure() << got.str() << " vs " << want.str();
  const double err = normwise_rel_error(got, want);
  if (err <= rel_tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "normwise relative error " << err << " > " << rel_tol;
}

// Same shape, dtype and bits in every element, signed zeros included. Any NaN matches any NaN:
// NVIDIA GPUs return one canonical NaN where x86 propagates an operand's payload, and no backend
// promises NaN payloads.
inline ::testing::AssertionResult bit_identical(const Tensor& got, const Tensor& want) {
  if (got.shape() != want.shape() || got.dtype() != want.dtype())
    return ::testing::AssertionFailure() << got.str() << " vs " << want.str();
  // float32 -> double is exact and one-to-one apart from NaN payloads, so comparing the doubles'
  // bits compares the floats' bits.
  const std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i) {
    if (std::isnan(g[i]) && std::isnan(w[i])) continue;
    if (std::memcmp(&g[i], &w[i], sizeof(double)) != 0)
      return ::testing::AssertionFailure() << "first difference at element " << i << " (row-major): " << g[i]
                                           << " vs " << w[i];
  }
  return ::testing::AssertionSuccess();
}

}  // namespace medtl::cuda_test

// Why a test binary built without --config=cuda has nothing to run.
#define MEDTL_NO_CUDA_BUILD_MESSAGE                                                           \
  "built without --config=cuda; rebuild with `bazel test --config=cuda //tests/cuda/...` on " \
  "a GPU machine, or tools/gpu/pack.sh here and tools/gpu/run.sh there"

// Skips the calling test when no GPU is usable, with the CUDA runtime's reason. Needs
// tensor/cuda/device_info.h.
#define SKIP_WITHOUT_GPU()                                                                    \
  do {                                                                                        \
    if (::medtl::cuda::device_count() == 0)                                                   \
      GTEST_SKIP() << "built with CUDA but no usable GPU: " << ::medtl::cuda::no_device_reason(); \
  } while (0)
