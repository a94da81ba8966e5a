// The one loop every CPU elementwise kernel (copy, unary, binary, where) runs on: walks N operands
// that share an iteration shape, each with its own strides (0 where it is broadcast), in
// parallel over contiguous ranges of the flat element index.
//
// Before walking, dims are coalesced: two neighbouring dims merge when every operand steps
// through them as through one, so a contiguous tensor of any rank becomes a single 1-D run and
// the inner loop sees long runs it can vectorise.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "tensor/parallel.h"
#include "tensor/tensor.h"

namespace medtl::cpu {

template <int N>
struct StridedOperands {
  Shape shape;                           // iteration shape, innermost dim last
  std::array<Shape, N> strides;          // per operand, in elements, one per dim of `shape`
  std::array<char*, N> base;             // per operand, address of element 0
  std::array<int64_t, N> element_size;   // bytes
};

// Merges dims that every operand walks contiguously, and drops size-1 dims.
template <int N>
void coalesce_dims(StridedOperands<N>& ops) {
  Shape shape;
  std::array<Shape, N> strides;
  for (size_t d = 0; d < ops.shape.size(); ++d) {
    if (ops.shape[d] == 1) continue;
    bool merge = !shape.empty();
    for (int k = 0; k < N && merge; ++k)
      merge = strides[k].back() == ops.strides[k][d] * ops.shape[d];
    if (merge) {
      shape.back() *= ops.shape[d];
      for (int k = 0; k < N; ++k) strides[k].back() = ops.strides[k][d];
    } else {
      shape.push_back(ops.shape[d]);
      for (int k = 0; k < N; ++k) strides[k].push_back(ops.strides[k][d]);
    }
  }
  if (shape.empty()) {  // a single element
    shape.push_back(1);
    for (int k = 0; k < N; ++k) strides[k].push_back(0);
  }
  ops.shape = shape;
  ops.strides = strides;
}

// Operands from tensors already viewed (expand) to one common shape.
template <int N>
StridedOperands<N> make_operands(const std::array<const Tensor*, N>& tensors) {
  StridedOperands<N> ops;
  ops.shape = tensors[0]->shape();
  for (int k = 0; k < N; ++k) {
    MEDTL_CHECK(tensors[k]->shape() == ops.shape, "internal: operand ", k, " has shape ",
                shape_str(tensors[k]->shape()), ", iteration shape is ", shape_str(ops.shape));
    ops.strides[k] = tensors[k]->strides();
    ops.base[k] = static_cast<char*>(tensors[k]->raw_data());
    ops.element_size[k] = dtype_size(tensors[k]->dtype());
  }
  coalesce_dims(ops);
  return ops;
}

// Calls row(ptrs, byte_strides, n) for runs of n elements along the innermost dim; ptrs[k] is
// operand k's first element of the run. The elements each call covers depend on how threads
// split the range, so `row` must compute each element independently of the others.
template <int N, typename Row>
void for_each_row(const StridedOperands<N>& ops, Row&& row, int64_t grain = 32768) {
  const int64_t ndim = static_cast<int64_t>(ops.shape.size());
  const int64_t inner = ops.shape[ndim - 1];
  std::array<int64_t, N> inner_bytes;
  for (int k = 0; k < N; ++k) inner_bytes[k] = ops.strides[k][ndim - 1] * ops.element_size[k];
  const int64_t total = shape_numel(ops.shape);
  if (total == 0) return;

  parallel_for(0, total, grain, [&](int64_t begin, int64_t end) {
    // Multi-index of `begin`, then walk row by row.
    Shape index(ndim, 0);
    int64_t rest = begin;
    for (int64_t d = ndim - 1; d >= 0; --d) {
      index[d] = rest % ops.shape[d];
      rest /= ops.shape[d];
    }
    int64_t position = begin;
    while (position < end) {
      std::array<char*, N> ptrs;
      for (int k = 0; k < N; ++k) {
        int64_t elements = 0;
        for (int64_t d = 0; d < ndim; ++d) elements += index[d] * ops.strides[k][d];
        ptrs[k] = ops.base[k] + elements * ops.element_size[k];
      }
      const int64_t n = std::min(inner - index[ndim - 1], end - position);
      row(ptrs, inner_bytes, n);
      position += n;
      index[ndim - 1] += n;
      for (int64_t d = ndim - 1; d > 0 && index[d] == ops.shape[d]; --d) {
        index[d] = 0;
        ++index[d - 1];
      }
    }
  });
}

}  // namespace medtl::cpu
