// Helpers of strided_cuda_test: test values of every dtype with the awkward ones mixed in, and
// comparisons (bit for bit with any NaN equal, per-element ulp-sized, normwise). CPU-only code.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "tensor/tensor.h"
#include "tests/test_util.h"

namespace medtl::strided_test {

// Test values of any dtype. Floats: normal * 3 with the awkward ones mixed in (signed zeros, NaN,
// infinities, subnormals, halves) when `specials`; with `convertible`, only values in [0, 250]
// (every integer dtype holds their truncations: float -> int outside that is undefined in C++).
// Integers: small ones mixed with ones spanning the type, so that arithmetic wraps.
inline Tensor values(const Shape& shape, DType dtype, uint64_t seed, bool specials = true, bool convertible = false) {
  std::mt19937_64 rng(seed);
  const int64_t n = shape_numel(shape);
  if (is_floating(dtype)) {
    std::normal_distribution<double> normal(0.0, 3.0);
    std::uniform_real_distribution<double> range(0.0, 250.0);
    const double awkward[] = {0.0, -0.0, NAN, INFINITY, -INFINITY, 1e-40, -1e-310, 2.5, -0.5};
    std::vector<double> v(n);
    for (int64_t i = 0; i < n; ++i) {
      v[i] = convertible ? range(rng) : normal(rng);
      if (specials && !convertible && i % 11 == 5) v[i] = awkward[(i / 11) % 9];
    }
    return from_vector<double>(v, shape).to(dtype);
  }
  std::vector<int64_t> v(n);
  for (int64_t i = 0; i < n; ++i) {
    v[i] = static_cast<int64_t>(rng() % 101) - 50;
    if (i % 3 == 1 && !convertible) v[i] = static_cast<int64_t>(rng());
    if (dtype == DType::Bool && i % 4 == 0) v[i] = 0;
  }
  if (convertible)
    for (auto& x : v) x = (x + 50) % 101;
  return from_vector<int64_t>(v, shape).to(dtype);
}

// Same shape, dtype and values bit for bit; any NaN matches any NaN (payloads are not promised).
// Floats compare as float64 (exact for every float format); others compare their bytes.
inline ::testing::AssertionResult same(const Tensor& got, const Tensor& want) {
  if (got.shape() != want.shape() || got.dtype() != want.dtype())
    return ::testing::AssertionFailure() << got.str() << " vs " << want.str();
  if (is_floating(got.dtype())) {
    const auto g = got.to(DType::Float64).to_vector<double>(), w = want.to(DType::Float64).to_vector<double>();
    for (size_t i = 0; i < g.size(); ++i) {
      if (std::isnan(g[i]) && std::isnan(w[i])) continue;
      if (std::memcmp(&g[i], &w[i], sizeof(double)) != 0)
        return ::testing::AssertionFailure() << "element " << i << ": " << g[i] << " vs " << w[i];
    }
    return ::testing::AssertionSuccess();
  }
  return ::medtl::testing::tensors_identical(got, want);
}

// Within rtol per element (a few ulp), plus the smallest normal number of the dtype (subnormal
// results carry large relative errors in any libm); equal values (infinities) and NaN pairs pass.
inline ::testing::AssertionResult near(const Tensor& got, const Tensor& want, double rtol) {
  if (got.shape() != want.shape() || got.dtype() != want.dtype())
    return ::testing::AssertionFailure() << got.str() << " vs " << want.str();
  const double atol = got.dtype() == DType::Float32 ? std::numeric_limits<float>::min()
                                                    : std::numeric_limits<double>::min();
  const auto g = got.to(DType::Float64).to_vector<double>(), w = want.to(DType::Float64).to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i) {
    if (g[i] == w[i] || (std::isnan(g[i]) && std::isnan(w[i]))) continue;
    if (!(std::abs(g[i] - w[i]) <= rtol * std::abs(w[i]) + atol))
      return ::testing::AssertionFailure() << "element " << i << ": " << g[i] << " vs " << w[i];
  }
  return ::testing::AssertionSuccess();
}

// Normwise, as cuda_test::close_to (max |got - want| / max |want|), for sums whose outputs may
// cancel to near zero; but NaN and infinite outputs must sit at the same places with the same value.
inline ::testing::AssertionResult normwise_close(const Tensor& got, const Tensor& want, double rel_tol) {
  if (got.shape() != want.shape() || got.dtype() != want.dtype())
    return ::testing::AssertionFailure() << got.str() << " vs " << want.str();
  const auto g = got.to(DType::Float64).to_vector<double>(), w = want.to(DType::Float64).to_vector<double>();
  double max_diff = 0.0, max_want = 0.0;
  for (size_t i = 0; i < g.size(); ++i) {
    if (g[i] == w[i] || (std::isnan(g[i]) && std::isnan(w[i]))) continue;
    if (!std::isfinite(g[i]) || !std::isfinite(w[i]))
      return ::testing::AssertionFailure() << "element " << i << ": " << g[i] << " vs " << w[i];
    max_diff = std::max(max_diff, std::abs(g[i] - w[i]));
  }
  for (double v : w)
    if (std::isfinite(v)) max_want = std::max(max_want, std::abs(v));
  const double err = max_want == 0.0 ? max_diff : max_diff / max_want;
  if (err <= rel_tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "normwise relative error " << err << " > " << rel_tol;
}

}  // namespace medtl::strided_test
