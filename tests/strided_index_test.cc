// The GPU kernels' index math (tensor/cuda/strided_index.h), checked on the host against a naive
// per-dim computation: broadcasting, permuted, narrowed, sliced and expanded views, 0-dim and
// empty tensors, coalescing, the 64-bit index path, and the reduction view.
#include "tensor/cuda/strided_index.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include "tensor/tensor.h"
#include "tests/test_util.h"

namespace medtl {
namespace {

using cuda::make_indexer;
using cuda::StridedIndexer;

// Operand offsets of element `linear` (row-major over shape), the slow obvious way.
int64_t naive_offset(const Shape& shape, const Shape& strides, int64_t linear) {
  int64_t offset = 0;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    offset += (linear % shape[d]) * strides[d];
    linear /= shape[d];
  }
  return offset;
}

// Every element (or `samples` spread-out ones when there are more), on both the 32-bit and the
// 64-bit division paths.
template <int N>
::testing::AssertionResult matches_naive(const Shape& shape, const std::array<Shape, N>& strides,
                                         int64_t samples = 200000) {
  StridedIndexer<N> idx = make_indexer<N>(shape, strides);
  const int64_t numel = shape_numel(shape);
  if (idx.numel != numel) return ::testing::AssertionFailure() << "numel " << idx.numel << " vs " << numel;
  if (idx.index32 != (numel <= int64_t{0xffffffff})) return ::testing::AssertionFailure() << "index32 flag";
  const int64_t step = numel <= samples ? 1 : numel / samples + 1;
  for (bool wide : {false, true}) {
    StridedIndexer<N> path = idx;
    if (wide) path.index32 = false;
    else if (!idx.index32) continue;  // the 32-bit path is only taken when numel fits
    for (int64_t i = 0; i < numel; i += step) {
      for (int64_t i2 : {i, numel - 1 - i}) {
        int64_t got[N];
        path.offsets(i2, got);
        for (int k = 0; k < N; ++k) {
          const int64_t want = naive_offset(shape, strides[k], i2);
          if (got[k] != want)
            return ::testing::AssertionFailure()
                   << "shape " << shape_str(shape) << ", operand " << k << " strides " << shape_str(strides[k])
                   << ", element " << i2 << (wide ? " (64-bit path)" : " (32-bit path)") << ": got " << got[k]
                   << ", want " << want << " (coalesced to " << idx.ndim << " dims)";
        }
      }
    }
  }
  return ::testing::AssertionSuccess();
}

// A one-operand indexer over a view's own shape.
StridedIndexer<1> indexer_of(const Tensor& t) { return make_indexer<1>(t.shape(), {t.strides()}); }

TEST(StridedIndex, ContiguousCoalescesToOneDim) {
  for (const Shape& shape : {Shape{7}, Shape{2, 3}, Shape{2, 3, 4, 5}, Shape{1, 6, 1, 2}, Shape{128, 2048, 7, 7}}) {
    const Tensor t = empty(shape);
    const auto idx = indexer_of(t);
    EXPECT_EQ(idx.ndim, 1) << shape_str(shape);
    EXPECT_EQ(idx.strides[0][0], 1);
    EXPECT_TRUE(matches_naive<1>(shape, {t.strides()}));
  }
  // Nine contiguous dims are fine: they merge into one.
  const Tensor nine = empty({2, 2, 2, 2, 2, 2, 2, 2, 2});
  EXPECT_EQ(indexer_of(nine).ndim, 1);
}

TEST(StridedIndex, ZeroDimAndSizeOneDims) {
  const auto scalar = make_indexer<2>({}, {Shape{}, Shape{}});
  EXPECT_EQ(scalar.ndim, 0);
  EXPECT_EQ(scalar.numel, 1);
  int64_t off[2] = {-1, -1};
  scalar.offsets(0, off);
  EXPECT_EQ(off[0], 0);
  EXPECT_EQ(off[1], 0);
  // Only size-1 dims, with arbitrary strides: still one element at offset 0.
  const auto ones = make_indexer<1>({1, 1, 1}, {Shape{99, -5, 7}});
  EXPECT_EQ(ones.ndim, 0);
  EXPECT_EQ(ones.offset(0), 0);
  // Size-1 dims with odd strides in between real ones are dropped, and the rest still merges.
  EXPECT_TRUE(matches_naive<1>({4, 1, 3, 1}, {Shape{3, 1000, 1, -7}}));
  EXPECT_EQ(make_indexer<1>({4, 1, 3, 1}, {Shape{3, 1000, 1, -7}}).ndim, 1);
}

TEST(StridedIndex, EmptyTensors) {
  for (const Shape& shape : {Shape{0}, Shape{3, 0, 2}, Shape{0, 1}, Shape{2, 0, 2, 0, 2, 0, 2, 0, 2, 0}}) {
    const auto idx = make_indexer<2>(shape, {contiguous_strides(shape), Shape(shape.size(), 0)});
    EXPECT_EQ(idx.numel, 0) << shape_str(shape);
    EXPECT_EQ(idx.ndim, 1) << "an empty space never indexes, whatever its rank: " << shape_str(shape);
  }
}

TEST(StridedIndex, BroadcastOperands) {
  const Shape out{2, 3, 4};
  const Shape a_shape{3, 1}, b_shape{4};
  const Tensor a = empty(a_shape), b = empty(b_shape);
  const Shape sa = cuda::broadcast_strides("test", out, a.shape(), a.strides());
  const Shape sb = cuda::broadcast_strides("test", out, b.shape(), b.strides());
  EXPECT_EQ(sa, (Shape{0, 1, 0}));
  EXPECT_EQ(sb, (Shape{0, 0, 1}));
  EXPECT_TRUE(matches_naive<3>(out, {contiguous_strides(out), sa, sb}));
  // A size-1 dim gets stride 0 even when the operand's own stride is not (so it can merge).
  EXPECT_EQ(cuda::broadcast_strides("test", {5, 1}, {1, 1}, {7, 3}), (Shape{0, 0}));
  // Scalars, column against row, and a broadcast on both sides of a real dim.
  EXPECT_TRUE(matches_naive<3>({6, 5}, {contiguous_strides({6, 5}), Shape{0, 0}, Shape{1, 0}}));
  EXPECT_TRUE(matches_naive<3>({6, 5}, {contiguous_strides({6, 5}), Shape{0, 1}, Shape{1, 0}}));
  EXPECT_TRUE(matches_naive<2>({3, 4, 5, 6}, {contiguous_strides({3, 4, 5, 6}), Shape{0, 5, 1, 0}}));
  EXPECT_ERROR_CONTAINS(cuda::broadcast_strides("cuda::add", {2, 3}, {4}, {1}), "cuda::add");
  EXPECT_ERROR_CONTAINS(cuda::broadcast_strides("cuda::add", {3}, {2, 3}, {3, 1}), "cannot broadcast");
}

TEST(StridedIndex, BroadcastShape) {
  EXPECT_EQ(cuda::broadcast_shape("op", {2, 1, 4}, {3, 1}), (Shape{2, 3, 4}));
  EXPECT_EQ(cuda::broadcast_shape("op", {}, {3, 1}), (Shape{3, 1}));
  EXPECT_EQ(cuda::broadcast_shape("op", {0}, {1}), (Shape{0}));
  EXPECT_EQ(cuda::broadcast_shape("op", {5, 0, 1}, {1, 7}), (Shape{5, 0, 7}));
  EXPECT_ERROR_CONTAINS(cuda::broadcast_shape("cuda::mul", {2, 3}, {4}), "cuda::mul: shapes (2, 3) and (4");
  EXPECT_ERROR_CONTAINS(cuda::broadcast_shape("cuda::mul", {2, 3}, {4}), "sizes are 3 and 4");
  EXPECT_ERROR_CONTAINS(cuda::broadcast_shape("cuda::mul", {0}, {2}), "do not broadcast");
}

TEST(StridedIndex, PermutedNarrowedSlicedExpandedViews) {
  const Tensor base = empty({6, 7, 8, 5});
  const std::vector<Tensor> views = {
      base.permute({3, 1, 0, 2}),
      base.transpose(0, 3),
      base.narrow(1, 2, 3),
      base.narrow(3, 1, 4).narrow(0, 5, 1),
      base.slice(2, 1, 8, 3),
      base.slice(0, 0, 6, 2).permute({2, 0, 3, 1}),
      base.select(1, 4),
      base.narrow(2, 0, 1).expand({6, 7, 9, 5}).permute({2, 3, 0, 1}),
      empty({1, 5}).expand({4, 5}),
      empty({3, 1, 2}).expand({4, 3, 6, 2}),
      base.unsqueeze(2).unsqueeze(0),
  };
  for (const Tensor& v : views) {
    EXPECT_TRUE(matches_naive<1>(v.shape(), {v.strides()})) << shape_str(v.shape()) << " " << shape_str(v.strides());
    // With a contiguous output beside it, as the elementwise kernels use it.
    EXPECT_TRUE(matches_naive<2>(v.shape(), {contiguous_strides(v.shape()), v.strides()}));
  }
  // What the coalescing leaves: narrowing the last dim keeps 2 dims; a transpose keeps 2.
  EXPECT_EQ(indexer_of(empty({6, 7}).narrow(1, 0, 3)).ndim, 2);
  EXPECT_EQ(indexer_of(empty({6, 7}).transpose(0, 1)).ndim, 2);
  EXPECT_EQ(indexer_of(base.narrow(0, 1, 3)).ndim, 1) << "narrowing the outermost dim stays contiguous";
  // A contiguous output beside a transposed input does not merge (the output's stride breaks it).
  const Tensor t = empty({4, 5}).transpose(0, 1);
  EXPECT_EQ((make_indexer<2>(t.shape(), {contiguous_strides(t.shape()), t.strides()}).ndim), 2);
  // Expanded leading dims merge with each other (stride 0 * size == 0).
  EXPECT_EQ(indexer_of(empty({5}).expand({3, 4, 5})).ndim, 2);
}

TEST(StridedIndex, TooManyDimsIsAClearError) {
  // Nine dims in reversed order: no two neighbours can merge.
  const Tensor t = empty(Shape(9, 2)).permute({8, 7, 6, 5, 4, 3, 2, 1, 0});
  EXPECT_ERROR_CONTAINS(indexer_of(t), "at most 8 dims");
  EXPECT_ERROR_CONTAINS(indexer_of(t), "still has 9");
  // Eight such dims are fine.
  const Tensor e = empty(Shape(8, 2)).permute({7, 6, 5, 4, 3, 2, 1, 0});
  EXPECT_EQ(indexer_of(e).ndim, 8);
  EXPECT_TRUE(matches_naive<1>(e.shape(), {e.strides()}));
}

TEST(StridedIndex, SixtyFourBitIndices) {
  // More than 2^32 elements (index math only; nothing is allocated).
  const Shape shape{3, (int64_t{1} << 32) + 5};
  const Shape strides{1, 3};  // a transposed (N, 3) tensor
  const auto idx = make_indexer<1>(shape, {strides});
  EXPECT_FALSE(idx.index32);
  EXPECT_TRUE(matches_naive<1>(shape, {strides}, 5000));
  const Shape shape3{5, 1 << 20, 1 << 12};
  const Shape strides3{int64_t{1} << 32, 1, int64_t{1} << 20};
  EXPECT_TRUE(matches_naive<1>(shape3, {strides3}, 5000));
}

// Random views of random tensors against the naive mapping.
TEST(StridedIndex, RandomViewsFuzz) {
  std::mt19937_64 rng(12345);
  auto uniform_int = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (int trial = 0; trial < 400; ++trial) {
    const int64_t ndim = uniform_int(0, 6);
    Shape shape(ndim);
    for (auto& s : shape) s = uniform_int(1, 5);
    Tensor t = empty(shape);
    // A few random view operations.
    for (int op = 0; op < 3 && t.dim() > 0; ++op) {
      const int64_t d = uniform_int(0, t.dim() - 1);
      switch (uniform_int(0, 3)) {
        case 0: {
          std::vector<int64_t> perm(t.dim());
          std::iota(perm.begin(), perm.end(), 0);
          std::shuffle(perm.begin(), perm.end(), rng);
          t = t.permute(perm);
          break;
        }
        case 1: {
          const int64_t start = uniform_int(0, t.size(d) - 1);
          t = t.narrow(d, start, uniform_int(1, t.size(d) - start));
          break;
        }
        case 2: t = t.slice(d, 0, t.size(d), uniform_int(1, 3)); break;
        case 3:
          if (t.size(d) == 1) {
            Shape to = t.shape();
            to[d] = uniform_int(1, 4);
            t = t.expand(to);
          }
          break;
      }
    }
    // A second operand broadcast into t's shape from a random sub-shape.
    Shape sub = t.shape();
    for (auto& s : sub)
      if (uniform_int(0, 2) == 0) s = 1;
    sub.erase(sub.begin(), sub.begin() + uniform_int(0, static_cast<int64_t>(sub.size())));
    // Laid out in reversed dim order, so its strides are not row-major either.
    Shape reversed(sub.rbegin(), sub.rend());
    std::vector<int64_t> back(sub.size());
    std::iota(back.rbegin(), back.rend(), 0);
    const Tensor b = empty(reversed).permute(back);
    const Shape bs = cuda::broadcast_strides("fuzz", t.shape(), b.shape(), b.strides());
    EXPECT_TRUE(matches_naive<3>(t.shape(), {contiguous_strides(t.shape()), t.strides(), bs}))
        << "trial " << trial;
  }
}

// ---------------------------------------------------------------- the reduction view

// Checks every (output, reduced) pair against the naive offset of the full index.
::testing::AssertionResult view_matches(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  const cuda::ReductionView view = cuda::make_reduction_view(x.shape(), x.strides(), dims, keepdim);
  Shape kept, red, kept_strides, red_strides, want_out;
  for (int64_t d = 0; d < x.dim(); ++d) {
    const bool r = std::find(dims.begin(), dims.end(), d) != dims.end();
    (r ? red : kept).push_back(x.size(d));
    (r ? red_strides : kept_strides).push_back(x.stride(d));
    if (!r) want_out.push_back(x.size(d));
    else if (keepdim) want_out.push_back(1);
  }
  if (view.out_shape != want_out)
    return ::testing::AssertionFailure() << "out_shape " << shape_str(view.out_shape) << " vs " << shape_str(want_out);
  if (view.outputs != shape_numel(kept) || view.length != shape_numel(red))
    return ::testing::AssertionFailure() << "outputs/length " << view.outputs << "/" << view.length;
  for (int64_t m = 0; m < view.outputs; ++m)
    for (int64_t j = 0; j < view.length; ++j) {
      // The full index: kept dims from m, reduced dims from j, both row-major.
      const int64_t want = naive_offset(kept, kept_strides, m) + naive_offset(red, red_strides, j);
      const int64_t got = view.outer.offset(m) + view.inner.offset(j);
      if (got != want)
        return ::testing::AssertionFailure() << "x " << shape_str(x.shape()) << " strides " << shape_str(x.strides())
                                             << " dims " << shape_str(dims) << ": output " << m << ", element " << j
                                             << ": got " << got << ", want " << want;
    }
  return ::testing::AssertionSuccess();
}

TEST(StridedIndex, ReductionViewResNetShapes) {
  const Tensor x = empty({4, 16, 7, 7});  // (N, C, H, W), small N and C
  EXPECT_TRUE(view_matches(x, {0, 2, 3}, false));
  EXPECT_TRUE(view_matches(x, {0, 2, 3}, true));
  EXPECT_TRUE(view_matches(x, {2, 3}, false));   // global average pool
  EXPECT_TRUE(view_matches(x, {0, 1, 2, 3}, false));
  const Tensor logits = empty({12, 10});
  EXPECT_TRUE(view_matches(logits, {0}, false));
  EXPECT_TRUE(view_matches(logits, {1}, true));
  // The inner space of {2, 3} is one contiguous run; of {0, 2, 3} it is two dims.
  EXPECT_EQ(cuda::make_reduction_view(x.shape(), x.strides(), {2, 3}, false).inner.ndim, 1);
  EXPECT_EQ(cuda::make_reduction_view(x.shape(), x.strides(), {0, 2, 3}, false).inner.ndim, 2);
  EXPECT_EQ(cuda::make_reduction_view(x.shape(), x.strides(), {0, 2, 3}, false).outer.ndim, 1);
}

TEST(StridedIndex, ReductionViewEdgeCases) {
  // Nothing reduced: every output is its own element.
  const Tensor x = empty({3, 4}).transpose(0, 1);
  EXPECT_TRUE(view_matches(x, {}, false));
  EXPECT_EQ(cuda::make_reduction_view(x.shape(), x.strides(), {}, false).length, 1);
  // 0-dim.
  const Tensor s = empty({});
  const auto sv = cuda::make_reduction_view({}, {}, {}, true);
  EXPECT_EQ(sv.outputs, 1);
  EXPECT_EQ(sv.length, 1);
  EXPECT_TRUE(sv.out_shape.empty());
  EXPECT_TRUE(view_matches(s, {}, false));
  // Empty reduced space (outputs with nothing to reduce) and empty output space.
  const auto e1 = cuda::make_reduction_view({3, 0}, {0, 1}, {1}, true);
  EXPECT_EQ(e1.outputs, 3);
  EXPECT_EQ(e1.length, 0);
  EXPECT_EQ(e1.out_shape, (Shape{3, 1}));
  const auto e2 = cuda::make_reduction_view({0, 3}, {3, 1}, {1}, false);
  EXPECT_EQ(e2.outputs, 0);
  EXPECT_EQ(e2.length, 3);
  EXPECT_EQ(e2.out_shape, (Shape{0}));
  // Bad dims lists.
  EXPECT_ERROR_CONTAINS(cuda::make_reduction_view({2, 3}, {3, 1}, {2}, false), "out of range");
  EXPECT_ERROR_CONTAINS(cuda::make_reduction_view({2, 3}, {3, 1}, {1, 0}, false), "sorted and unique");
  EXPECT_ERROR_CONTAINS(cuda::make_reduction_view({2, 3}, {3, 1}, {1, 1}, false), "sorted and unique");
  EXPECT_ERROR_CONTAINS(cuda::make_reduction_view({2, 3}, {3, 1}, {-1}, false), "out of range");
}

TEST(StridedIndex, ReductionViewRandomFuzz) {
  std::mt19937_64 rng(777);
  auto uniform_int = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (int trial = 0; trial < 300; ++trial) {
    const int64_t ndim = uniform_int(1, 5);
    Shape shape(ndim);
    for (auto& s : shape) s = uniform_int(1, 4);
    Tensor x = empty(shape);
    std::vector<int64_t> perm(ndim);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    x = x.permute(perm);
    if (uniform_int(0, 1)) {
      const int64_t d = uniform_int(0, ndim - 1);
      x = x.slice(d, 0, x.size(d), 2);
    }
    if (uniform_int(0, 2) == 0) {
      const int64_t d = uniform_int(0, ndim - 1);
      x = x.narrow(d, 0, 1);
      Shape to = x.shape();
      to[d] = 3;
      x = x.expand(to);
    }
    std::vector<int64_t> dims;
    for (int64_t d = 0; d < ndim; ++d)
      if (uniform_int(0, 1)) dims.push_back(d);
    EXPECT_TRUE(view_matches(x, dims, uniform_int(0, 1) == 1)) << "trial " << trial;
  }
}

}  // namespace
}  // namespace medtl
