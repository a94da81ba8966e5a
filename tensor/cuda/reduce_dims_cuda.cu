// Reductions over any dims and layouts (reduce_dims_cuda.h) on two kernels -- one thread per
// output, or one block per (output, chunk) with a fixed shared-memory tree -- parameterised by a
// Reducer (what is accumulated and how two partials combine) and a Sink (where a result goes).
// No atomics: which elements meet in which order follows from (outputs, reduced extent) alone.
#include "tensor/cuda/reduce_dims_cuda.h"

#include <algorithm>

#include "tensor/cuda/strided_kernels.h"

namespace medtl::cuda {
namespace {

using detail::element_ptr;

constexpr int kBlock = 256;             // threads per block and leaves of the tree; a power of two
constexpr int64_t kChunk = 65536;       // elements of one block's share of a long run
constexpr int64_t kMaxGrid = 65535;
// One thread per output when runs are short (global average pooling: 49 elements) or when there
// are so many outputs that they fill the GPU on their own; a block per output otherwise.
constexpr int64_t kSerialAlways = 64;
constexpr int64_t kSerialManyOutputs = 65536;
constexpr int64_t kSerialMaxLength = 2048;

bool serial_strategy(int64_t outputs, int64_t length) {
  return length <= kSerialAlways || (outputs >= kSerialManyOutputs && length <= kSerialMaxLength);
}

// Output m, element j of its run lives at x[outer.offset(m) + inner.offset(j)]. A block's item is
// (m, chunk): elements [chunk * chunk_length, min(length, (chunk + 1) * chunk_length)).
struct Geometry {
  StridedIndexer<1> outer;
  StridedIndexer<1> inner;
  int64_t outputs = 0;
  int64_t length = 0;
  int64_t chunk_length = 1;
  int64_t chunks = 1;
};

// ---------------------------------------------------------------- reducers

// Sum of term(value, m) in Acc.
template <typename T, typename AccT, typename Term>
struct SumReducer {
  using In = T;
  using Acc = AccT;
  Term term;
  __device__ Acc identity() const { return Acc(0); }
  __device__ Acc accumulate(Acc acc, T v, int64_t m, int64_t) const { return acc + term(v, m); }
  __device__ Acc combine(Acc a, Acc b) const { return a + b; }
};

template <typename Acc>
struct Widen {
  template <typename T> __device__ Acc operator()(T v, int64_t) const { return static_cast<Acc>(v); }
};

// var's second pass: (x - mean of its output)^2 in double.
struct SquaredDeviation {
  const double* means;
  template <typename T> __device__ double operator()(T v, int64_t m) const {
    const double d = static_cast<double>(v) - means[m];
    return d * d;
  }
};

// A candidate maximum: value and its index in the run; index -1 is "none yet".
template <typename T>
struct ArgMax {
  T value;
  int64_t index;
};

// The CPU's choice (first maximum, NaN is the maximum, first NaN wins) as a commutative,
// associative selection: the winner of a set is the same whichever way the set is split, so the
// tree picks exactly what one serial scan picks.
template <typename T>
__device__ ArgMax<T> better(ArgMax<T> a, ArgMax<T> b) {
  if (a.index < 0) return b;
  if (b.index < 0) return a;
  const bool a_nan = a.value != a.value, b_nan = b.value != b.value;
  if (a_nan || b_nan) {
    if (a_nan && b_nan) return a.index < b.index ? a : b;
    return a_nan ? a : b;
  }
  if (a.value > b.value) return a;
  if (b.value > a.value) return b;
  return a.index < b.index ? a : b;  // equal (signed zeros too): the first
}

template <typename T>
struct MaxReducer {
  using In = T;
  using Acc = ArgMax<T>;
  __device__ Acc identity() const { return Acc{T(0), -1}; }
  __device__ Acc accumulate(Acc acc, T v, int64_t, int64_t j) const { return better(acc, Acc{v, j}); }
  __device__ Acc combine(Acc a, Acc b) const { return better(a, b); }
};

// The second pass of a chunked reduction: the chunks' partials, combined.
template <typename R>
struct CombinePartials {
  using In = typename R::Acc;
  using Acc = typename R::Acc;
  R inner;
  __device__ Acc identity() const { return inner.identity(); }
  __device__ Acc accumulate(Acc acc, In v, int64_t, int64_t) const { return inner.combine(acc, v); }
  __device__ Acc combine(Acc a, Acc b) const { return inner.combine(a, b); }
};

// ---------------------------------------------------------------- sinks: (output or item, result)

template <typename T, typename Acc>
struct StoreSink {  // sum: int64 from uint64 wraps, floats round once
  T* out;
  __device__ void operator()(int64_t m, Acc acc) const { out[m] = static_cast<T>(acc); }
};
template <typename T>
struct DivideSink {  // mean (divisor = length: 0/0 = NaN for nothing) and var (divisor = N - correction)
  T* out;
  double divisor;
  __device__ void operator()(int64_t m, double acc) const { out[m] = static_cast<T>(acc / divisor); }
};
struct MeanBufferSink {  // var's first pass: the means, kept in double
  double* means;
  double length;
  __device__ void operator()(int64_t m, double acc) const { means[m] = acc / length; }
};
template <typename Acc>
struct PartialSink {
  Acc* partials;  // (outputs, chunks)
  __device__ void operator()(int64_t item, Acc acc) const { partials[item] = acc; }
};
template <typename T>
struct MaxSink {
  T* values;
  int64_t* indices;  // may be null
  __device__ void operator()(int64_t m, ArgMax<T> acc) const {
    values[m] = acc.value;
    if (indices) indices[m] = acc.index;
  }
};

// ---------------------------------------------------------------- kernels

// One thread per output: elements 0, 1, ..., length - 1 in order.
template <typename R, typename Sink>
__global__ void reduce_serial_kernel(const typename R::In* __restrict__ x, Geometry g, R r, Sink sink) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t m = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; m < g.outputs; m += step) {
    const typename R::In* base = x + g.outer.offset(m);
    typename R::Acc acc = r.identity();
    for (int64_t j = 0; j < g.length; ++j) acc = r.accumulate(acc, base[g.inner.offset(j)], m, j);
    sink(m, acc);
  }
}

// One block per item (output, chunk): thread t takes elements start + t, start + t + kBlock, ...
// in order, then the kBlock partials meet in a fixed halving tree.
template <typename R, typename Sink>
__global__ void reduce_block_kernel(const typename R::In* __restrict__ x, Geometry g, R r, Sink sink) {
  using Acc = typename R::Acc;
  __shared__ Acc partial[kBlock];
  const int64_t items = g.outputs * g.chunks;
  for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {  // uniform across the block
    const int64_t m = item / g.chunks;
    const int64_t start = (item - m * g.chunks) * g.chunk_length;
    const int64_t end = start + g.chunk_length < g.length ? start + g.chunk_length : g.length;
    const typename R::In* base = x + g.outer.offset(m);
    Acc acc = r.identity();
    for (int64_t j = start + threadIdx.x; j < end; j += kBlock) acc = r.accumulate(acc, base[g.inner.offset(j)], m, j);
    partial[threadIdx.x] = acc;
    __syncthreads();
    for (int width = kBlock / 2; width > 0; width /= 2) {
      if (threadIdx.x < width) partial[threadIdx.x] = r.combine(partial[threadIdx.x], partial[threadIdx.x + width]);
      __syncthreads();
    }
    if (threadIdx.x == 0) sink(item, partial[0]);
    __syncthreads();  // partial[] is reused by this block's next item
  }
}

template <typename R, typename Sink>
void launch_block(const typename R::In* x, const Geometry& g, const R& r, const Sink& sink) {
  // The grid changes which block takes an item, never how an item is reduced.
  const unsigned grid = static_cast<unsigned>(std::min(g.outputs * g.chunks, kMaxGrid));
  reduce_block_kernel<R, Sink><<<grid, kBlock, 0, detail::stream()>>>(x, g, r, sink);
  MEDTL_CUDA_CHECK(cudaGetLastError());
}

// Reduces every run of `view` over x's elements (from `x`, its first element) with reducer r,
// handing each output's result to sink. The strategy depends on (outputs, length) only.
template <typename R, typename Sink>
void run_reduction(const typename R::In* x, const ReductionView& view, const R& r, const Sink& sink, Device device) {
  Geometry g;
  g.outer = view.outer;
  g.inner = view.inner;
  g.outputs = view.outputs;
  g.length = view.length;
  if (g.outputs == 0) return;
  if (serial_strategy(g.outputs, g.length)) {
    const unsigned grid = static_cast<unsigned>(std::min((g.outputs + kBlock - 1) / kBlock, kMaxGrid));
    reduce_serial_kernel<R, Sink><<<grid, kBlock, 0, detail::stream()>>>(x, g, r, sink);
    MEDTL_CUDA_CHECK(cudaGetLastError());
    return;
  }
  if (g.length <= kChunk) {
    g.chunk_length = g.length;
    launch_block(x, g, r, sink);
    return;
  }
  // Long runs: fixed chunks into (outputs, chunks) partials, then one block per output over them.
  using Acc = typename R::Acc;
  g.chunk_length = kChunk;
  g.chunks = (g.length + kChunk - 1) / kChunk;
  Tensor partials = empty({g.outputs * g.chunks * static_cast<int64_t>(sizeof(Acc))}, DType::UInt8, device);
  Acc* p = reinterpret_cast<Acc*>(detail::byte_ptr(partials));
  launch_block(x, g, r, PartialSink<Acc>{p});
  Geometry g2;
  g2.outputs = g.outputs;
  g2.length = g.chunks;
  g2.chunk_length = g.chunks;
  g2.outer = make_indexer<1>({g.outputs}, {Shape{g.chunks}});
  g2.inner = make_indexer<1>({g.chunks}, {Shape{1}});
  launch_block(static_cast<const Acc*>(p), g2, CombinePartials<R>{r}, sink);
  // `partials` returns to this stream's free list: stream order keeps it valid for the kernels.
}

// ---------------------------------------------------------------- argument handling

// The dims to reduce: empty = all; a 0-dim x reduces nothing (it accepts dim 0, as the CPU).
std::vector<int64_t> resolve_dims(const char* op, const Tensor& x, const std::vector<int64_t>& dims) {
  if (x.dim() == 0) {
    for (int64_t d : dims)
      MEDTL_CHECK(d == 0 || d == -1, op, ": dim ", d, " is out of range for a 0-dim tensor (0 and -1 are allowed)");
    return {};
  }
  if (dims.empty()) {
    std::vector<int64_t> all(x.dim());
    for (int64_t d = 0; d < x.dim(); ++d) all[d] = d;
    return all;
  }
  return dims;  // make_reduction_view checks range, order and uniqueness
}

// What a sum of T accumulates in: double for floats, uint64 for int64 (wraps, no UB).
template <typename T> using SumAcc = std::conditional_t<std::is_same_v<T, int64_t>, uint64_t, double>;

// sum (is_mean false) or mean over prepared views.
Tensor sum_or_mean(const char* op, const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, bool is_mean) {
  detail::check_gpu(op, "x", x);
  if (is_mean) dispatch_float(x.dtype(), op, [](auto) {});  // throws unless float32/float64
  const ReductionView view = make_reduction_view(x.shape(), x.strides(), resolve_dims(op, x, dims), keepdim);
  init();
  detail::DeviceGuard guard(x.device().index);
  Tensor out;
  dispatch_sum_types(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = SumAcc<T>;
    out = empty(view.out_shape, x.dtype(), x.device());
    const SumReducer<T, Acc, Widen<Acc>> reducer{Widen<Acc>{}};
    if constexpr (std::is_floating_point_v<T>) {
      if (is_mean) {
        run_reduction(element_ptr<T>(x), view, reducer, DivideSink<T>{element_ptr<T>(out), static_cast<double>(view.length)},
                      x.device());
        return;
      }
    }
    run_reduction(element_ptr<T>(x), view, reducer, StoreSink<T, Acc>{element_ptr<T>(out)}, x.device());
  });
  return out;
}

// values and (when indices_wanted) indices of the max over `dims` (one dim, or all).
ops::MaxResult max_over(const char* op, const Tensor& x, const std::vector<int64_t>& dims, bool keepdim,
                        bool indices_wanted) {
  const ReductionView view = make_reduction_view(x.shape(), x.strides(), dims, keepdim);
  MEDTL_CHECK(view.length > 0, op, ": cannot reduce over zero elements (shape ", shape_str(x.shape()),
              "): the maximum of nothing is undefined");
  init();
  detail::DeviceGuard guard(x.device().index);
  ops::MaxResult result;
  dispatch_sum_types(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    result.values = empty(view.out_shape, x.dtype(), x.device());
    if (indices_wanted) result.indices = empty(view.out_shape, DType::Int64, x.device());
    run_reduction(element_ptr<T>(x), view, MaxReducer<T>{},
                  MaxSink<T>{element_ptr<T>(result.values), indices_wanted ? element_ptr<int64_t>(result.indices) : nullptr},
                  x.device());
  });
  return result;
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return sum_or_mean("cuda::sum", x, dims, keepdim, /*is_mean=*/false);
}

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return sum_or_mean("cuda::mean", x, dims, keepdim, /*is_mean=*/true);
}

// Two passes with the same strategy: the means (double, one per output), then the squared
// deviations from them, divided by max(0, N - correction).
Tensor var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction, bool keepdim) {
  const char* op = "cuda::var";
  detail::check_gpu(op, "x", x);
  dispatch_float(x.dtype(), op, [](auto) {});
  const ReductionView view = make_reduction_view(x.shape(), x.strides(), resolve_dims(op, x, dims), keepdim);
  init();
  detail::DeviceGuard guard(x.device().index);
  Tensor out;
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    out = empty(view.out_shape, x.dtype(), x.device());
    if (view.outputs == 0) return;
    Tensor means = empty({view.outputs}, DType::Float64, x.device());
    const double length = static_cast<double>(view.length);
    run_reduction(element_ptr<T>(x), view, SumReducer<T, double, Widen<double>>{Widen<double>{}},
                  MeanBufferSink{element_ptr<double>(means), length}, x.device());
    const double divisor = static_cast<double>(std::max<int64_t>(0, view.length - correction));
    run_reduction(element_ptr<T>(x), view,
                  SumReducer<T, double, SquaredDeviation>{SquaredDeviation{element_ptr<double>(means)}},
                  DivideSink<T>{element_ptr<T>(out), divisor}, x.device());
  });
  return out;
}

ops::MaxResult max(const Tensor& x, int64_t dim, bool keepdim) {
  const char* op = "cuda::max";
  detail::check_gpu(op, "x", x);
  std::vector<int64_t> dims;
  if (x.dim() == 0) {
    MEDTL_CHECK(dim == 0 || dim == -1, op, ": dim ", dim, " is out of range for a 0-dim tensor (0 and -1 are allowed)");
  } else {
    MEDTL_CHECK(dim >= 0 && dim < x.dim(), op, ": dim ", dim, " is out of range for shape ", shape_str(x.shape()),
                " (wrap it to [0, ", x.dim(), ") first)");
    dims.push_back(dim);
  }
  return max_over(op, x, dims, keepdim, /*indices_wanted=*/true);
}

Tensor max_all(const Tensor& x) {
  const char* op = "cuda::max_all";
  detail::check_gpu(op, "x", x);
  return max_over(op, x, resolve_dims(op, x, {}), /*keepdim=*/false, /*indices_wanted=*/false).values;
}

}  // namespace medtl::cuda
