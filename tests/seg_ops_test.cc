// Nearest x2 upsampling and concatenation: kernels against plain-loop oracles on contiguous and
// strided inputs, thread-count determinism, float64 gradcheck of the differentiable forms, errors.
#include <gtest/gtest.h>

#include <functional>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "autograd/seg_ops.h"
#include "tensor/ops/upsample.h"
#include "tensor/parallel.h"
#include "tests/test_util.h"

namespace medtl {
namespace {

using Inputs = std::vector<Tensor>;

Tensor random(const Shape& shape, uint64_t seed, DType dtype = DType::Float64) {
  Generator gen(seed);
  return uniform(shape, gen, -1.0, 1.0, dtype);
}

Tensor random_leaf(const Shape& shape, uint64_t seed) { return ag::requires_grad_leaf(random(shape, seed)); }

void expect_gradcheck(const std::function<Tensor(const Inputs&)>& fn, const Inputs& inputs) {
  const ag::GradcheckResult result = ag::gradcheck(fn, inputs);
  EXPECT_TRUE(result.ok) << result.message;
}

// ---------------------------------------------------------------- upsample kernels

TEST(UpsampleNearest2x, ForwardAndBackwardMatchTheOracles) {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    for (const Shape& shape : {Shape{1, 1, 1, 1}, Shape{2, 3, 4, 5}, Shape{1, 2, 7, 3}}) {
      SCOPED_TRACE(shape_str(shape));
      const Tensor x = random(shape, 1, dtype);
      const Tensor y = ops::upsample_nearest2x(x);
      EXPECT_EQ(y.shape(), (Shape{shape[0], shape[1], 2 * shape[2], 2 * shape[3]}));
      EXPECT_TRUE(testing::tensors_identical(y, ops::upsample_nearest2x_reference(x)));
      const Tensor g = random(y.shape(), 2, dtype);
      // float32 backward adds four float32 values; the oracle adds them in double, then rounds.
      EXPECT_TRUE(testing::tensors_close(ops::upsample_nearest2x_backward(g), ops::upsample_nearest2x_backward_reference(g),
                                         dtype == DType::Float32 ? 1e-6 : 1e-15, 1e-7));
    }
  }
}

TEST(UpsampleNearest2x, SmallHandWorkedExample) {
  const Tensor x = from_vector<double>({1, 2, 3, 4}, {1, 1, 2, 2});
  EXPECT_EQ(ops::upsample_nearest2x(x).to_vector<double>(),
            (std::vector<double>{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}));
  // Backward of a gradient 0..15: input (0, 0) collects 0 + 1 + 4 + 5 = 10, and so on.
  const Tensor g = arange(0, 16, 1, DType::Float64).view({1, 1, 4, 4});
  EXPECT_EQ(ops::upsample_nearest2x_backward(g).to_vector<double>(), (std::vector<double>{10, 18, 42, 50}));
}

TEST(UpsampleNearest2x, StridedInputsGiveTheSameBits) {
  const Tensor base = random({2, 5, 3, 4}, 3, DType::Float32);
  const Tensor x = base.permute({0, 1, 3, 2});  // (2, 5, 4, 3), not contiguous
  EXPECT_TRUE(testing::tensors_identical(ops::upsample_nearest2x(x), ops::upsample_nearest2x(x.contiguous())));
  const Tensor g = random({2, 5, 6, 8}, 4, DType::Float32).transpose(2, 3);  // (2, 5, 8, 6)
  EXPECT_TRUE(testing::tensors_identical(ops::upsample_nearest2x_backward(g),
                                         ops::upsample_nearest2x_backward(g.contiguous())));
}

TEST(UpsampleNearest2x, ThreadCountDoesNotChangeBits) {
  const int saved = get_num_threads();
  const Tensor x = random({2, 16, 40, 40}, 5, DType::Float32);
  const Tensor g = random({2, 16, 80, 80}, 6, DType::Float32);
  set_num_threads(1);
  const Tensor y1 = ops::upsample_nearest2x(x), d1 = ops::upsample_nearest2x_backward(g);
  set_num_threads(2);
  const Tensor y2 = ops::upsample_nearest2x(x), d2 = ops::upsample_nearest2x_backward(g);
  set_num_threads(saved);
  EXPECT_TRUE(testing::tensors_identical(y1, y2));
  EXPECT_TRUE(testing::tensors_identical(d1, d2));
}

TEST(UpsampleNearest2x, EmptyAndErrors) {
  EXPECT_EQ(ops::upsample_nearest2x(zeros({0, 3, 2, 2})).shape(), (Shape{0, 3, 4, 4}));
  EXPECT_ERROR_CONTAINS(ops::upsample_nearest2x(zeros({3, 2, 2})), "(N, C, H, W)");
  EXPECT_ERROR_CONTAINS(ops::upsample_nearest2x(zeros({1, 1, 2, 2}, DType::Int64)), "int64");
  EXPECT_ERROR_CONTAINS(ops::upsample_nearest2x(Tensor()), "undefined");
  EXPECT_ERROR_CONTAINS(ops::upsample_nearest2x_backward(zeros({1, 1, 3, 4})), "even H and W");
}

TEST(UpsampleNearest2x, Gradcheck) {
  expect_gradcheck([](const Inputs& v) { return ag::upsample_nearest2x(v[0]); }, {random_leaf({2, 2, 3, 2}, 7)});
  // Through a non-contiguous view and a following op, so the gradient reaching it is strided too.
  expect_gradcheck(
      [](const Inputs& v) { return ag::mul(ag::upsample_nearest2x(ag::transpose(v[0], 2, 3)), v[1]); },
      {random_leaf({1, 2, 2, 3}, 8), random_leaf({1, 2, 6, 4}, 9)});
}

// ---------------------------------------------------------------- cat

TEST(Cat, ChannelsInOrderAndOtherDims) {
  const Tensor a = arange(0, 8, 1, DType::Float64).view({1, 2, 2, 2});
  const Tensor b = arange(100, 104, 1, DType::Float64).view({1, 1, 2, 2});
  const Tensor y = ag::cat({a, b}, 1);
  EXPECT_EQ(y.shape(), (Shape{1, 3, 2, 2}));
  EXPECT_EQ(y.to_vector<double>(), (std::vector<double>{0, 1, 2, 3, 4, 5, 6, 7, 100, 101, 102, 103}));
  // Negative dims, the last dim, strided inputs, an empty piece.
  const Tensor c = random({2, 3}, 10), d = random({4, 2}, 11).transpose(0, 1), e = zeros({2, 0}, DType::Float64);
  const Tensor z = ag::cat({c, e, d}, -1);
  EXPECT_EQ(z.shape(), (Shape{2, 7}));
  for (int64_t i = 0; i < 2; ++i) {
    for (int64_t j = 0; j < 3; ++j) EXPECT_EQ(z.at({i, j}), c.at({i, j}));
    for (int64_t j = 0; j < 4; ++j) EXPECT_EQ(z.at({i, 3 + j}), d.at({i, j}));
  }
  EXPECT_TRUE(testing::tensors_identical(ag::cat({c}, 0), c));
}

TEST(Cat, BackwardIsTheSplitOfTheGradient) {
  Tensor a = random_leaf({2, 3, 2, 2}, 12), b = random_leaf({2, 1, 2, 2}, 13);
  const Tensor w = random({2, 4, 2, 2}, 14);
  ag::backward(ag::sum(ag::mul(ag::cat({a, b}, 1), w)));
  EXPECT_TRUE(testing::tensors_identical(ag::grad(a).contiguous(), w.narrow(1, 0, 3).contiguous()));
  EXPECT_TRUE(testing::tensors_identical(ag::grad(b).contiguous(), w.narrow(1, 3, 1).contiguous()));
}

TEST(Cat, OnlyInputsThatRequireGradGetOne) {
  Tensor a = random_leaf({1, 2, 1, 1}, 15);
  Tensor b = random({1, 1, 1, 1}, 16);
  ag::backward(ag::sum(ag::cat({b, a}, 1)));
  EXPECT_EQ(ag::grad(a).to_vector<double>(), (std::vector<double>{1, 1}));
  EXPECT_FALSE(ag::grad(b).defined());
}

TEST(Cat, Gradcheck) {
  expect_gradcheck([](const Inputs& v) { return ag::cat({v[0], v[1], v[2]}, 1); },
                   {random_leaf({2, 1, 2, 2}, 17), random_leaf({2, 2, 2, 2}, 18), random_leaf({2, 1, 2, 2}, 19)});
  // The decoder's pattern: upsample, concatenate a skip, use the result twice.
  expect_gradcheck(
      [](const Inputs& v) {
        const Tensor y = ag::cat({ag::upsample_nearest2x(v[0]), v[1]}, 1);
        return ag::mul(y, ag::sigmoid(y));
      },
      {random_leaf({1, 2, 2, 2}, 20), random_leaf({1, 1, 4, 4}, 21)});
}

TEST(Cat, Errors) {
  EXPECT_ERROR_CONTAINS(ag::cat({}, 1), "non-empty");
  EXPECT_ERROR_CONTAINS(ag::cat({zeros({1, 2, 3, 3}), zeros({1, 2, 4, 3})}, 1), "must match except in dimension 1");
  EXPECT_ERROR_CONTAINS(ag::cat({zeros({1, 2, 3, 3}), zeros({1, 2, 3})}, 1), "must match except in dimension 1");
  EXPECT_ERROR_CONTAINS(ag::cat({zeros({1, 2}), zeros({1, 2}, DType::Float64)}, 1), "float64");
  EXPECT_ERROR_CONTAINS(ag::cat({zeros({1, 2}), Tensor()}, 0), "tensor 1 is undefined");
  EXPECT_ERROR_CONTAINS(ag::cat({zeros({1, 2})}, 2), "cat");
  EXPECT_ERROR_CONTAINS(ag::cat({scalar_tensor(1.0)}, 0), "zero-dimensional");
}

}  // namespace
}  // namespace medtl
