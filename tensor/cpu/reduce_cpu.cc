// CPU reductions (sum, mean, var, max/argmax, sum_to) in a fixed order: bit-identical for any thread count.
//
// Layout: every reduction first views x as M runs of R elements, (M outputs, R reduced), by
// permuting the kept dims first and the reduced dims last; the view is copied to row-major only
// when it is not already laid out that way. Output m then reduces the contiguous run
// x[m*R, (m+1)*R), whose order is the row-major order of the reduced dims whatever x's strides
// are, so a permuted or sliced input gives exactly the bits its contiguous copy gives.
//
// Summation order (the determinism contract, see ops/reduce.h): a run is cut into chunks of
// kChunk elements at fixed offsets. Element i of a chunk goes to accumulator lane i % kLanes; the
// lanes are folded by a fixed halving tree (lane l += lane l + w, for w = kLanes/2, ..., 1); the
// chunk sums of a run are combined by a fixed pairwise tree (halve, sum each half, add). Threads
// decide only which (output, chunk) pairs each one computes, never the order inside one.
#include <algorithm>
#include <type_traits>
#include <vector>

#include "tensor/backend.h"
#include "tensor/dispatch.h"
#include "tensor/ops/reduce.h"
#include "tensor/parallel.h"

namespace medtl::ops {
namespace {

constexpr int64_t kChunk = 4096;   // elements per chunk: a constant, never derived from threads
constexpr int kLanes = 16;         // interleaved accumulators: 4 SSE vectors of float, 8 of double
constexpr int64_t kGrain = 32768;  // elements of work that make a thread worth starting

// What a run is summed in. float32 accumulates in float32: the lanes keep each serial chain to
// kChunk / kLanes = 256 additions and the trees add O(log n) more, so the error stays near
// float32's rounding (checked against a double reference in the tests). Widening to double halves
// the vector width (SSE only under -march=x86-64-v2) and adds conversions: measured ~3x slower
// on cache-resident data and ~20% slower on a 64M-element sum from memory. Int64 sums in uint64
// so that overflow wraps (two's complement) rather than being undefined behaviour.
template <typename T> struct Accum { using type = T; };
template <> struct Accum<int64_t> { using type = uint64_t; };

void check_input(const Tensor& x, const char* op) {
  MEDTL_CHECK(x.defined(), op, ": the tensor is undefined (default-constructed)");
  MEDTL_CHECK(x.device().is_cpu(), op, ": the CPU kernel got a tensor on ", x.device().str());
}

// The mask's dims as a sorted list: what DeviceBackend's reductions take.
std::vector<int64_t> mask_dims(const std::vector<bool>& mask) {
  std::vector<int64_t> dims;
  for (size_t d = 0; d < mask.size(); ++d)
    if (mask[d]) dims.push_back(static_cast<int64_t>(d));
  return dims;
}

// Which dims to reduce, as a mask over x's dims: dims empty = all. Throws on a bad or repeated
// dim. A 0-dim tensor accepts dim 0 and -1 (like PyTorch), which reduce nothing.
std::vector<bool> reduce_mask(const Tensor& x, const std::vector<int64_t>& dims, const char* op) {
  const int64_t ndim = x.dim();
  if (dims.empty()) return std::vector<bool>(ndim, true);
  std::vector<bool> seen(std::max<int64_t>(ndim, 1), false);
  for (int64_t dim : dims) {
    const int64_t d = wrap_dim(dim, std::max<int64_t>(ndim, 1), op);
    MEDTL_CHECK(!seen[d], op, ": dim ", dim, " (dim ", d, " of shape ", shape_str(x.shape()),
                ") appears more than once in dims ", shape_str(dims));
    seen[d] = true;
  }
  seen.resize(ndim);
  return seen;
}

// x as M contiguous runs of R elements. data: (kept dims..., reduced dims...), row-major.
struct Runs {
  Tensor data;
  int64_t outputs = 1;  // M
  int64_t length = 1;   // R
  Shape out_shape;      // kept dims, with reduced dims as 1 when keepdim
};

Runs arrange(const Tensor& x, const std::vector<bool>& mask, bool keepdim) {
  Runs runs;
  std::vector<int64_t> perm;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (!mask[d]) {
      perm.push_back(d);
      runs.outputs *= x.size(d);
      runs.out_shape.push_back(x.size(d));
    } else if (keepdim) {
      runs.out_shape.push_back(1);
    }
  }
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (mask[d]) {
      perm.push_back(d);
      runs.length *= x.size(d);
    }
  }
  runs.data = x.permute(perm).contiguous();  // a view when the reduced dims are already innermost
  return runs;
}

// Sum of term(x[i]) for i in [0, n), n <= kChunk, in the fixed lane order described above.
template <typename Acc, typename T, typename Term>
Acc chunk_sum(const T* x, int64_t n, const Term& term) {
  Acc lane[kLanes] = {};
  int64_t i = 0;
  // Fully unrolled, so the lanes stay in vector registers (rolled, GCC keeps them in memory).
  static_assert(kLanes == 16, "the unroll pragma below spells out kLanes");
  for (; i + kLanes <= n; i += kLanes) {
#pragma GCC unroll 16
    for (int l = 0; l < kLanes; ++l) lane[l] += term(x[i + l]);
  }
  for (int l = 0; i + l < n; ++l) lane[l] += term(x[i + l]);
  for (int width = kLanes / 2; width > 0; width /= 2)
    for (int l = 0; l < width; ++l) lane[l] += lane[l + width];
  return lane[0];
}

// Fixed pairwise tree over n >= 1 partial sums: depends on n only.
template <typename Acc>
Acc pairwise(const Acc* p, int64_t n) {
  if (n == 1) return p[0];
  const int64_t half = n / 2;
  return pairwise(p, half) + pairwise(p + half, n - half);
}

// The one summation core of sum, mean and var. For each run m of x (M runs of R), sums
// term_for(m)(x) over the run in the fixed order and calls finish(m, total). Parallel over
// (run, chunk) pairs into a partials buffer, then over runs to combine; when a run is a single
// chunk the partial is the total and the second pass is skipped (same bits either way).
template <typename Acc, typename T, typename TermFor, typename Finish>
void chunked_sum(const T* x, int64_t M, int64_t R, const TermFor& term_for, const Finish& finish) {
  const int64_t chunks = (R + kChunk - 1) / kChunk;
  if (chunks <= 1) {
    parallel_for(0, M, std::max<int64_t>(1, kGrain / std::max<int64_t>(R, 1)), [&](int64_t begin, int64_t end) {
      for (int64_t m = begin; m < end; ++m) finish(m, chunk_sum<Acc>(x + m * R, R, term_for(m)));
    });
    return;
  }
  std::vector<Acc> partial(M * chunks);  // (M, chunks)
  parallel_for(0, M * chunks, kGrain / kChunk, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      const int64_t m = k / chunks, start = (k % chunks) * kChunk;
      partial[k] = chunk_sum<Acc>(x + m * R + start, std::min(kChunk, R - start), term_for(m));
    }
  });
  parallel_for(0, M, std::max<int64_t>(1, kGrain / chunks), [&](int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m) finish(m, pairwise(partial.data() + m * chunks, chunks));
  });
}

// sum (divisor 0) or mean (divisor R) over prepared runs.
Tensor sum_or_mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, bool is_mean) {
  const char* op = is_mean ? "mean" : "sum";
  MEDTL_CHECK(x.defined(), op, ": the tensor is undefined (default-constructed)");
  const auto mask = reduce_mask(x, dims, op);
  if (DeviceBackend* gpu = backend_for(op, {&x}))
    return is_mean ? gpu->mean(x, mask_dims(mask), keepdim) : gpu->sum(x, mask_dims(mask), keepdim);
  check_input(x, op);
  if (is_mean) dispatch_float(x.dtype(), op, [](auto) {});  // throws unless float32/float64, before any copy
  const Runs runs = arrange(x, mask, keepdim);
  Tensor out = empty(runs.out_shape, x.dtype());
  dispatch_sum_types(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = typename Accum<T>::type;
    const int64_t R = runs.length;
    T* o = out.data<T>();
    const T* in = runs.outputs * R > 0 ? runs.data.data<T>() : nullptr;
    const auto term_for = [](int64_t) { return [](T v) { return static_cast<Acc>(v); }; };
    chunked_sum<Acc>(in, runs.outputs, R, term_for, [&](int64_t m, Acc total) {
      // mean over nothing is 0/0 = NaN, like PyTorch.
      if constexpr (std::is_floating_point_v<T>)
        o[m] = is_mean ? static_cast<T>(static_cast<double>(total) / static_cast<double>(R)) : static_cast<T>(total);
      else
        o[m] = static_cast<T>(total);
    });
  });
  return out;
}

// Index of the first maximum of x[0, n), n >= 1; a NaN counts as the maximum and the first NaN
// wins (PyTorch's rule: `!(v <= best)` replaces, a NaN stops the scan).
template <typename T>
int64_t argmax_run(const T* x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!(x[i] <= x[best])) {
      best = i;
      if (x[i] != x[i]) break;
    }
  }
  return best;
}

// Max over runs: values (M) and, if wanted, Int64 indices (M) into the run. Chunks are scanned in
// parallel, then each run's chunk winners are merged in chunk order with the same rule, which
// picks exactly what one serial scan would.
template <typename T>
void max_runs(const T* x, int64_t M, int64_t R, T* values, int64_t* indices) {
  const int64_t chunks = (R + kChunk - 1) / kChunk;
  std::vector<int64_t> winner(M * chunks);  // (M, chunks): index into the run
  parallel_for(0, M * chunks, std::max<int64_t>(1, kGrain / std::min(kChunk, R)), [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      const int64_t m = k / chunks, start = (k % chunks) * kChunk;
      winner[k] = start + argmax_run(x + m * R + start, std::min(kChunk, R - start));
    }
  });
  parallel_for(0, M, std::max<int64_t>(1, kGrain / chunks), [&](int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m) {
      const T* run = x + m * R;
      int64_t best = winner[m * chunks];
      for (int64_t c = 1; c < chunks && run[best] == run[best]; ++c)
        if (!(run[winner[m * chunks + c]] <= run[best])) best = winner[m * chunks + c];
      values[m] = run[best];
      if (indices) indices[m] = best;
    }
  });
}

// values and (when `with_indices`) indices for the runs of x reduced by `mask`.
MaxResult max_over(const Tensor& x, const std::vector<bool>& mask, bool keepdim, bool with_indices, const char* op) {
  const Runs runs = arrange(x, mask, keepdim);
  MEDTL_CHECK(runs.length > 0, op, ": cannot reduce over zero elements (shape ", shape_str(x.shape()),
              "): the maximum of nothing is undefined");
  MaxResult result;
  result.values = empty(runs.out_shape, x.dtype());
  if (with_indices) result.indices = empty(runs.out_shape, DType::Int64);
  dispatch_sum_types(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (runs.outputs == 0) return;
    max_runs(runs.data.data<T>(), runs.outputs, runs.length, result.values.data<T>(),
             with_indices ? result.indices.data<int64_t>() : nullptr);
  });
  return result;
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return sum_or_mean(x, dims, keepdim, /*is_mean=*/false);
}

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return sum_or_mean(x, dims, keepdim, /*is_mean=*/true);
}

// Two passes over each run, both through chunked_sum: the mean, then the sum of squared
// deviations from it, divided by max(0, N - correction).
Tensor var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction, bool keepdim) {
  MEDTL_CHECK(x.defined(), "var: the tensor is undefined (default-constructed)");
  const auto mask = reduce_mask(x, dims, "var");
  if (DeviceBackend* gpu = backend_for("var", {&x})) return gpu->var(x, mask_dims(mask), correction, keepdim);
  check_input(x, "var");
  dispatch_float(x.dtype(), "var", [](auto) {});
  const Runs runs = arrange(x, mask, keepdim);
  Tensor out = empty(runs.out_shape, x.dtype());
  dispatch_float(x.dtype(), "var", [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = typename Accum<T>::type;
    const int64_t M = runs.outputs, R = runs.length;
    T* o = out.data<T>();
    const T* in = M * R > 0 ? runs.data.data<T>() : nullptr;
    std::vector<Acc> means(M);
    chunked_sum<Acc>(in, M, R, [](int64_t) { return [](T v) { return static_cast<Acc>(v); }; },
                     [&](int64_t m, Acc total) { means[m] = static_cast<Acc>(static_cast<double>(total) / R); });
    const double divisor = static_cast<double>(std::max<int64_t>(0, R - correction));
    chunked_sum<Acc>(
        in, M, R,
        [&](int64_t m) {
          return [mu = means[m]](T v) {
            const Acc d = static_cast<Acc>(v) - mu;
            return d * d;
          };
        },
        [&](int64_t m, Acc total) { o[m] = static_cast<T>(static_cast<double>(total) / divisor); });
  });
  return out;
}

MaxResult max(const Tensor& x, int64_t dim, bool keepdim) {
  if (DeviceBackend* gpu = backend_for("max", {&x})) return gpu->max(x, wrap_dim(dim, std::max<int64_t>(x.dim(), 1), "max"), keepdim);
  check_input(x, "max");
  return max_over(x, reduce_mask(x, {dim}, "max"), keepdim, /*with_indices=*/true, "max");
}

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  if (DeviceBackend* gpu = backend_for("argmax", {&x}))
    return gpu->max(x, wrap_dim(dim, std::max<int64_t>(x.dim(), 1), "argmax"), keepdim).indices;
  check_input(x, "argmax");
  return max_over(x, reduce_mask(x, {dim}, "argmax"), keepdim, /*with_indices=*/true, "argmax").indices;
}

Tensor max(const Tensor& x) {
  if (DeviceBackend* gpu = backend_for("max", {&x})) return gpu->max_all(x);
  check_input(x, "max");
  return max_over(x, std::vector<bool>(x.dim(), true), /*keepdim=*/false, /*with_indices=*/false, "max").values;
}

// shape is aligned with x's trailing dims; reduced: x's leading extra dims, and every dim where
// shape has 1 and x does not. Returns x itself when there is nothing to reduce.
Tensor sum_to(const Tensor& x, const Shape& shape) {
  MEDTL_CHECK(x.defined(), "sum_to: the tensor is undefined (default-constructed)");  // any device: sum dispatches
  const int64_t ndim = x.dim(), lead = ndim - static_cast<int64_t>(shape.size());
  MEDTL_CHECK(lead >= 0, "sum_to: shape ", shape_str(shape), " has more dims than x's shape ", shape_str(x.shape()),
              ", so it does not broadcast to it");
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < ndim; ++d) {
    if (d < lead) {
      dims.push_back(d);
      continue;
    }
    const int64_t want = shape[d - lead], have = x.size(d);
    MEDTL_CHECK(want == have || want == 1, "sum_to: shape ", shape_str(shape), " does not broadcast to x's shape ",
                shape_str(x.shape()), " (dim ", d, " of x has size ", have, ", the target has ", want, ")");
    if (want != have) dims.push_back(d);
  }
  if (dims.empty()) return x;
  return sum(x, dims, /*keepdim=*/true).view(shape);
}

}  // namespace medtl::ops
