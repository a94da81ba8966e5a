// Deterministic mode (tensor/determinism.h) outside convolutions: float32 GEMM on the shapes
// ResNet-50's fc uses (forward and both backward products) and on large shapes is bit-identical
// with 1, 2 and 3 threads and still right; the settings and scopes behave. Fast mode's sgemm
// thread-count dependence is recorded (printed, and a skip when any shape differs).
// Convolutions: tests/conv2d_test.cc. Whole training runs: tests/reproducibility_test.cc.
#include <omp.h>

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "autograd/conv_ops.h"
#include "autograd/graph.h"
#include "tensor/determinism.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/matmul.h"
#include "tensor/parallel.h"
#include "tests/test_util.h"

namespace medtl {
namespace {

using testing::tensors_close;
using testing::tensors_identical;

Tensor rand(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  return uniform(shape, gen, -1.0, 1.0, DType::Float32);
}

class ThreadScope {
 public:
  explicit ThreadScope(int threads) : saved_(get_num_threads()) { set_num_threads(threads); }
  ~ThreadScope() { set_num_threads(saved_); }

 private:
  int saved_;
};

Tensor with_threads(int threads, const std::function<Tensor()>& f) {
  ThreadScope scope(threads);
  return f();
}

// One GEMM of the list below: a @ b, with b possibly a transposed view (as ag::linear passes w^T).
struct GemmCase {
  std::string name;
  Tensor a, b;
};

// ResNet-50's fc (2048 -> classes) at several batch sizes, forward and both backward products,
// plus large shapes where oneDNN threads one GEMM (and may split K), and ragged tiles.
std::vector<GemmCase> gemm_cases() {
  std::vector<GemmCase> out;
  uint64_t seed = 10;
  for (int64_t n : {2, 8, 32}) {
    for (int64_t classes : {14, 1000}) {
      const Tensor x = rand({n, 2048}, ++seed), w = rand({classes, 2048}, ++seed), g = rand({n, classes}, ++seed);
      const std::string tag = str_cat("fc N=", n, " classes=", classes);
      out.push_back({tag + " forward x @ w^T", x, w.transpose(0, 1)});
      out.push_back({tag + " grad_x g @ w", g, w});
      out.push_back({tag + " grad_w g^T @ x", g.transpose(0, 1), x});
    }
  }
  out.push_back({"512x512 @ 512x512", rand({512, 512}, 90), rand({512, 512}, 91)});
  out.push_back({"64x2048 @ 2048x64", rand({64, 2048}, 92), rand({2048, 64}, 93)});
  out.push_back({"8x4096 @ 4096x8 (long K)", rand({8, 4096}, 94), rand({4096, 8}, 95)});
  out.push_back({"300x700 @ 700x900 (ragged tiles)", rand({300, 700}, 96), rand({700, 900}, 97)});
  return out;
}

TEST(DeterministicSetting, DefaultsAndScopes) {
  EXPECT_TRUE(deterministic());
  EXPECT_EQ(deterministic_conv_chunk(), kDefaultConvChunk);
  {
    DeterministicScope fast(false);
    EXPECT_FALSE(deterministic());
    {
      DeterministicScope det(true);
      EXPECT_TRUE(deterministic());
    }
    EXPECT_FALSE(deterministic());
  }
  EXPECT_TRUE(deterministic());
}

TEST(DeterministicSetting, OmpThreadsScopeIsPerThreadAndRestores) {
  ThreadScope two(2);
  {
    OmpThreadsScope one(1);
    EXPECT_EQ(omp_get_max_threads(), 1);
  }
  EXPECT_EQ(omp_get_max_threads(), 2);
  // Inside a parallel region each thread changes only its own count.
  std::vector<int> inside(2, 0), after(2, 0);
#pragma omp parallel num_threads(2)
  {
    const int t = omp_get_thread_num();
    if (t == 0) {
      OmpThreadsScope one(1);
      inside[t] = omp_get_max_threads();
    } else {
      inside[t] = omp_get_max_threads();
    }
#pragma omp barrier
    after[t] = omp_get_max_threads();
  }
  EXPECT_EQ(inside[0], 1);
  EXPECT_EQ(after[0], 2);
  EXPECT_EQ(get_num_threads(), 2);
}

TEST(MatmulDeterminism, DeterministicModeIdenticalAcrossThreadCountsAndRight) {
  ASSERT_TRUE(deterministic());
  for (const GemmCase& c : gemm_cases()) {
    auto run = [&] { return ops::matmul(c.a, c.b); };
    const Tensor one = with_threads(1, run);
    EXPECT_TRUE(tensors_identical(one, with_threads(2, run))) << c.name << ": 1 vs 2 threads";
    EXPECT_TRUE(tensors_identical(one, with_threads(3, run))) << c.name << ": 1 vs 3 threads";
    const double k = static_cast<double>(c.a.size(1));
    EXPECT_TRUE(tensors_close(one, ops::matmul_reference(c.a.to(DType::Float64), c.b.to(DType::Float64)), 1e-4,
                              1e-6 * k))
        << c.name;
  }
}

TEST(MatmulDeterminism, GemmWithBetaAndLeadingDimensionsInDeterministicMode) {
  // C = alpha A B + beta C on submatrices with padded leading dimensions, tiles ragged both ways.
  const int64_t m = 300, n = 270, k = 50, lda = 64, ldb = 280, ldc = 290;
  const Tensor a = rand({m, lda}, 1), b = rand({k, ldb}, 2), c0 = rand({m, ldc}, 3);
  auto run = [&] {
    Tensor c = c0.clone();
    ops::gemm(false, false, m, n, k, 0.5f, a.data<float>(), lda, b.data<float>(), ldb, 2.0f, c.data<float>(), ldc);
    return c;
  };
  const Tensor one = with_threads(1, run);
  EXPECT_TRUE(tensors_identical(one, with_threads(2, run)));
  const Tensor want =
      ops::add(ops::mul(ops::matmul_reference(a.narrow(1, 0, k).to(DType::Float64), b.narrow(1, 0, n).to(DType::Float64)),
                        0.5),
               ops::mul(c0.narrow(1, 0, n).to(DType::Float64), 2.0));
  EXPECT_TRUE(tensors_close(one.narrow(1, 0, n), want, 1e-5, 1e-4));
  EXPECT_TRUE(tensors_identical(one.narrow(1, n, ldc - n), c0.narrow(1, n, ldc - n)));  // padding untouched
}

TEST(MatmulDeterminism, LinearForwardBackwardIdenticalAcrossThreadCounts) {
  // ag::linear as ResNet-50's fc: (8, 2048) -> 14, with weight and bias gradients.
  auto run = [&](int threads) {
    ThreadScope scope(threads);
    const Tensor x = rand({8, 2048}, 40), g = rand({8, 14}, 43);
    const Tensor w = ag::requires_grad_leaf(rand({14, 2048}, 41)), b = ag::requires_grad_leaf(rand({14}, 42));
    const Tensor xr = ag::requires_grad_leaf(x.clone());
    ag::backward(ag::linear(xr, w, b), g);
    return std::vector<Tensor>{ag::grad(xr), ag::grad(w), ag::grad(b)};
  };
  const auto one = run(1), two = run(2), three = run(3);
  for (size_t i = 0; i < one.size(); ++i) {
    EXPECT_TRUE(tensors_identical(one[i], two[i])) << "gradient " << i << ": 1 vs 2 threads";
    EXPECT_TRUE(tensors_identical(one[i], three[i])) << "gradient " << i << ": 1 vs 3 threads";
  }
}

// Fast mode (one threaded sgemm per call): which of the shapes above depend on the thread count.
TEST(MatmulDeterminism, FastModeSgemmAcrossThreadCounts) {
  DeterministicScope fast(false);
  std::string differing;
  int compared = 0;
  for (const GemmCase& c : gemm_cases()) {
    auto run = [&] { return ops::matmul(c.a, c.b); };
    const Tensor one = with_threads(1, run), two = with_threads(2, run);
    ++compared;
    EXPECT_TRUE(tensors_close(one, two, 1e-4, 1e-4)) << c.name;  // different rounding at most
    if (!tensors_identical(one, two)) differing += "\n  " + c.name;
  }
  if (!differing.empty())
    GTEST_SKIP() << "fast mode: float32 sgemm results that differ between 1 and 2 threads (" << compared
                 << " shapes compared):" << differing;
  std::printf("[ NOTE     ] fast mode: all %d sgemm shapes are bit-identical with 1 and 2 threads\n", compared);
}

}  // namespace
}  // namespace medtl
