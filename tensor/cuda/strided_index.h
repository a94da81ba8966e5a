// Index math of the GPU's generic elementwise and reduction kernels: linear output index -> element
// offset of each operand, for any strides, broadcasting and up to 8 dims after coalescing.
//
// Plain C++ (no CUDA headers), so it is built and tested on the host (tests/strided_index_test.cc)
// and compiled into the kernels: the mapping functions are MEDTL_HOST_DEVICE. The builders
// (make_indexer, broadcast_*, make_reduction_view) are host-only.
//
// Why a fixed capacity: a kernel gets the indexer by value as a launch parameter, so it must be
// a flat struct of fixed size (no std::vector). Eight dims cover every tensor of the framework;
// coalescing (merging neighbouring dims that every operand walks as one) usually leaves one or
// two, so a contiguous tensor of any rank costs no division at all.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "tensor/error.h"
#include "tensor/tensor.h"  // Shape, shape_str (plain C++)

#ifdef __CUDACC__
#define MEDTL_HOST_DEVICE __host__ __device__
#else
#define MEDTL_HOST_DEVICE
#endif

namespace medtl::cuda {

constexpr int kMaxIndexDims = 8;

// Maps a linear index over an iteration shape (row-major) to N operands' element offsets.
// Dims are stored innermost first (dim 0 is the fastest-varying), after coalescing.
template <int N>
struct StridedIndexer {
  int32_t ndim = 0;       // coalesced dims; 0: a single element, every offset is 0
  bool index32 = true;    // numel fits in 32 bits: the divisions run on uint32 (cheaper on a GPU)
  int64_t numel = 1;      // elements of the iteration shape
  int64_t sizes[kMaxIndexDims] = {};
  int64_t strides[N][kMaxIndexDims] = {};  // in elements, per operand

  // out[k] = operand k's offset (in elements, from its first element) of element `linear`,
  // 0 <= linear < numel.
  MEDTL_HOST_DEVICE void offsets(int64_t linear, int64_t* out) const {
    for (int k = 0; k < N; ++k) out[k] = 0;
    if (index32) walk<uint32_t>(static_cast<uint32_t>(linear), out);
    else walk<uint64_t>(static_cast<uint64_t>(linear), out);
  }

  // The offset of a one-operand indexer.
  MEDTL_HOST_DEVICE int64_t offset(int64_t linear) const {
    int64_t out[N];
    offsets(linear, out);
    return out[0];
  }

 private:
  // Peels dims off the linear index, innermost first; the outermost dim needs no division. The
  // loop has a constant bound so that it unrolls and every array index is a constant (dynamic
  // indexing would copy the launch parameter to local memory).
  template <typename Index>
  MEDTL_HOST_DEVICE void walk(Index rest, int64_t* out) const {
#ifdef __CUDA_ARCH__
#pragma unroll
#endif
    for (int d = 0; d < kMaxIndexDims; ++d) {
      if (d >= ndim) break;
      Index here = rest;
      if (d + 1 < ndim) {
        const Index size = static_cast<Index>(sizes[d]);
        const Index q = rest / size;
        here = rest - q * size;
        rest = q;
      }
      for (int k = 0; k < N; ++k) out[k] += static_cast<int64_t>(here) * strides[k][d];
    }
  }
};

// ---------------------------------------------------------------- host-side builders

// The NumPy broadcast of two shapes (aligned at the last dim; sizes equal or one of them 1).
// Throws naming `op`, both shapes and the dim that disagrees.
inline std::vector<int64_t> broadcast_shape(const char* op, const std::vector<int64_t>& a,
                                            const std::vector<int64_t>& b) {
  const size_t n = a.size() > b.size() ? a.size() : b.size();
  std::vector<int64_t> out(n);
  for (size_t d = 0; d < n; ++d) {
    const int64_t sa = d + a.size() >= n ? a[d + a.size() - n] : 1;
    const int64_t sb = d + b.size() >= n ? b[d + b.size() - n] : 1;
    MEDTL_CHECK(sa == sb || sa == 1 || sb == 1, op, ": shapes ", shape_str(a), " and ", shape_str(b),
                " do not broadcast: at dim ", d, " of the result (dim ",
                static_cast<int64_t>(d) - static_cast<int64_t>(n), " counting from the end) sizes are ", sa, " and ",
                sb, "; they must be equal or one of them 1");
    out[d] = sa == 1 ? sb : sa;
  }
  return out;
}

// An operand of shape `shape` and `strides` read as if expanded to `out_shape`: stride 0 for the
// missing leading dims and for every size-1 dim (its index is always 0, so any stride would do;
// 0 lets the dim merge with its neighbours). Throws unless shape broadcasts to out_shape.
inline std::vector<int64_t> broadcast_strides(const char* op, const std::vector<int64_t>& out_shape,
                                              const std::vector<int64_t>& shape,
                                              const std::vector<int64_t>& strides) {
  MEDTL_CHECK(shape.size() == strides.size(), op, ": internal: ", shape.size(), " sizes but ", strides.size(),
              " strides");
  MEDTL_CHECK(shape.size() <= out_shape.size(), op, ": an operand with ", shape.size(),
              " dims cannot broadcast to a result with ", out_shape.size());
  const size_t lead = out_shape.size() - shape.size();
  std::vector<int64_t> out(out_shape.size(), 0);
  for (size_t d = lead; d < out_shape.size(); ++d) {
    const int64_t size = shape[d - lead];
    MEDTL_CHECK(size == out_shape[d] || size == 1, op, ": an operand's dim ", d - lead, " has size ", size,
                ", which does not broadcast to size ", out_shape[d], " (dim ", d, " of the result)");
    out[d] = size == 1 ? 0 : strides[d - lead];
  }
  return out;
}

// An indexer over `shape` for N operands; strides[k] are operand k's strides over `shape` (same
// rank; stride 0 where it broadcasts). Size-1 dims are dropped and neighbours merged where every
// operand steps through them as through one dim (the CPU's cpu::coalesce_dims rule), so the
// linear index keeps its row-major meaning. Throws when more than kMaxIndexDims dims remain.
template <int N>
StridedIndexer<N> make_indexer(const std::vector<int64_t>& shape, const std::array<std::vector<int64_t>, N>& strides) {
  for (int k = 0; k < N; ++k)
    MEDTL_CHECK(strides[k].size() == shape.size(), "StridedIndexer: internal: operand ", k, " has ",
                strides[k].size(), " strides for ", shape.size(), " dims");
  StridedIndexer<N> idx;
  int64_t numel = 1;
  for (int64_t s : shape) numel *= s;
  idx.numel = numel;
  idx.index32 = numel <= int64_t{0xffffffff};
  if (numel == 0) {  // nothing is ever indexed; any layout of dims would do
    idx.ndim = 1;
    return idx;
  }
  // Outermost first, as in the CPU's coalesce_dims.
  std::vector<int64_t> sizes;
  std::array<std::vector<int64_t>, N> merged;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !sizes.empty();
    for (int k = 0; k < N && merge; ++k) merge = merged[k].back() == strides[k][d] * shape[d];
    if (merge) {
      sizes.back() *= shape[d];
      for (int k = 0; k < N; ++k) merged[k].back() = strides[k][d];
    } else {
      sizes.push_back(shape[d]);
      for (int k = 0; k < N; ++k) merged[k].push_back(strides[k][d]);
    }
  }
  const int64_t ndim = static_cast<int64_t>(sizes.size());
  MEDTL_CHECK(ndim <= kMaxIndexDims, "GPU kernels index at most ", kMaxIndexDims,
              " dims, and this operation's ", shape.size(), "-dim iteration space still has ", ndim,
              " after merging the dims its operands walk contiguously; make the operands contiguous "
              "(.contiguous()) or reshape to fewer dims");
  idx.ndim = static_cast<int32_t>(ndim);
  for (int64_t d = 0; d < ndim; ++d) {  // reversed: innermost first
    idx.sizes[d] = sizes[ndim - 1 - d];
    for (int k = 0; k < N; ++k) idx.strides[k][d] = merged[k][ndim - 1 - d];
  }
  return idx;
}

// A reduction of x over some dims, seen as `outputs` runs of `length` elements. Output m (the
// row-major index over the kept dims) reduces the elements at x offsets
//   outer.offset(m) + inner.offset(j),  j = 0 .. length - 1,
// where j is the row-major index over the reduced dims. So the order of j (and with it any
// summation order built on j) depends on the shape only, never on x's strides.
struct ReductionView {
  StridedIndexer<1> outer;  // over the kept dims
  StridedIndexer<1> inner;  // over the reduced dims
  int64_t outputs = 1;
  int64_t length = 1;
  std::vector<int64_t> out_shape;  // kept dims; reduced dims as 1 when keepdim
};

// shape, strides: x's. dims: the reduced dims, sorted, unique, each in [0, ndim) (an empty list
// reduces nothing: every output is one element). Throws on a bad list.
inline ReductionView make_reduction_view(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides,
                                         const std::vector<int64_t>& dims, bool keepdim) {
  const int64_t ndim = static_cast<int64_t>(shape.size());
  MEDTL_CHECK(strides.size() == shape.size(), "reduction: internal: ", shape.size(), " sizes but ", strides.size(),
              " strides");
  std::vector<bool> reduced(ndim, false);
  for (size_t i = 0; i < dims.size(); ++i) {
    MEDTL_CHECK(dims[i] >= 0 && dims[i] < ndim, "reduction: dim ", dims[i], " is out of range for ", ndim,
                " dims (dims must be wrapped to [0, ndim) before the GPU kernel)");
    MEDTL_CHECK(i == 0 || dims[i] > dims[i - 1], "reduction: dims must be sorted and unique, got dim ", dims[i],
                " after ", i == 0 ? 0 : dims[i - 1]);
    reduced[dims[i]] = true;
  }
  ReductionView view;
  std::vector<int64_t> kept_shape, kept_strides, red_shape, red_strides;
  for (int64_t d = 0; d < ndim; ++d) {
    if (reduced[d]) {
      red_shape.push_back(shape[d]);
      red_strides.push_back(strides[d]);
      view.length *= shape[d];
      if (keepdim) view.out_shape.push_back(1);
    } else {
      kept_shape.push_back(shape[d]);
      kept_strides.push_back(strides[d]);
      view.outputs *= shape[d];
      view.out_shape.push_back(shape[d]);
    }
  }
  view.outer = make_indexer<1>(kept_shape, {kept_strides});
  view.inner = make_indexer<1>(red_shape, {red_strides});
  return view;
}

}  // namespace medtl::cuda
