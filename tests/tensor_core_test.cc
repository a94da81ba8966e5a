// Tensor core: shapes, strides, storage, views (and their aliasing), copies, dtype conversion,
// creation functions, element access, and the messages of every user-facing error.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "tensor/ops/copy.h"
#include "tensor/tensor.h"
#include "tests/test_util.h"

namespace medtl {
namespace {

using ::medtl::testing::tensors_close;
using ::medtl::testing::tensors_identical;

// A float32 tensor holding 0, 1, 2, ... in row-major order.
Tensor iota_f32(const Shape& shape) { return arange(0.0, static_cast<double>(shape_numel(shape)), 1.0).view(shape); }

std::vector<float> iota_vec(int64_t n, float start = 0.0f) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = start + static_cast<float>(i);
  return v;
}

// ================================================================ shapes, strides, numel

TEST(ShapeHelpers, ShapeStr) {
  EXPECT_EQ(shape_str({}), "()");
  EXPECT_EQ(shape_str({3}), "(3,)");
  EXPECT_EQ(shape_str({2, 3, 4}), "(2, 3, 4)");
  EXPECT_EQ(shape_str({0, 5}), "(0, 5)");
}

TEST(ShapeHelpers, Numel) {
  EXPECT_EQ(shape_numel({}), 1);
  EXPECT_EQ(shape_numel({7}), 7);
  EXPECT_EQ(shape_numel({2, 3, 4}), 24);
  EXPECT_EQ(shape_numel({2, 0, 4}), 0);
}

TEST(ShapeHelpers, ContiguousStrides) {
  EXPECT_EQ(contiguous_strides({}), Shape{});
  EXPECT_EQ(contiguous_strides({5}), Shape({1}));
  EXPECT_EQ(contiguous_strides({2, 3, 4}), Shape({12, 4, 1}));
  EXPECT_EQ(contiguous_strides({2, 1, 4}), Shape({4, 4, 1}));
  // A zero-size dim counts as 1 for the strides of the dims before it.
  EXPECT_EQ(contiguous_strides({2, 0, 4}), Shape({4, 4, 1}));
}

TEST(ShapeHelpers, WrapDim) {
  EXPECT_EQ(wrap_dim(0, 3, "t"), 0);
  EXPECT_EQ(wrap_dim(2, 3, "t"), 2);
  EXPECT_EQ(wrap_dim(-1, 3, "t"), 2);
  EXPECT_EQ(wrap_dim(-3, 3, "t"), 0);
  EXPECT_ERROR_CONTAINS(wrap_dim(3, 3, "myop"), "myop: dim 3 is out of range");
  EXPECT_ERROR_CONTAINS(wrap_dim(-4, 3, "myop"), "valid: -3 to 2");
}

TEST(TensorBasics, UndefinedTensor) {
  Tensor t;
  EXPECT_FALSE(t.defined());
  EXPECT_EQ(t.str(), "Tensor(undefined)");
  EXPECT_ERROR_CONTAINS(t.raw_data(), "undefined");
  EXPECT_ERROR_CONTAINS(t.data<float>(), "undefined");
}

TEST(TensorBasics, ShapeStridesNumel) {
  Tensor t = empty({2, 3, 4});
  EXPECT_TRUE(t.defined());
  EXPECT_EQ(t.dim(), 3);
  EXPECT_EQ(t.shape(), Shape({2, 3, 4}));
  EXPECT_EQ(t.strides(), Shape({12, 4, 1}));
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.offset(), 0);
  EXPECT_EQ(t.dtype(), DType::Float32);
  EXPECT_EQ(t.device(), Device::cpu());
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.size(0), 2);
  EXPECT_EQ(t.size(-1), 4);
  EXPECT_EQ(t.size(-3), 2);
  EXPECT_EQ(t.stride(1), 4);
  EXPECT_EQ(t.stride(-1), 1);
  EXPECT_EQ(t.str(), "Tensor(float32, (2, 3, 4), cpu)");
}

TEST(TensorBasics, ScalarShape) {
  Tensor s = scalar_tensor(2.5);
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.shape(), Shape{});
  EXPECT_EQ(s.strides(), Shape{});
  EXPECT_EQ(s.numel(), 1);
  EXPECT_TRUE(s.is_contiguous());
  EXPECT_EQ(s.item(), 2.5);
  EXPECT_EQ(s.str(), "Tensor(float32, (), cpu)");
}

TEST(TensorBasics, IsContiguous) {
  Tensor t = iota_f32({2, 3, 4});
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_FALSE(t.transpose(0, 1).is_contiguous());
  EXPECT_FALSE(t.permute({2, 0, 1}).is_contiguous());
  EXPECT_FALSE(t.slice(2, 0, 4, 2).is_contiguous());
  EXPECT_FALSE(t.narrow(2, 1, 2).is_contiguous());
  EXPECT_TRUE(t.narrow(0, 1, 1).is_contiguous());  // a whole trailing block, offset only
  EXPECT_TRUE(t.select(0, 1).is_contiguous());
  EXPECT_FALSE(iota_f32({1, 4}).expand({3, 4}).is_contiguous());
  // Size-1 dims may carry any stride.
  Tensor odd(t.storage(), {1, 4}, {999, 1}, 0, DType::Float32);
  EXPECT_TRUE(odd.is_contiguous());
  // A transpose of size-1 dims is still contiguous.
  EXPECT_TRUE(iota_f32({1, 5, 1}).transpose(0, 2).is_contiguous());
}

TEST(TensorBasics, ExplicitConstructorChecksRank) {
  Tensor base = empty({6});
  EXPECT_ERROR_CONTAINS(Tensor(base.storage(), {2, 3}, {1}, 0, DType::Float32), "differ in rank");
  EXPECT_ERROR_CONTAINS(Tensor(base.storage(), {-1}, {1}, 0, DType::Float32), "negative size");
}

TEST(TensorBasics, CopiesShareStorage) {
  Tensor a = zeros({3});
  Tensor b = a;  // NOLINT: a cheap shared copy is the point
  EXPECT_TRUE(a.shares_storage_with(b));
  b.data<float>()[1] = 7.0f;
  EXPECT_EQ(a.at({1}), 7.0);
  EXPECT_FALSE(a.shares_storage_with(zeros({3})));
}

// ================================================================ storage

TEST(Storage, CpuAllocationsAre64ByteAligned) {
  for (int64_t n : {0, 1, 3, 17, 63, 64, 65, 1000, 4097}) {
    for (DType dtype : {DType::Float32, DType::Float64, DType::UInt8, DType::Float16}) {
      Tensor t = empty({n}, dtype);
      ASSERT_NE(t.storage()->data(), nullptr);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(t.storage()->data()) % 64, 0u) << n << " " << dtype_name(dtype);
      EXPECT_EQ(t.storage()->nbytes(), n * dtype_size(dtype));
      EXPECT_EQ(t.storage()->device(), Device::cpu());
      EXPECT_EQ(t.raw_data(), t.storage()->data());
    }
  }
  Tensor s = empty({});
  EXPECT_EQ(reinterpret_cast<uintptr_t>(s.storage()->data()) % 64, 0u);
  EXPECT_EQ(s.storage()->nbytes(), 4);
}

TEST(Storage, StorageDirectly) {
  Storage s(100, Device::cpu());
  EXPECT_EQ(s.nbytes(), 100);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(s.data()) % 64, 0u);
  std::memset(s.data(), 0xab, 100);  // the whole block is writable
  EXPECT_ERROR_CONTAINS(Storage(-1, Device::cpu()), "negative size");
}

TEST(Storage, RawDataAndDataIncludeOffset) {
  Tensor t = iota_f32({4, 5});
  Tensor row = t.select(0, 2);
  EXPECT_EQ(row.offset(), 10);
  EXPECT_EQ(row.data<float>(), t.data<float>() + 10);
  EXPECT_EQ(row.raw_data(), static_cast<void*>(t.data<float>() + 10));
  EXPECT_EQ(row.data<float>()[0], 10.0f);
}

// ================================================================ views

TEST(Views, ViewSharesStorageAndAliases) {
  Tensor t = iota_f32({2, 3, 4});
  Tensor v = t.view({6, 4});
  EXPECT_EQ(v.shape(), Shape({6, 4}));
  EXPECT_EQ(v.strides(), Shape({4, 1}));
  EXPECT_EQ(v.offset(), 0);
  EXPECT_TRUE(v.shares_storage_with(t));
  EXPECT_EQ(v.at({5, 3}), 23.0);
  ops::fill_(v.select(0, 4), -1.0);  // row 4 of the (6, 4) view = t[1, 1, :]
  for (int64_t k = 0; k < 4; ++k) EXPECT_EQ(t.at({1, 1, k}), -1.0);
  EXPECT_EQ(t.at({1, 0, 3}), 15.0);
  EXPECT_EQ(t.at({1, 2, 0}), 20.0);
}

TEST(Views, ViewWithInferredDim) {
  Tensor t = iota_f32({2, 3, 4});
  Tensor a = t.view({-1, 4});
  EXPECT_EQ(a.shape(), Shape({6, 4}));
  EXPECT_EQ(a.strides(), Shape({4, 1}));
  Tensor b = t.view({2, -1});
  EXPECT_EQ(b.shape(), Shape({2, 12}));
  EXPECT_EQ(b.strides(), Shape({12, 1}));
  Tensor c = t.view({-1});
  EXPECT_EQ(c.shape(), Shape({24}));
  EXPECT_EQ(c.strides(), Shape({1}));
  Tensor d = t.view({4, -1, 2});
  EXPECT_EQ(d.shape(), Shape({4, 3, 2}));
  EXPECT_EQ(d.strides(), Shape({6, 2, 1}));
  for (const Tensor& v : {a, b, c, d}) EXPECT_TRUE(v.shares_storage_with(t));
  c.data<float>()[13] = 100.0f;
  EXPECT_EQ(t.at({1, 0, 1}), 100.0);
  EXPECT_EQ(d.at({2, 0, 1}), 100.0);
}

TEST(Views, ViewToAndFromScalar) {
  Tensor one = from_vector<float>({4.0f}, {1, 1});
  Tensor s = one.view({});
  EXPECT_EQ(s.dim(), 0);
  EXPECT_TRUE(s.shares_storage_with(one));
  EXPECT_EQ(s.item(), 4.0);
  Tensor back = s.view({1, 1, 1});
  EXPECT_EQ(back.shape(), Shape({1, 1, 1}));
  EXPECT_EQ(back.strides(), Shape({1, 1, 1}));
  EXPECT_EQ(s.view({-1}).shape(), Shape({1}));
}

TEST(Views, ViewOfStridedTensorWhereCompatible) {
  // Rows of a column slice are still contiguous within themselves: splitting the last dim is a view.
  Tensor t = iota_f32({4, 6});
  Tensor cols = t.narrow(1, 2, 4);  // (4, 4) strides (6, 1) offset 2
  Tensor v = cols.view({4, 2, 2});
  EXPECT_EQ(v.shape(), Shape({4, 2, 2}));
  EXPECT_EQ(v.strides(), Shape({6, 2, 1}));
  EXPECT_EQ(v.offset(), 2);
  EXPECT_TRUE(v.shares_storage_with(t));
  EXPECT_EQ(v.at({1, 1, 0}), 10.0);  // t[1, 2 + 2]
  // Merging the leading dim of a transposed tensor with a size-1 dim is also fine.
  Tensor tt = iota_f32({3, 4}).transpose(0, 1);  // (4, 3) strides (1, 4)
  Tensor u = tt.view({4, 1, 3});
  EXPECT_EQ(u.strides()[0], 1);
  EXPECT_EQ(u.strides()[2], 4);
  EXPECT_EQ(u.at({2, 0, 1}), tt.at({2, 1}));
}

TEST(Views, ViewErrors) {
  Tensor t = iota_f32({2, 3, 4});
  EXPECT_ERROR_CONTAINS(t.transpose(0, 1).view({24}), "use reshape");
  EXPECT_ERROR_CONTAINS(t.transpose(0, 1).view({24}), "cannot be viewed as (24,)");
  EXPECT_ERROR_CONTAINS(t.slice(1, 0, 3, 2).view({16}), "use reshape");
  // A step-2 slice of the last dim is uniformly strided, so flattening it is still a view.
  Tensor every_other = t.slice(2, 0, 4, 2).view({12});
  EXPECT_EQ(every_other.strides(), Shape({2}));
  EXPECT_TRUE(every_other.shares_storage_with(t));
  EXPECT_EQ(every_other.at({11}), 22.0);
  EXPECT_ERROR_CONTAINS(t.view({5, 5}), "holds 25 elements");
  EXPECT_ERROR_CONTAINS(t.view({-1, -1}), "only one dim may be -1");
  EXPECT_ERROR_CONTAINS(t.view({5, -1}), "cannot infer -1");
  EXPECT_ERROR_CONTAINS(t.view({-2, 12}), "invalid size -2");
  EXPECT_ERROR_CONTAINS(t.reshape({7, -1}), "reshape: cannot infer -1");
}

TEST(Views, ReshapeThatViews) {
  Tensor t = iota_f32({2, 3, 4});
  Tensor r = t.reshape({4, 6});
  EXPECT_TRUE(r.shares_storage_with(t));
  EXPECT_EQ(r.shape(), Shape({4, 6}));
  EXPECT_EQ(r.strides(), Shape({6, 1}));
  EXPECT_EQ(r.offset(), 0);
  r.data<float>()[7] = 42.0f;
  EXPECT_EQ(t.at({0, 1, 3}), 42.0);
  // A slice along the first dim is still viewable after reshape: offset kept.
  Tensor s = t.narrow(0, 1, 1).reshape({3, 4});
  EXPECT_TRUE(s.shares_storage_with(t));
  EXPECT_EQ(s.offset(), 12);
  EXPECT_EQ(s.at({0, 0}), 12.0);
}

TEST(Views, ReshapeThatCopies) {
  Tensor t = iota_f32({2, 3});
  Tensor tt = t.transpose(0, 1);  // (3, 2): 0 3 / 1 4 / 2 5
  Tensor r = tt.reshape({6});
  EXPECT_FALSE(r.shares_storage_with(t));
  EXPECT_EQ(r.shape(), Shape({6}));
  EXPECT_EQ(r.strides(), Shape({1}));
  EXPECT_EQ(r.offset(), 0);
  EXPECT_EQ(r.to_vector<float>(), std::vector<float>({0, 3, 1, 4, 2, 5}));
  // A copy: writing to it leaves the original alone.
  ops::fill_(r, -5.0);
  EXPECT_EQ(t.to_vector<float>(), iota_vec(6));
  // Reshape with -1 also copies from an expanded tensor.
  Tensor e = from_vector<float>({1, 2}, {2, 1}).expand({2, 3});
  Tensor re = e.reshape({-1});
  EXPECT_FALSE(re.shares_storage_with(e));
  EXPECT_EQ(re.to_vector<float>(), std::vector<float>({1, 1, 1, 2, 2, 2}));
}

TEST(Views, Permute) {
  Tensor t = iota_f32({2, 3, 4});
  Tensor p = t.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), Shape({4, 2, 3}));
  EXPECT_EQ(p.strides(), Shape({1, 12, 4}));
  EXPECT_EQ(p.offset(), 0);
  EXPECT_TRUE(p.shares_storage_with(t));
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j)
      for (int64_t k = 0; k < 4; ++k) EXPECT_EQ(p.at({k, i, j}), t.at({i, j, k}));
  Tensor q = t.permute({-1, -3, -2});
  EXPECT_EQ(q.shape(), p.shape());
  EXPECT_EQ(q.strides(), p.strides());
  ops::fill_(p.select(0, 3), 9.0);  // t[:, :, 3]
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j) EXPECT_EQ(t.at({i, j, 3}), 9.0);
  EXPECT_EQ(t.at({0, 0, 2}), 2.0);
}

TEST(Views, PermuteErrors) {
  Tensor t = iota_f32({2, 3, 4});
  EXPECT_ERROR_CONTAINS(t.permute({0, 1, 1}), "appears twice");
  EXPECT_ERROR_CONTAINS(t.permute({0, -1, 2}), "appears twice");
  EXPECT_ERROR_CONTAINS(t.permute({0, 1}), "got 2 dims for a tensor with 3 dims");
  EXPECT_ERROR_CONTAINS(t.permute({0, 1, 3}), "permute: dim 3 is out of range");
}

TEST(Views, Transpose) {
  Tensor t = iota_f32({2, 3, 4});
  Tensor tr = t.transpose(0, 2);
  EXPECT_EQ(tr.shape(), Shape({4, 3, 2}));
  EXPECT_EQ(tr.strides(), Shape({1, 4, 12}));
  EXPECT_EQ(tr.offset(), 0);
  EXPECT_TRUE(tr.shares_storage_with(t));
  EXPECT_EQ(tr.at({3, 1, 1}), t.at({1, 1, 3}));
  Tensor same = t.transpose(-1, -1);
  EXPECT_EQ(same.shape(), t.shape());
  EXPECT_EQ(same.strides(), t.strides());
  tr.data<float>()[5] = -3.0f;  // element 5 of storage, whatever the view
  EXPECT_EQ(t.at({0, 1, 1}), -3.0);
  EXPECT_ERROR_CONTAINS(t.transpose(0, 3), "transpose: dim 3 is out of range");
}

TEST(Views, Narrow) {
  Tensor t = iota_f32({4, 5});
  Tensor n = t.narrow(1, 1, 3);
  EXPECT_EQ(n.shape(), Shape({4, 3}));
  EXPECT_EQ(n.strides(), Shape({5, 1}));
  EXPECT_EQ(n.offset(), 1);
  EXPECT_TRUE(n.shares_storage_with(t));
  EXPECT_EQ(n.to_vector<float>(), std::vector<float>({1, 2, 3, 6, 7, 8, 11, 12, 13, 16, 17, 18}));
  Tensor rows = t.narrow(0, 2, 2);
  EXPECT_EQ(rows.shape(), Shape({2, 5}));
  EXPECT_EQ(rows.offset(), 10);
  ops::fill_(n, 0.0);
  EXPECT_EQ(t.to_vector<float>(),
            std::vector<float>({0, 0, 0, 0, 4, 5, 0, 0, 0, 9, 10, 0, 0, 0, 14, 15, 0, 0, 0, 19}));
  // Narrowing a narrow composes offsets.
  Tensor nn = rows.narrow(1, 3, 2);
  EXPECT_EQ(nn.offset(), 13);
  EXPECT_EQ(nn.at({1, 1}), 19.0);
  // Empty narrow at the end is allowed.
  Tensor empty_end = t.narrow(1, 5, 0);
  EXPECT_EQ(empty_end.shape(), Shape({4, 0}));
  EXPECT_EQ(empty_end.numel(), 0);
  // Negative dim.
  EXPECT_EQ(t.narrow(-1, 4, 1).offset(), 4);
}

TEST(Views, NarrowErrors) {
  Tensor t = iota_f32({4, 5});
  EXPECT_ERROR_CONTAINS(t.narrow(1, 3, 3), "is outside dim 1 of size 5");
  EXPECT_ERROR_CONTAINS(t.narrow(1, 3, 3), "[3, 6)");
  EXPECT_ERROR_CONTAINS(t.narrow(0, -1, 2), "narrow");
  EXPECT_ERROR_CONTAINS(t.narrow(0, 0, -1), "is outside dim 0");
  EXPECT_ERROR_CONTAINS(t.narrow(2, 0, 1), "narrow: dim 2 is out of range");
}

TEST(Views, SliceWithStep) {
  Tensor t = iota_f32({10});
  Tensor s = t.slice(0, 1, 8, 3);  // 1 4 7
  EXPECT_EQ(s.shape(), Shape({3}));
  EXPECT_EQ(s.strides(), Shape({3}));
  EXPECT_EQ(s.offset(), 1);
  EXPECT_TRUE(s.shares_storage_with(t));
  EXPECT_EQ(s.to_vector<float>(), std::vector<float>({1, 4, 7}));
  EXPECT_EQ(t.slice(0, 0, 10, 2).to_vector<float>(), std::vector<float>({0, 2, 4, 6, 8}));
  EXPECT_EQ(t.slice(0, 0, 9, 2).to_vector<float>(), std::vector<float>({0, 2, 4, 6, 8}));
  EXPECT_EQ(t.slice(0, 1, 10, 2).to_vector<float>(), std::vector<float>({1, 3, 5, 7, 9}));
  EXPECT_EQ(t.slice(0, 0, 10, 20).to_vector<float>(), std::vector<float>({0}));
  ops::fill_(s, -1.0);
  EXPECT_EQ(t.to_vector<float>(), std::vector<float>({0, -1, 2, 3, -1, 5, 6, -1, 8, 9}));
}

TEST(Views, SliceNegativeAndOutOfRangeBounds) {
  Tensor t = iota_f32({10});
  EXPECT_EQ(t.slice(0, -3, 10).to_vector<float>(), std::vector<float>({7, 8, 9}));
  EXPECT_EQ(t.slice(0, 0, -1).to_vector<float>(), iota_vec(9));
  EXPECT_EQ(t.slice(0, -4, -1).to_vector<float>(), std::vector<float>({6, 7, 8}));
  EXPECT_EQ(t.slice(0, -9, -2, 3).to_vector<float>(), std::vector<float>({1, 4, 7}));
  EXPECT_EQ(t.slice(0, -100, 3).to_vector<float>(), std::vector<float>({0, 1, 2}));  // clamped
  EXPECT_EQ(t.slice(0, 7, 100).to_vector<float>(), std::vector<float>({7, 8, 9}));
  Tensor empty_slice = t.slice(0, 6, 2);  // end before start: empty
  EXPECT_EQ(empty_slice.shape(), Shape({0}));
  EXPECT_EQ(t.slice(0, 20, 30).numel(), 0);
  Tensor offset_check = t.slice(0, -4, -1);
  EXPECT_EQ(offset_check.offset(), 6);
  EXPECT_ERROR_CONTAINS(t.slice(0, 0, 5, 0), "step must be positive");
  EXPECT_ERROR_CONTAINS(t.slice(0, 0, 5, -1), "step must be positive");
  EXPECT_ERROR_CONTAINS(t.slice(1, 0, 5), "slice: dim 1 is out of range");
}

TEST(Views, Slice2D) {
  Tensor t = iota_f32({4, 6});
  Tensor s = t.slice(1, 1, 6, 2).slice(0, 1, 4, 2);  // rows 1, 3; cols 1, 3, 5
  EXPECT_EQ(s.shape(), Shape({2, 3}));
  EXPECT_EQ(s.strides(), Shape({12, 2}));
  EXPECT_EQ(s.offset(), 7);
  EXPECT_EQ(s.to_vector<float>(), std::vector<float>({7, 9, 11, 19, 21, 23}));
  ops::fill_(s, 0.0);
  EXPECT_EQ(t.at({3, 5}), 0.0);
  EXPECT_EQ(t.at({3, 4}), 22.0);
  EXPECT_EQ(t.at({2, 5}), 17.0);
}

TEST(Views, Select) {
  Tensor t = iota_f32({2, 3, 4});
  Tensor s = t.select(1, 2);
  EXPECT_EQ(s.shape(), Shape({2, 4}));
  EXPECT_EQ(s.strides(), Shape({12, 1}));
  EXPECT_EQ(s.offset(), 8);
  EXPECT_TRUE(s.shares_storage_with(t));
  EXPECT_EQ(s.to_vector<float>(), std::vector<float>({8, 9, 10, 11, 20, 21, 22, 23}));
  Tensor last = t.select(-1, -1);
  EXPECT_EQ(last.shape(), Shape({2, 3}));
  EXPECT_EQ(last.strides(), Shape({12, 4}));
  EXPECT_EQ(last.offset(), 3);
  EXPECT_EQ(last.to_vector<float>(), std::vector<float>({3, 7, 11, 15, 19, 23}));
  ops::fill_(last, 0.5);
  EXPECT_EQ(t.at({1, 2, 3}), 0.5);
  EXPECT_EQ(t.at({1, 2, 2}), 22.0);
  Tensor scalar = t.select(0, 1).select(0, 1).select(0, 1);
  EXPECT_EQ(scalar.dim(), 0);
  EXPECT_EQ(scalar.offset(), 17);
  EXPECT_EQ(scalar.item(), 17.0);
  EXPECT_ERROR_CONTAINS(t.select(1, 3), "select: index 3 is out of range for dim 1 of size 3");
  EXPECT_ERROR_CONTAINS(t.select(1, -4), "index -4 is out of range");
  EXPECT_ERROR_CONTAINS(t.select(3, 0), "select: dim 3 is out of range");
}

TEST(Views, Expand) {
  Tensor col = from_vector<float>({1, 2, 3}, {3, 1});
  Tensor e = col.expand({3, 4});
  EXPECT_EQ(e.shape(), Shape({3, 4}));
  EXPECT_EQ(e.strides(), Shape({1, 0}));
  EXPECT_EQ(e.offset(), 0);
  EXPECT_TRUE(e.shares_storage_with(col));
  EXPECT_EQ(e.to_vector<float>(), std::vector<float>({1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3}));
  // New leading dims broadcast with stride 0.
  Tensor lead = col.expand({2, 3, 5});
  EXPECT_EQ(lead.shape(), Shape({2, 3, 5}));
  EXPECT_EQ(lead.strides(), Shape({0, 1, 0}));
  EXPECT_EQ(lead.numel(), 30);
  // Aliasing: every broadcast element reads the one stored value.
  col.data<float>()[1] = 20.0f;
  EXPECT_EQ(e.at({1, 3}), 20.0);
  EXPECT_EQ(lead.at({1, 1, 4}), 20.0);
  // Expanding to the same shape keeps strides; a scalar expands to anything.
  Tensor same = col.expand({3, 1});
  EXPECT_EQ(same.strides(), col.strides());
  Tensor s = scalar_tensor(7.0).expand({2, 2});
  EXPECT_EQ(s.strides(), Shape({0, 0}));
  EXPECT_EQ(s.to_vector<float>(), std::vector<float>({7, 7, 7, 7}));
  // Expanding a size-1 dim to 0 gives an empty tensor.
  EXPECT_EQ(col.expand({3, 0}).numel(), 0);
}

TEST(Views, ExpandErrors) {
  Tensor t = iota_f32({2, 3});
  EXPECT_ERROR_CONTAINS(t.expand({2, 4}), "cannot broadcast to (2, 4)");
  EXPECT_ERROR_CONTAINS(t.expand({2, 4}), "only size-1 dims broadcast");
  EXPECT_ERROR_CONTAINS(t.expand({4, 3}), "cannot broadcast");
  EXPECT_ERROR_CONTAINS(t.expand({3}), "to fewer dims");
  EXPECT_ERROR_CONTAINS(t.expand({-1, 2, 3}), "expand: size -1");
  EXPECT_ERROR_CONTAINS(from_vector<float>({1}, {1}).expand({-2}), "expand: size -2");
}

TEST(Views, SqueezeAll) {
  Tensor t = iota_f32({1, 3, 1, 2, 1});
  Tensor s = t.squeeze();
  EXPECT_EQ(s.shape(), Shape({3, 2}));
  EXPECT_EQ(s.strides(), Shape({2, 1}));
  EXPECT_EQ(s.offset(), 0);
  EXPECT_TRUE(s.shares_storage_with(t));
  s.data<float>()[3] = -8.0f;
  EXPECT_EQ(t.at({0, 1, 0, 1, 0}), -8.0);
  Tensor all_ones = from_vector<float>({5}, {1, 1, 1});
  EXPECT_EQ(all_ones.squeeze().dim(), 0);
  EXPECT_EQ(all_ones.squeeze().item(), 5.0);
  EXPECT_EQ(iota_f32({2, 3}).squeeze().shape(), Shape({2, 3}));
}

TEST(Views, SqueezeDim) {
  Tensor t = iota_f32({2, 1, 3});
  Tensor s = t.squeeze(1);
  EXPECT_EQ(s.shape(), Shape({2, 3}));
  EXPECT_EQ(s.strides(), Shape({3, 1}));
  EXPECT_EQ(s.offset(), 0);
  EXPECT_TRUE(s.shares_storage_with(t));
  EXPECT_EQ(t.unsqueeze(0).squeeze(0).shape(), t.shape());
  EXPECT_EQ(t.squeeze(-2).shape(), Shape({2, 3}));
  // Squeezing a size-1 slice of a strided tensor keeps the other strides and the offset.
  Tensor base = iota_f32({4, 6});
  Tensor col = base.narrow(1, 2, 1);  // (4, 1) offset 2
  Tensor sq = col.squeeze(1);
  EXPECT_EQ(sq.shape(), Shape({4}));
  EXPECT_EQ(sq.strides(), Shape({6}));
  EXPECT_EQ(sq.offset(), 2);
  ops::fill_(sq, 100.0);
  EXPECT_EQ(base.at({3, 2}), 100.0);
  EXPECT_EQ(base.at({3, 3}), 21.0);
}

TEST(Views, SqueezeErrors) {
  Tensor t = iota_f32({2, 1, 3});
  EXPECT_ERROR_CONTAINS(t.squeeze(0), "squeeze: dim 0 has size 2, not 1");
  EXPECT_ERROR_CONTAINS(t.squeeze(2), "not 1");
  EXPECT_ERROR_CONTAINS(t.squeeze(3), "squeeze: dim 3 is out of range");
}

TEST(Views, Unsqueeze) {
  Tensor t = iota_f32({2, 3});
  Tensor a = t.unsqueeze(0);
  EXPECT_EQ(a.shape(), Shape({1, 2, 3}));
  EXPECT_EQ(a.strides(), Shape({6, 3, 1}));
  Tensor b = t.unsqueeze(1);
  EXPECT_EQ(b.shape(), Shape({2, 1, 3}));
  EXPECT_EQ(b.strides(), Shape({3, 3, 1}));
  Tensor c = t.unsqueeze(2);
  EXPECT_EQ(c.shape(), Shape({2, 3, 1}));
  EXPECT_EQ(c.strides(), Shape({3, 1, 1}));
  Tensor d = t.unsqueeze(-1);
  EXPECT_EQ(d.shape(), Shape({2, 3, 1}));
  Tensor e = t.unsqueeze(-3);
  EXPECT_EQ(e.shape(), Shape({1, 2, 3}));
  for (const Tensor& v : {a, b, c, d, e}) {
    EXPECT_TRUE(v.shares_storage_with(t));
    EXPECT_TRUE(v.is_contiguous());
    EXPECT_EQ(v.offset(), 0);
  }
  // Of a strided view: offset kept, aliasing.
  Tensor sel = iota_f32({3, 4}).transpose(0, 1).select(0, 1);  // (3,) stride 4 offset 1
  Tensor u = sel.unsqueeze(1);
  EXPECT_EQ(u.shape(), Shape({3, 1}));
  EXPECT_EQ(u.strides()[0], 4);
  EXPECT_EQ(u.offset(), 1);
  ops::fill_(u, 3.0);
  EXPECT_EQ(sel.to_vector<float>(), std::vector<float>({3, 3, 3}));
  // A scalar unsqueezes to (1,).
  EXPECT_EQ(scalar_tensor(1.0).unsqueeze(0).shape(), Shape({1}));
  EXPECT_ERROR_CONTAINS(t.unsqueeze(3), "unsqueeze: dim 3 is out of range");
  EXPECT_ERROR_CONTAINS(t.unsqueeze(-4), "unsqueeze: dim -4 is out of range");
}

TEST(Views, Flatten) {
  Tensor t = iota_f32({2, 3, 4});
  Tensor all = t.flatten();
  EXPECT_EQ(all.shape(), Shape({24}));
  EXPECT_EQ(all.strides(), Shape({1}));
  EXPECT_TRUE(all.shares_storage_with(t));
  Tensor tail = t.flatten(1);
  EXPECT_EQ(tail.shape(), Shape({2, 12}));
  EXPECT_EQ(tail.strides(), Shape({12, 1}));
  Tensor head = t.flatten(0, 1);
  EXPECT_EQ(head.shape(), Shape({6, 4}));
  EXPECT_EQ(head.strides(), Shape({4, 1}));
  Tensor mid = t.flatten(-2, -1);
  EXPECT_EQ(mid.shape(), Shape({2, 12}));
  Tensor one = t.flatten(1, 1);
  EXPECT_EQ(one.shape(), t.shape());
  head.data<float>()[22] = 0.25f;
  EXPECT_EQ(t.at({1, 2, 2}), 0.25);
  // Flattening a scalar gives (1,).
  Tensor s = scalar_tensor(3.0).flatten();
  EXPECT_EQ(s.shape(), Shape({1}));
  EXPECT_EQ(s.item(), 3.0);
  // Flattening a non-viewable tensor copies, in row-major order of the view.
  Tensor tr = iota_f32({2, 3}).transpose(0, 1);
  Tensor f = tr.flatten();
  EXPECT_FALSE(f.shares_storage_with(tr));
  EXPECT_EQ(f.to_vector<float>(), std::vector<float>({0, 3, 1, 4, 2, 5}));
  EXPECT_ERROR_CONTAINS(t.flatten(2, 1), "start_dim 2 is after end_dim 1");
  EXPECT_ERROR_CONTAINS(t.flatten(0, 3), "flatten: dim 3 is out of range");
}

TEST(Views, ViewsDoNotCarryAutogradMeta) {
  struct Meta : AutogradMetaBase {};
  Tensor t = iota_f32({2, 3});
  t.set_autograd_meta(std::make_shared<Meta>());
  EXPECT_NE(t.autograd_meta(), nullptr);
  EXPECT_EQ(t.view({6}).autograd_meta(), nullptr);
  EXPECT_EQ(t.reshape({3, 2}).autograd_meta(), nullptr);
  EXPECT_EQ(t.transpose(0, 1).autograd_meta(), nullptr);
  EXPECT_EQ(t.narrow(0, 0, 1).autograd_meta(), nullptr);
  EXPECT_EQ(t.select(0, 0).autograd_meta(), nullptr);
  EXPECT_EQ(t.expand({4, 2, 3}).autograd_meta(), nullptr);
  EXPECT_EQ(t.unsqueeze(0).autograd_meta(), nullptr);
  EXPECT_EQ(t.squeeze().autograd_meta(), nullptr);
  EXPECT_EQ(t.contiguous().autograd_meta(), nullptr);
  EXPECT_EQ(t.to(DType::Float32).autograd_meta(), nullptr);
  EXPECT_EQ(t.clone().autograd_meta(), nullptr);
}

// ================================================================ contiguous, clone

TEST(Copies, ContiguousOfContiguousIsSameStorage) {
  Tensor t = iota_f32({3, 4});
  Tensor c = t.contiguous();
  EXPECT_TRUE(c.shares_storage_with(t));
  EXPECT_EQ(c.raw_data(), t.raw_data());
  EXPECT_EQ(c.shape(), t.shape());
  EXPECT_EQ(c.strides(), t.strides());
  // A contiguous view with an offset also stays.
  Tensor row = t.select(0, 1);
  Tensor rc = row.contiguous();
  EXPECT_TRUE(rc.shares_storage_with(t));
  EXPECT_EQ(rc.offset(), 4);
}

TEST(Copies, ContiguousOfStridedCopiesInRowMajorOrder) {
  Tensor t = iota_f32({2, 3, 4});
  Tensor p = t.permute({2, 0, 1});
  Tensor c = p.contiguous();
  EXPECT_FALSE(c.shares_storage_with(t));
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.shape(), Shape({4, 2, 3}));
  EXPECT_EQ(c.strides(), Shape({6, 3, 1}));
  EXPECT_EQ(c.offset(), 0);
  const float* data = c.data<float>();
  int64_t idx = 0;
  for (int64_t k = 0; k < 4; ++k)
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < 3; ++j) EXPECT_EQ(data[idx++], static_cast<float>(i * 12 + j * 4 + k));
  // Sliced with steps and an offset.
  Tensor s = t.slice(2, 1, 4, 2).slice(1, 0, 3, 2);  // (2, 2, 2)
  EXPECT_EQ(s.contiguous().to_vector<float>(), std::vector<float>({1, 3, 9, 11, 13, 15, 21, 23}));
  // Expanded.
  Tensor e = from_vector<float>({1, 2, 3}, {3}).expand({2, 3}).contiguous();
  EXPECT_EQ(e.strides(), Shape({3, 1}));
  EXPECT_EQ(e.to_vector<float>(), std::vector<float>({1, 2, 3, 1, 2, 3}));
  // Writing into the copy does not touch the original.
  ops::fill_(c, 0.0);
  EXPECT_EQ(t.at({1, 2, 3}), 23.0);
}

TEST(Copies, ContiguousLargeStridedUsesAllThreads) {
  // Big enough for the parallel copy path; checks every element.
  Tensor t = arange(0.0, 300.0 * 500.0, 1.0, DType::Float64).view({300, 500});
  Tensor c = t.transpose(0, 1).contiguous();
  ASSERT_EQ(c.shape(), Shape({500, 300}));
  const double* p = c.data<double>();
  for (int64_t i = 0; i < 500; ++i)
    for (int64_t j = 0; j < 300; ++j) ASSERT_EQ(p[i * 300 + j], static_cast<double>(j * 500 + i));
}

TEST(Copies, CloneIsIndependent) {
  Tensor t = iota_f32({2, 3});
  Tensor c = t.clone();
  EXPECT_FALSE(c.shares_storage_with(t));
  EXPECT_TRUE(tensors_identical(c, t));
  EXPECT_EQ(c.dtype(), t.dtype());
  c.data<float>()[0] = 99.0f;
  EXPECT_EQ(t.at({0, 0}), 0.0);
  t.data<float>()[1] = -1.0f;
  EXPECT_EQ(c.at({0, 1}), 1.0);
  // Clone of a strided view is row-major.
  Tensor ct = t.transpose(0, 1).clone();
  EXPECT_TRUE(ct.is_contiguous());
  EXPECT_EQ(ct.offset(), 0);
  EXPECT_EQ(ct.to_vector<float>(), std::vector<float>({0, 3, -1, 4, 2, 5}));
  // Clone of every dtype keeps the dtype and the bits.
  for (DType dtype : {DType::Float64, DType::Int64, DType::Int32, DType::UInt8, DType::Bool, DType::Float16,
                      DType::BFloat16}) {
    Tensor x = arange(0.0, 6.0, 1.0, dtype).view({2, 3});
    Tensor y = x.clone();
    EXPECT_EQ(y.dtype(), dtype);
    EXPECT_FALSE(y.shares_storage_with(x));
    EXPECT_TRUE(tensors_identical(x, y)) << dtype_name(dtype);
  }
}

// ================================================================ dtype conversion

TEST(Conversion, ToSameDtypeIsItself) {
  Tensor t = iota_f32({4});
  Tensor same = t.to(DType::Float32);
  EXPECT_TRUE(same.shares_storage_with(t));
  EXPECT_EQ(same.raw_data(), t.raw_data());
}

TEST(Conversion, FloatToOthers) {
  Tensor f = from_vector<float>({0.0f, 1.0f, 2.75f, -3.5f, 100.0f, 0.25f}, {2, 3});
  Tensor d = f.to(DType::Float64);
  EXPECT_EQ(d.dtype(), DType::Float64);
  EXPECT_EQ(d.shape(), Shape({2, 3}));
  EXPECT_FALSE(d.shares_storage_with(f));
  EXPECT_EQ(d.to_vector<double>(), std::vector<double>({0.0, 1.0, 2.75, -3.5, 100.0, 0.25}));
  // Float to integer truncates toward zero.
  EXPECT_EQ(f.to(DType::Int64).to_vector<int64_t>(), std::vector<int64_t>({0, 1, 2, -3, 100, 0}));
  EXPECT_EQ(f.to(DType::Int32).to_vector<int32_t>(), std::vector<int32_t>({0, 1, 2, -3, 100, 0}));
  Tensor nonneg = from_vector<float>({0.0f, 1.9f, 255.0f, 7.5f}, {4});
  EXPECT_EQ(nonneg.to(DType::UInt8).to_vector<uint8_t>(), std::vector<uint8_t>({0, 1, 255, 7}));
  // Float to bool: nonzero is true, including fractions and negatives.
  Tensor b = f.to(DType::Bool);
  EXPECT_EQ(b.dtype(), DType::Bool);
  EXPECT_EQ(b.to_vector<uint8_t>(), std::vector<uint8_t>({0, 1, 1, 1, 1, 1}));
  const bool* bp = b.data<bool>();
  EXPECT_FALSE(bp[0]);
  EXPECT_TRUE(bp[5]);
}

TEST(Conversion, AllPairsAmongArithmeticDtypes) {
  // Values every dtype holds exactly: 0, 1, 2, 7, 100, 0 (bool: 0, 1, 1, 1, 1, 0).
  const std::vector<double> values = {0, 1, 2, 7, 100, 0};
  const std::vector<DType> dtypes = {DType::Float32, DType::Float64, DType::Int64,
                                     DType::Int32,   DType::UInt8,   DType::Bool};
  for (DType from : dtypes) {
    Tensor src = from_vector<double>(values, {2, 3}).to(from);
    ASSERT_EQ(src.dtype(), from);
    for (DType to : dtypes) {
      Tensor dst = src.to(to);
      EXPECT_EQ(dst.dtype(), to);
      EXPECT_EQ(dst.shape(), Shape({2, 3}));
      const bool through_bool = from == DType::Bool || to == DType::Bool;
      const std::vector<double> got = dst.to_vector<double>();
      for (size_t i = 0; i < values.size(); ++i) {
        const double want = through_bool ? (values[i] != 0 ? 1.0 : 0.0) : values[i];
        EXPECT_EQ(got[i], want) << dtype_name(from) << " -> " << dtype_name(to) << " element " << i;
      }
    }
  }
}

TEST(Conversion, IntegerSpecifics) {
  Tensor big = from_vector<int64_t>({int64_t(1) << 40, -(int64_t(1) << 40) - 3, 5}, {3});
  EXPECT_EQ(big.to(DType::Float64).to_vector<double>(), std::vector<double>({1099511627776.0, -1099511627779.0, 5.0}));
  Tensor i32 = from_vector<int32_t>({-7, 0, 2147483647}, {3});
  EXPECT_EQ(i32.to(DType::Int64).to_vector<int64_t>(), std::vector<int64_t>({-7, 0, 2147483647}));
  EXPECT_EQ(i32.to(DType::Float64).to_vector<double>(), std::vector<double>({-7.0, 0.0, 2147483647.0}));
  EXPECT_EQ(i32.to(DType::Bool).to_vector<uint8_t>(), std::vector<uint8_t>({1, 0, 1}));
  Tensor u8 = from_vector<uint8_t>({0, 128, 255}, {3});
  EXPECT_EQ(u8.to(DType::Int32).to_vector<int32_t>(), std::vector<int32_t>({0, 128, 255}));
  EXPECT_EQ(u8.to(DType::Float32).to_vector<float>(), std::vector<float>({0.0f, 128.0f, 255.0f}));
  EXPECT_EQ(u8.to(DType::Bool).to(DType::Int64).to_vector<int64_t>(), std::vector<int64_t>({0, 1, 1}));
  Tensor d = from_vector<double>({-2.9, 2.9, 0.1}, {3});
  EXPECT_EQ(d.to(DType::Int32).to_vector<int32_t>(), std::vector<int32_t>({-2, 2, 0}));
  EXPECT_EQ(d.to(DType::Bool).to_vector<uint8_t>(), std::vector<uint8_t>({1, 1, 1}));
  // float64 -> float32 rounds to nearest.
  Tensor third = from_vector<double>({1.0 / 3.0}, {1});
  EXPECT_EQ(third.to(DType::Float32).to_vector<float>()[0], 1.0f / 3.0f);
}

TEST(Conversion, ConvertsStridedSource) {
  Tensor t = arange(0.0, 6.0, 1.0, DType::Float64).view({2, 3}).transpose(0, 1);
  Tensor i = t.to(DType::Int32);
  EXPECT_TRUE(i.is_contiguous());
  EXPECT_EQ(i.shape(), Shape({3, 2}));
  EXPECT_EQ(i.to_vector<int32_t>(), std::vector<int32_t>({0, 3, 1, 4, 2, 5}));
}

TEST(Conversion, BFloat16RoundTrip) {
  // Exactly representable values survive.
  const std::vector<float> exact = {0.0f, 1.0f, -1.0f, 1.5f, 0.5f, 3.0f, -2.25f, 256.0f, 1.0078125f /*1+2^-7*/};
  Tensor x = from_vector<float>(exact, {9});
  Tensor bf = x.to(DType::BFloat16);
  EXPECT_EQ(bf.dtype(), DType::BFloat16);
  EXPECT_EQ(dtype_size(DType::BFloat16), 2);
  EXPECT_EQ(bf.storage()->nbytes(), 18);
  EXPECT_EQ(bf.to(DType::Float32).to_vector<float>(), exact);
  // Stored bits are the top half of the float32: 1.5f = 0x3FC00000.
  const uint16_t* bits = static_cast<const uint16_t*>(bf.raw_data());
  EXPECT_EQ(bits[3], 0x3FC0);
  EXPECT_EQ(bits[1], 0x3F80);
  EXPECT_EQ(bits[2], 0xBF80);
  // Rounding to nearest, ties to even (7 stored mantissa bits, ulp at 1 is 2^-7).
  const float ulp = 1.0f / 128.0f;
  Tensor r = from_vector<float>({1.0f + ulp / 2,             // tie: down to 1 (even)
                                 1.0f + 3 * ulp / 2,         // tie: up to 1 + 2 ulp (even)
                                 1.0f + ulp / 2 + ulp / 64,  // above the tie: up
                                 1.0f + ulp / 2 - ulp / 64,  // below the tie: down
                                 -(1.0f + 3 * ulp / 2)},
                                {5});
  EXPECT_EQ(r.to(DType::BFloat16).to(DType::Float32).to_vector<float>(),
            std::vector<float>({1.0f, 1.0f + 2 * ulp, 1.0f + ulp, 1.0f, -(1.0f + 2 * ulp)}));
  // Infinity stays infinity, NaN stays NaN, overflow rounds to infinity.
  const float inf = std::numeric_limits<float>::infinity();
  Tensor special = from_vector<float>({inf, -inf, std::nanf(""), std::numeric_limits<float>::max()}, {4});
  const auto back = special.to(DType::BFloat16).to(DType::Float32).to_vector<float>();
  EXPECT_EQ(back[0], inf);
  EXPECT_EQ(back[1], -inf);
  EXPECT_TRUE(std::isnan(back[2]));
  EXPECT_EQ(back[3], inf);
  // To and from other dtypes through bfloat16.
  Tensor ints = from_vector<int64_t>({-3, 0, 7, 256}, {4});
  EXPECT_EQ(ints.to(DType::BFloat16).to(DType::Int32).to_vector<int32_t>(), std::vector<int32_t>({-3, 0, 7, 256}));
  EXPECT_EQ(ints.to(DType::BFloat16).to(DType::Float64).to_vector<double>(), std::vector<double>({-3, 0, 7, 256}));
  EXPECT_EQ(ints.to(DType::BFloat16).to(DType::Bool).to_vector<uint8_t>(), std::vector<uint8_t>({1, 0, 1, 1}));
}

TEST(Conversion, Float16RoundTrip) {
  const std::vector<float> exact = {0.0f, 1.0f, -1.0f, 1.5f, 0.5f, 65504.0f, -65504.0f, 1638.0f / 16384.0f /*0x2E66*/,
                                    6.103515625e-05f /*min normal*/, 5.9604644775390625e-08f /*min subnormal*/};
  Tensor x = from_vector<float>(exact, {static_cast<int64_t>(exact.size())});
  Tensor h = x.to(DType::Float16);
  EXPECT_EQ(h.dtype(), DType::Float16);
  EXPECT_EQ(dtype_size(DType::Float16), 2);
  EXPECT_EQ(h.to(DType::Float32).to_vector<float>(), exact);
  const uint16_t* bits = static_cast<const uint16_t*>(h.raw_data());
  EXPECT_EQ(bits[1], 0x3C00);  // 1.0
  EXPECT_EQ(bits[3], 0x3E00);  // 1.5
  EXPECT_EQ(bits[5], 0x7BFF);  // 65504, the largest finite half
  EXPECT_EQ(bits[6], 0xFBFF);
  EXPECT_EQ(bits[8], 0x0400);  // smallest normal
  EXPECT_EQ(bits[9], 0x0001);  // smallest subnormal
  // Ties to even (10 stored mantissa bits, ulp at 1 is 2^-10).
  const float ulp = 1.0f / 1024.0f;
  Tensor r = from_vector<float>({1.0f + ulp / 2, 1.0f + 3 * ulp / 2, 1.0f + ulp / 2 + ulp / 16,
                                 2048.0f + 1.0f /*ulp 2 there: tie down to 2048*/, 2048.0f + 3.0f /*tie up*/},
                                {5});
  EXPECT_EQ(r.to(DType::Float16).to(DType::Float32).to_vector<float>(),
            std::vector<float>({1.0f, 1.0f + 2 * ulp, 1.0f + ulp, 2048.0f, 2052.0f}));
  // Overflow: 65519 rounds down to 65504, 65520 (the tie) and above go to infinity.
  const float inf = std::numeric_limits<float>::infinity();
  Tensor over = from_vector<float>({65519.0f, 65520.0f, 1e6f, -1e6f, inf, std::nanf("")}, {6});
  const auto back = over.to(DType::Float16).to(DType::Float32).to_vector<float>();
  EXPECT_EQ(back[0], 65504.0f);
  EXPECT_EQ(back[1], inf);
  EXPECT_EQ(back[2], inf);
  EXPECT_EQ(back[3], -inf);
  EXPECT_EQ(back[4], inf);
  EXPECT_TRUE(std::isnan(back[5]));
  // Float16 <-> BFloat16 and integers.
  Tensor v = from_vector<float>({1.5f, -2.0f, 0.0f, 1024.0f}, {4});
  EXPECT_EQ(v.to(DType::Float16).to(DType::BFloat16).to(DType::Float32).to_vector<float>(),
            std::vector<float>({1.5f, -2.0f, 0.0f, 1024.0f}));
  EXPECT_EQ(v.to(DType::Float16).to(DType::Int64).to_vector<int64_t>(), std::vector<int64_t>({1, -2, 0, 1024}));
  EXPECT_EQ(from_vector<uint8_t>({0, 200}, {2}).to(DType::Float16).to(DType::Float64).to_vector<double>(),
            std::vector<double>({0.0, 200.0}));
}

TEST(Conversion, SixteenBitFromFloat64) {
  Tensor d = from_vector<double>({1.5, 65504.0, 0.5, -0.25}, {4});
  EXPECT_EQ(d.to(DType::Float16).to(DType::Float64).to_vector<double>(), std::vector<double>({1.5, 65504.0, 0.5, -0.25}));
  EXPECT_EQ(d.to(DType::BFloat16).to(DType::Float64).to_vector<double>(),
            std::vector<double>({1.5, 65536.0 /*65504 rounds at 8 bits*/, 0.5, -0.25}));
}

// ================================================================ copy_ and fill_

TEST(CopyFill, CopyBroadcastsIntoStridedView) {
  Tensor base = zeros({4, 6});
  Tensor view = base.slice(1, 0, 6, 2).narrow(0, 1, 3);  // rows 1..3, cols 0, 2, 4
  ASSERT_EQ(view.shape(), Shape({3, 3}));
  Tensor row = from_vector<float>({1, 2, 3}, {3});
  ops::copy_(view, row);
  EXPECT_EQ(base.to_vector<float>(), std::vector<float>({0, 0, 0, 0, 0, 0,  //
                                                         1, 0, 2, 0, 3, 0,  //
                                                         1, 0, 2, 0, 3, 0,  //
                                                         1, 0, 2, 0, 3, 0}));
  // A column broadcast across the other dim, converting dtype on the way.
  Tensor col = from_vector<int64_t>({7, 8, 9}, {3, 1});
  ops::copy_(view, col);
  EXPECT_EQ(base.to_vector<float>(), std::vector<float>({0, 0, 0, 0, 0, 0,  //
                                                         7, 0, 7, 0, 7, 0,  //
                                                         8, 0, 8, 0, 8, 0,  //
                                                         9, 0, 9, 0, 9, 0}));
  // A scalar broadcasts everywhere.
  ops::copy_(base.select(0, 0), scalar_tensor(5.0, DType::Float64));
  EXPECT_EQ(base.select(0, 0).to_vector<float>(), std::vector<float>(6, 5.0f));
}

TEST(CopyFill, CopyIntoTransposedView) {
  Tensor dst = zeros({3, 2}, DType::Float64);
  ops::copy_(dst.transpose(0, 1), iota_f32({2, 3}));
  EXPECT_EQ(dst.to_vector<double>(), std::vector<double>({0, 3, 1, 4, 2, 5}));
  EXPECT_ERROR_CONTAINS(ops::copy_(dst, iota_f32({2, 3})), "cannot broadcast");
  EXPECT_ERROR_CONTAINS(ops::copy_(Tensor(), dst), "undefined");
}

TEST(CopyFill, CopyLargeBroadcastMatchesReference) {
  Tensor dst = empty({257, 300}, DType::Float64);
  Tensor src = arange(0.0, 300.0, 1.0, DType::Float32);
  ops::copy_(dst, src);
  const double* p = dst.data<double>();
  for (int64_t i = 0; i < 257; ++i)
    for (int64_t j = 0; j < 300; ++j) ASSERT_EQ(p[i * 300 + j], static_cast<double>(j));
}

TEST(CopyFill, Fill) {
  Tensor t = zeros({3, 4}, DType::Int32);
  ops::fill_(t, 3.0);
  EXPECT_EQ(t.to_vector<int32_t>(), std::vector<int32_t>(12, 3));
  ops::fill_(t.narrow(1, 1, 2), -1.0);
  EXPECT_EQ(t.to_vector<int32_t>(), std::vector<int32_t>({3, -1, -1, 3, 3, -1, -1, 3, 3, -1, -1, 3}));
  ops::fill_(t.transpose(0, 1).select(0, 3), 8.0);  // column 3
  EXPECT_EQ(t.to_vector<int32_t>(), std::vector<int32_t>({3, -1, -1, 8, 3, -1, -1, 8, 3, -1, -1, 8}));
  for (DType dtype : {DType::Float32, DType::Float64, DType::Int64, DType::UInt8, DType::Float16, DType::BFloat16}) {
    Tensor x = empty({5}, dtype);
    ops::fill_(x, 2.5 * (is_floating(dtype) ? 1 : 2));  // integers get 5
    for (double v : x.to_vector<double>()) EXPECT_EQ(v, 5.0 / (is_floating(dtype) ? 2 : 1)) << dtype_name(dtype);
  }
  Tensor b = empty({3}, DType::Bool);
  ops::fill_(b, 0.5);
  EXPECT_EQ(b.to_vector<uint8_t>(), std::vector<uint8_t>({1, 1, 1}));
  ops::fill_(b, 0.0);
  EXPECT_EQ(b.to_vector<uint8_t>(), std::vector<uint8_t>({0, 0, 0}));
  // Filling an empty tensor is a no-op.
  ops::fill_(empty({0, 3}), 1.0);
}

// ================================================================ creation

TEST(Creation, ZerosOnesFull) {
  Tensor z = zeros({2, 3});
  EXPECT_EQ(z.dtype(), DType::Float32);
  EXPECT_EQ(z.shape(), Shape({2, 3}));
  EXPECT_EQ(z.to_vector<float>(), std::vector<float>(6, 0.0f));
  Tensor o = ones({4}, DType::Int64);
  EXPECT_EQ(o.dtype(), DType::Int64);
  EXPECT_EQ(o.to_vector<int64_t>(), std::vector<int64_t>(4, 1));
  Tensor f = full({2, 2}, -1.25, DType::Float64);
  EXPECT_EQ(f.to_vector<double>(), std::vector<double>(4, -1.25));
  Tensor fb = full({2}, 1.0, DType::Bool);
  EXPECT_EQ(fb.to_vector<uint8_t>(), std::vector<uint8_t>({1, 1}));
  Tensor fh = full({3}, 65504.0, DType::Float16);
  EXPECT_EQ(fh.to(DType::Float32).to_vector<float>(), std::vector<float>(3, 65504.0f));
  for (DType dtype : {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16, DType::Int64, DType::Int32,
                      DType::UInt8, DType::Bool}) {
    EXPECT_EQ(zeros({3}, dtype).to_vector<double>(), std::vector<double>(3, 0.0)) << dtype_name(dtype);
    EXPECT_EQ(ones({3}, dtype).to_vector<double>(), std::vector<double>(3, 1.0)) << dtype_name(dtype);
  }
  Tensor like = iota_f32({2, 5}).to(DType::Int32);
  EXPECT_EQ(zeros_like(like).dtype(), DType::Int32);
  EXPECT_EQ(zeros_like(like).shape(), Shape({2, 5}));
  EXPECT_EQ(zeros_like(like).to_vector<int32_t>(), std::vector<int32_t>(10, 0));
  EXPECT_EQ(ones_like(like).to_vector<int32_t>(), std::vector<int32_t>(10, 1));
  EXPECT_EQ(empty_like(like).shape(), Shape({2, 5}));
  EXPECT_EQ(empty_like(like).dtype(), DType::Int32);
  EXPECT_FALSE(empty_like(like).shares_storage_with(like));
  EXPECT_ERROR_CONTAINS(zeros({2, -3}), "negative size");
}

TEST(Creation, ArangeRange) {
  Tensor a = arange(0.0, 5.0);
  EXPECT_EQ(a.dtype(), DType::Float32);
  EXPECT_EQ(a.shape(), Shape({5}));
  EXPECT_EQ(a.to_vector<float>(), std::vector<float>({0, 1, 2, 3, 4}));
  EXPECT_EQ(arange(1.0, 2.0, 0.25, DType::Float64).to_vector<double>(), std::vector<double>({1.0, 1.25, 1.5, 1.75}));
  EXPECT_EQ(arange(0.0, 1.0, 0.3, DType::Float64).numel(), 4);  // 0, .3, .6, .9 (end excluded)
  EXPECT_EQ(arange(5.0, 0.0, -2.0).to_vector<float>(), std::vector<float>({5, 3, 1}));
  EXPECT_EQ(arange(2.0, 2.0).numel(), 0);
  EXPECT_EQ(arange(3.0, 1.0).numel(), 0);  // wrong direction: empty, not negative
  EXPECT_EQ(arange(-2.0, 2.0, 1.0, DType::Int32).to_vector<int32_t>(), std::vector<int32_t>({-2, -1, 0, 1}));
  EXPECT_EQ(arange(0.0, 3.0, 1.0, DType::Int64).dtype(), DType::Int64);
  EXPECT_ERROR_CONTAINS(arange(0.0, 1.0, 0.0), "step must not be 0");
}

TEST(Creation, ArangeCount) {
  Tensor a = arange(int64_t{6});
  EXPECT_EQ(a.dtype(), DType::Int64);
  EXPECT_EQ(a.shape(), Shape({6}));
  EXPECT_EQ(a.to_vector<int64_t>(), std::vector<int64_t>({0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(arange(4).dtype(), DType::Int64);  // an int literal picks the count overload
  Tensor f = arange(int64_t{3}, DType::Float32);
  EXPECT_EQ(f.dtype(), DType::Float32);
  EXPECT_EQ(f.to_vector<float>(), std::vector<float>({0, 1, 2}));
  EXPECT_EQ(arange(int64_t{0}).numel(), 0);
  EXPECT_ERROR_CONTAINS(arange(int64_t{-1}), "negative length -1");
}

TEST(Creation, FromVector) {
  Tensor f = from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(f.dtype(), DType::Float32);
  EXPECT_EQ(f.shape(), Shape({2, 3}));
  EXPECT_EQ(f.at({1, 0}), 4.0);
  EXPECT_EQ(from_vector<double>({0.1}, {}).item(), 0.1);
  EXPECT_EQ(from_vector<int64_t>({-5, 5}, {2}).dtype(), DType::Int64);
  EXPECT_EQ(from_vector<int32_t>({-5, 5}, {2}).dtype(), DType::Int32);
  EXPECT_EQ(from_vector<uint8_t>({200}, {1, 1}).dtype(), DType::UInt8);
  EXPECT_EQ(from_vector<float>({}, {0, 4}).numel(), 0);
  // The vector is copied, not referenced.
  std::vector<float> src = {1, 2};
  Tensor t = from_vector(src, {2});
  src[0] = 100;
  EXPECT_EQ(t.at({0}), 1.0);
  EXPECT_ERROR_CONTAINS(from_vector<float>({1, 2, 3}, {2, 2}), "3 values do not fill shape (2, 2) (4 elements)");
  EXPECT_ERROR_CONTAINS(from_vector<float>({1, 2}, {}), "from_vector");
}

TEST(Creation, ScalarTensor) {
  Tensor s = scalar_tensor(3.5);
  EXPECT_EQ(s.dtype(), DType::Float32);
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.item(), 3.5);
  Tensor i = scalar_tensor(-4.0, DType::Int64);
  EXPECT_EQ(i.dtype(), DType::Int64);
  EXPECT_EQ(*i.data<int64_t>(), -4);
  EXPECT_EQ(scalar_tensor(1.0, DType::Bool).item(), 1.0);
}

TEST(Creation, EmptyWithZeroSizeDims) {
  Tensor e = empty({0});
  EXPECT_EQ(e.numel(), 0);
  EXPECT_EQ(e.shape(), Shape({0}));
  EXPECT_TRUE(e.defined());
  EXPECT_TRUE(e.is_contiguous());
  EXPECT_EQ(e.to_vector<float>(), std::vector<float>{});
  Tensor e2 = empty({3, 0, 2}, DType::Int64);
  EXPECT_EQ(e2.numel(), 0);
  EXPECT_EQ(e2.dim(), 3);
  EXPECT_EQ(e2.strides(), Shape({2, 2, 1}));
  EXPECT_EQ(e2.storage()->nbytes(), 0);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(e2.storage()->data()) % 64, 0u);
  // Views and copies of empty tensors work and stay empty.
  EXPECT_EQ(e2.view({0, 6}).shape(), Shape({0, 6}));
  EXPECT_EQ(e2.reshape({-1, 3}).shape(), Shape({0, 3}));
  EXPECT_EQ(e2.transpose(0, 2).contiguous().shape(), Shape({2, 0, 3}));
  EXPECT_EQ(e2.clone().numel(), 0);
  EXPECT_EQ(e2.to(DType::Float32).numel(), 0);
  EXPECT_EQ(e2.flatten().shape(), Shape({0}));
  EXPECT_EQ(zeros({0, 5}).numel(), 0);
  EXPECT_EQ(e2.to_vector<int64_t>(), std::vector<int64_t>{});
}

// ================================================================ element access

TEST(Access, ItemAtToVector) {
  Tensor t = from_vector<int32_t>({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(t.at({0, 0}), 1.0);
  EXPECT_EQ(t.at({1, 2}), 6.0);
  EXPECT_EQ(t.at({-1, -1}), 6.0);
  EXPECT_EQ(t.at({1, -3}), 4.0);
  EXPECT_EQ(t.transpose(0, 1).at({2, 1}), 6.0);
  EXPECT_EQ(t.select(1, 1).at({1}), 5.0);
  EXPECT_EQ(t.to_vector<int32_t>(), std::vector<int32_t>({1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(t.to_vector<double>(), std::vector<double>({1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(t.transpose(0, 1).to_vector<int64_t>(), std::vector<int64_t>({1, 4, 2, 5, 3, 6}));
  EXPECT_EQ(t.select(0, 1).select(0, 2).item(), 6.0);
  EXPECT_EQ(t.narrow(1, 2, 1).narrow(0, 0, 1).item(), 3.0);  // one element, two dims
  EXPECT_EQ(from_vector<double>({0.1}, {1}).item(), 0.1);
  EXPECT_EQ(from_vector<float>({0.1f}, {1}).item(), static_cast<double>(0.1f));
  Tensor h = full({1}, 1.5, DType::Float16);
  EXPECT_EQ(h.item(), 1.5);
  EXPECT_EQ(h.at({0}), 1.5);
  Tensor big = from_vector<int64_t>({int64_t(1) << 52}, {});
  EXPECT_EQ(big.item(), 4503599627370496.0);
}

TEST(Access, Errors) {
  Tensor t = from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_ERROR_CONTAINS(t.item(), "item: the tensor has 6 elements");
  EXPECT_ERROR_CONTAINS(t.item(), "not 1");
  EXPECT_ERROR_CONTAINS(empty({0}).item(), "has 0 elements");
  EXPECT_ERROR_CONTAINS(t.at({0}), "at: 1 indices for 2 dims");
  EXPECT_ERROR_CONTAINS(t.at({2, 0}), "out of range");
  EXPECT_ERROR_CONTAINS(t.at({0, 3}), "index 3 is out of range for dim 1 of size 3");
  EXPECT_ERROR_CONTAINS(t.size(2), "size: dim 2 is out of range");
  EXPECT_ERROR_CONTAINS(t.stride(-3), "stride: dim -3 is out of range");
}

TEST(Access, DataWithWrongDtype) {
  Tensor t = zeros({2});
  EXPECT_NE(t.data<float>(), nullptr);
  EXPECT_ERROR_CONTAINS(t.data<double>(), "data<float64>(): the tensor holds float32");
  EXPECT_ERROR_CONTAINS(t.data<double>(), ".to(DType)");
  EXPECT_ERROR_CONTAINS(t.data<int64_t>(), "data<int64>()");
  Tensor i = zeros({2}, DType::Int32);
  EXPECT_ERROR_CONTAINS(i.data<float>(), "the tensor holds int32");
  EXPECT_ERROR_CONTAINS(zeros({1}, DType::UInt8).data<bool>(), "data<bool>(): the tensor holds uint8");
}

// ================================================================ devices

TEST(Devices, ToSameDeviceIsItself) {
  Tensor t = iota_f32({3});
  Tensor same = t.to(Device::cpu());
  EXPECT_TRUE(same.shares_storage_with(t));
  EXPECT_EQ(Device::cpu().str(), "cpu");
  EXPECT_EQ(Device::cuda(1).str(), "cuda:1");
  EXPECT_NE(Device::cpu(), Device::cuda());
}

TEST(Devices, ToCudaWithoutBackend) {
  // This test binary never links the CUDA backend, so asking for the GPU must fail with advice.
  Tensor t = iota_f32({3});
  EXPECT_ERROR_CONTAINS(t.to(Device::cuda()), "cuda:0");
  EXPECT_ERROR_CONTAINS(t.to(Device::cuda()), "without the CUDA backend");
  EXPECT_ERROR_CONTAINS(t.to(Device::cuda()), "--config=cuda");
  EXPECT_ERROR_CONTAINS(empty({2}, DType::Float32, Device::cuda()), "no allocator for cuda:0");
}

TEST(Errors, MessagesCarryFileAndLine) {
  try {
    iota_f32({2}).squeeze(0);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("tensor/tensor.cc:"), std::string::npos) << what;
    EXPECT_EQ(what.rfind("squeeze", 0), 0u) << "the message comes first: " << what;
  }
}

}  // namespace
}  // namespace medtl
