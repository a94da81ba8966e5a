// Helpers shared by the tests: comparing tensors element by element with a useful message, and
// running a program of the project (a data dependency of the test) as a user would.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "tensor/tensor.h"

namespace medtl::testing {

// Checks same shape and |a - b| <= atol + rtol * |b| for every element; reports the first miss.
inline ::testing::AssertionResult tensors_close(const Tensor& a, const Tensor& b, double rtol = 1e-5,
                                               double atol = 1e-6) {
  if (a.shape() != b.shape())
    return ::testing::AssertionFailure() << "shapes differ: " << shape_str(a.shape()) << " vs " << shape_str(b.shape());
  const auto va = a.to_vector<double>(), vb = b.to_vector<double>();
  for (size_t i = 0; i < va.size(); ++i) {
    const bool both_nan = std::isnan(va[i]) && std::isnan(vb[i]);
    if (!both_nan && !(std::abs(va[i] - vb[i]) <= atol + rtol * std::abs(vb[i])))
      return ::testing::AssertionFailure() << "element " << i << " (row-major) differs: " << va[i] << " vs " << vb[i]
                                           << " (rtol " << rtol << ", atol " << atol << ")";
  }
  return ::testing::AssertionSuccess();
}

// Bit-for-bit equality of two tensors of the same dtype and shape.
inline ::testing::AssertionResult tensors_identical(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype())
    return ::testing::AssertionFailure() << a.str() << " vs " << b.str();
  const Tensor ca = a.contiguous(), cb = b.contiguous();
  const auto* pa = static_cast<const unsigned char*>(ca.raw_data());
  const auto* pb = static_cast<const unsigned char*>(cb.raw_data());
  const int64_t bytes = a.numel() * dtype_size(a.dtype());
  for (int64_t i = 0; i < bytes; ++i)
    if (pa[i] != pb[i])
      return ::testing::AssertionFailure() << "byte " << i << " differs (element " << i / dtype_size(a.dtype()) << ")";
  return ::testing::AssertionSuccess();
}

// Asserts that `statement` throws medtl::Error whose message contains `fragment`.
#define EXPECT_ERROR_CONTAINS(statement, fragment)                                          \
  do {                                                                                      \
    try {                                                                                   \
      statement;                                                                            \
      ADD_FAILURE() << "expected medtl::Error containing \"" << (fragment) << "\"";         \
    } catch (const ::medtl::Error& e) {                                                     \
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();       \
    }                                                                                       \
  } while (0)

struct CommandResult {
  int status = -1;  // exit status, or -1 if it did not exit normally (a crash)
  std::string output;  // stdout and stderr together
};

// Runs `command` through the shell (from the test's runfiles folder, so "experiments/speed" names a
// binary the test lists in `data`), with stderr joined to stdout.
inline CommandResult run_command(const std::string& command) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  CommandResult r;
  if (pipe == nullptr) return r;
  char buffer[4096];
  while (fgets(buffer, sizeof(buffer), pipe) != nullptr) r.output += buffer;
  const int raw = pclose(pipe);
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return r;
}

}  // namespace medtl::testing
