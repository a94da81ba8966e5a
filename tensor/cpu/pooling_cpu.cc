// CPU max pooling (forward with indices, backward as a gather), float32 and float64, NCHW.
//
// Both directions are parallel over (n, c) planes, and every output element is computed by one
// thread in a fixed order, so results are bit-identical for any thread count.
//
// Forward: window (p, q) covers rows [p * stride_h - pad_h, + kernel_h) and the same for columns,
// clipped to the input (padded positions never win: they act as -inf). The chosen element is the
// one a row-major scan of the window picks when an element replaces the running maximum only if
// it is strictly greater, or is the first NaN: ties keep the first, and the first NaN wins (the
// rule of ops::max). The index starts at the window's first valid element, so a window of -inf
// picks that one, as PyTorch does. It is computed separably (row maxima, then over rows), which
// picks the same element; see max_pool_plane.
//
// Backward: grad_x[h, w] = sum of grad_y[p, q] over the windows (p, q) that cover (h, w) and whose
// index chose it, added in (p, q) row-major order. Each grad_x element is written by one thread
// and nothing is scattered, so there are no atomics and no races. Indices that do not lie in
// their own window are an error (their gradient would be lost silently).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "tensor/backend.h"
#include "tensor/dispatch.h"
#include "tensor/ops/pooling.h"
#include "tensor/parallel.h"

namespace medtl::ops {
namespace {

constexpr int64_t kGrain = 16384;  // elements of work that make a thread worth starting

void check_params(const MaxPool2dParams& p, const char* op) {
  MEDTL_CHECK(p.kernel_h > 0 && p.kernel_w > 0, op, ": kernel size must be positive, got (", p.kernel_h, ", ",
              p.kernel_w, ")");
  MEDTL_CHECK(p.stride_h > 0 && p.stride_w > 0, op, ": stride must be positive, got (", p.stride_h, ", ", p.stride_w,
              ")");
  MEDTL_CHECK(p.pad_h >= 0 && p.pad_w >= 0, op, ": padding must be >= 0, got (", p.pad_h, ", ", p.pad_w, ")");
  // As PyTorch: with more padding a window could lie entirely in the padding.
  MEDTL_CHECK(p.pad_h <= p.kernel_h / 2 && p.pad_w <= p.kernel_w / 2, op, ": pad should be at most half of kernel size, got pad (",
              p.pad_h, ", ", p.pad_w, ") for kernel (", p.kernel_h, ", ", p.kernel_w, ")");
}

// Output size along one dim (floor mode); throws if no window fits.
int64_t out_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, const Shape& x_shape, const char* op) {
  const int64_t span = in + 2 * pad - kernel;
  MEDTL_CHECK(span >= 0, op, ": output size is too small: input ", shape_str(x_shape), " with padding ", pad,
              " is smaller than the kernel size ", kernel);
  return span / stride + 1;
}

// For every output position along one dim: the clipped input range [lo, hi) of its window.
struct Windows {
  std::vector<int64_t> lo, hi;
};
Windows windows(int64_t out, int64_t in, int64_t kernel, int64_t stride, int64_t pad) {
  Windows w;
  w.lo.resize(out);
  w.hi.resize(out);
  for (int64_t p = 0; p < out; ++p) {
    const int64_t start = p * stride - pad;
    w.lo[p] = std::max<int64_t>(start, 0);
    w.hi[p] = std::min(start + kernel, in);
  }
  return w;
}

// For every input position along one dim: the output positions [lo, hi) whose windows cover it.
Windows covering(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t pad) {
  Windows w;
  w.lo.resize(in);
  w.hi.resize(in);
  for (int64_t h = 0; h < in; ++h) {
    // p * stride - pad <= h <= p * stride - pad + kernel - 1
    const int64_t first = h + pad - kernel + 1;
    w.lo[h] = first <= 0 ? 0 : (first + stride - 1) / stride;
    w.hi[h] = std::min(out, (h + pad) / stride + 1);
    if (w.hi[h] < w.lo[h]) w.hi[h] = w.lo[h];
  }
  return w;
}

// Everything a plane kernel needs about the geometry.
struct Geometry {
  int64_t H, W, P, Q;
  MaxPool2dParams p;
  Windows rows, cols;          // per output row / column: its clipped input range
  Windows out_rows, out_cols;  // per input row / column: the outputs covering it (backward)
};

// `take` for the running maximum: v is greater, or v is the first NaN (once best is NaN nothing
// is greater and no later NaN is first). Branch-free, so the loops below vectorise.
template <typename T>
inline bool takes(T v, T best) {
  return (v > best) | ((v != v) & (best == best));
}

// hit ? v : +0, by masking the bits: compilers turn the plain select into a data-dependent
// branch here, which mispredicts on every other pixel.
template <typename T>
inline T masked(T v, bool hit) {
  using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  Bits bits;
  std::memcpy(&bits, &v, sizeof(T));
  bits &= Bits(0) - static_cast<Bits>(hit);
  std::memcpy(&v, &bits, sizeof(T));
  return v;
}

template <typename T>
struct PoolScratch {
  std::vector<T> padded;          // one input row with -inf padding on both sides
  std::vector<T> row_max;         // (H, Q): max of row h over window q's columns
  std::vector<int32_t> row_arg;   // (H, Q): its column (first maximum)
  std::vector<int32_t> best_arg;  // (Q): flat index h * W + w while scanning rows
};

// row_max/row_arg for one padded row, with the stride a compile-time constant where it can be
// (S > 0), so the strided loads vectorise; S = 0 reads the runtime stride.
template <int S, typename T>
void row_windows(const T* padded, int64_t Q, int64_t kernel_w, int64_t runtime_stride, int64_t pad_w,
                 T* __restrict rm, int32_t* __restrict ra) {
  const int64_t stride = S > 0 ? S : runtime_stride;
  for (int64_t j = 0; j < kernel_w; ++j) {
    const T* src = padded + j;
    const int32_t offset = static_cast<int32_t>(j - pad_w);
#pragma omp simd
    for (int64_t q = 0; q < Q; ++q) {
      const T v = src[q * stride];
      const bool take = takes(v, rm[q]);
      rm[q] = take ? v : rm[q];
      ra[q] = take ? static_cast<int32_t>(q * stride) + offset : ra[q];
    }
  }
}

// One (n, c) plane, separably: first each input row's maximum over every window's columns (the
// first maximum in the row), then, per output row, the first row holding the window's maximum.
// That is exactly the row-major scan's choice: the first row containing the maximum, and in it
// the first column; the same holds for the first NaN.
template <typename T>
void max_pool_plane(const T* __restrict x, T* __restrict y, int64_t* __restrict indices, const Geometry& g,
                    PoolScratch<T>& s) {
  const int64_t H = g.H, W = g.W, P = g.P, Q = g.Q;
  const int64_t kw = g.p.kernel_w, sw = g.p.stride_w, pw = g.p.pad_w;
  const T lowest = -std::numeric_limits<T>::infinity();
  const int64_t padded_len = std::max((Q - 1) * sw + kw, pw + W);
  s.padded.assign(static_cast<size_t>(padded_len), lowest);
  s.row_max.resize(static_cast<size_t>(H * Q));
  s.row_arg.resize(static_cast<size_t>(H * Q));
  s.best_arg.resize(static_cast<size_t>(Q));
  T* padded = s.padded.data();
  for (int64_t h = 0; h < H; ++h) {
    std::copy(x + h * W, x + (h + 1) * W, padded + pw);
    T* rm = s.row_max.data() + h * Q;
    int32_t* ra = s.row_arg.data() + h * Q;
    for (int64_t q = 0; q < Q; ++q) {
      rm[q] = lowest;  // padding never wins: strict > against -inf ...
      ra[q] = static_cast<int32_t>(g.cols.lo[q]);  // ... and the first valid column is the default
    }
    if (sw == 1) row_windows<1>(padded, Q, kw, sw, pw, rm, ra);
    else if (sw == 2) row_windows<2>(padded, Q, kw, sw, pw, rm, ra);
    else row_windows<0>(padded, Q, kw, sw, pw, rm, ra);
  }
  int32_t* __restrict ba = s.best_arg.data();
  for (int64_t p = 0; p < P; ++p) {
    const int64_t h0 = g.rows.lo[p], h1 = g.rows.hi[p];
    T* __restrict yr = y + p * Q;
    {
      const T* rm = s.row_max.data() + h0 * Q;
      const int32_t* ra = s.row_arg.data() + h0 * Q;
      const int32_t base = static_cast<int32_t>(h0 * W);
      for (int64_t q = 0; q < Q; ++q) {
        yr[q] = rm[q];
        ba[q] = base + ra[q];
      }
    }
    for (int64_t h = h0 + 1; h < h1; ++h) {
      const T* rm = s.row_max.data() + h * Q;
      const int32_t* ra = s.row_arg.data() + h * Q;
      const int32_t base = static_cast<int32_t>(h * W);
#pragma omp simd
      for (int64_t q = 0; q < Q; ++q) {
        const T v = rm[q], best = yr[q];
        const int32_t arg = base + ra[q], best_arg = ba[q];
        const bool take = takes(v, best);
        yr[q] = take ? v : best;
        ba[q] = take ? arg : best_arg;
      }
    }
    int64_t* __restrict ir = indices + p * Q;
#pragma omp simd
    for (int64_t q = 0; q < Q; ++q) ir[q] = ba[q];
  }
}

// grad_x of one plane as a gather: grad_x[h, w] = sum of g[p, q] over the outputs (p, q) covering
// (h, w) whose index is h * W + w, added in (p, q) row-major order. Returns how many outputs were
// matched: each output matches at most one element, the one its index names when that lies in
// its window, so the count is P * Q exactly when every index is valid.
//
// Per input row h and covering output row p (ascending), every pixel w looks at its covering
// output columns q (ascending). M > 0: at most M of them for any w (a compile-time trip count:
// the loads are clamped into range and out-of-range slots masked, so the loop has no branches);
// M = 0: any number.
template <int M, typename T>
int64_t max_unpool_plane(const T* __restrict g, const int64_t* __restrict indices, T* __restrict gx, const Geometry& geo) {
  const int64_t W = geo.W, Q = geo.Q;
  const int64_t* q_lo = geo.out_cols.lo.data();
  const int64_t* q_hi = geo.out_cols.hi.data();
  int64_t matched = 0;
  for (int64_t h = 0; h < geo.H; ++h) {
    T* __restrict gr = gx + h * W;
    for (int64_t w = 0; w < W; ++w) gr[w] = T(0);
    // Adding +0 for a non-match leaves the sum's bits unchanged (the sum starts at +0 and so can
    // never be -0), so the branch-free form equals summing the matches only.
    for (int64_t p = geo.out_rows.lo[h]; p < geo.out_rows.hi[h]; ++p) {
      const int64_t* ir = indices + p * Q;
      const T* grow = g + p * Q;
      const int64_t row_start = h * W;
      if constexpr (M > 0) {
        for (int64_t w = 0; w < W; ++w) {
          const int64_t self = row_start + w;
          T sum = gr[w];
#pragma GCC unroll 4
          for (int t = 0; t < M; ++t) {
            const int64_t q = q_lo[w] + t;
            const int64_t qc = q < Q ? q : Q - 1;
            const bool hit = (q < q_hi[w]) & (ir[qc] == self);
            sum += masked(grow[qc], hit);
            matched += hit;
          }
          gr[w] = sum;
        }
      } else {
        for (int64_t w = 0; w < W; ++w) {
          const int64_t self = row_start + w;
          T sum = gr[w];
          for (int64_t q = q_lo[w]; q < q_hi[w]; ++q) {
            const bool hit = ir[q] == self;
            sum += masked(grow[q], hit);
            matched += hit;
          }
          gr[w] = sum;
        }
      }
    }
  }
  return matched;
}

}  // namespace

MaxPool2dForward max_pool2d_forward(const Tensor& x_in, const MaxPool2dParams& params) {
  const char* op = "max_pool2d";
  MEDTL_CHECK(x_in.defined(), op, ": x is undefined (default-constructed)");
  if (DeviceBackend* gpu = backend_for(op, {&x_in})) return gpu->max_pool2d_forward(x_in, params);
  MEDTL_CHECK(x_in.dim() == 4, op, ": x must be (N, C, H, W), got shape ", shape_str(x_in.shape()));
  dispatch_float(x_in.dtype(), op, [](auto) {});
  check_params(params, op);
  const int64_t N = x_in.size(0), C = x_in.size(1), H = x_in.size(2), W = x_in.size(3);
  const int64_t P = out_size(H, params.kernel_h, params.stride_h, params.pad_h, x_in.shape(), op);
  const int64_t Q = out_size(W, params.kernel_w, params.stride_w, params.pad_w, x_in.shape(), op);

  const Tensor x = x_in.contiguous();
  MaxPool2dForward result;
  result.y = empty({N, C, P, Q}, x.dtype());
  result.indices = empty({N, C, P, Q}, DType::Int64);
  const int64_t planes = N * C;
  if (planes == 0 || P * Q == 0) return result;
  MEDTL_CHECK(H > 0 && W > 0, op, ": x has an empty spatial dim, shape ", shape_str(x.shape()));
  MEDTL_CHECK(H * W <= std::numeric_limits<int32_t>::max(), op, ": a plane of ", H, " x ", W,
              " elements is too large (at most 2^31 - 1 per plane)");
  const Geometry geo{H, W, P, Q, params, windows(P, H, params.kernel_h, params.stride_h, params.pad_h),
                     windows(Q, W, params.kernel_w, params.stride_w, params.pad_w), {}, {}};

  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();
    T* py = result.y.data<T>();
    int64_t* pi = result.indices.data<int64_t>();
    const int64_t work = H * W * params.kernel_w + P * Q * params.kernel_h;
    parallel_for(0, planes, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, work)), [&](int64_t begin, int64_t end) {
      PoolScratch<T> scratch;
      for (int64_t plane = begin; plane < end; ++plane)
        max_pool_plane(px + plane * H * W, py + plane * P * Q, pi + plane * P * Q, geo, scratch);
    });
  });
  return result;
}

Tensor max_pool2d_backward(const Tensor& grad_y_in, const Tensor& indices_in, const Shape& x_shape,
                           const MaxPool2dParams& params) {
  const char* op = "max_pool2d_backward";
  MEDTL_CHECK(grad_y_in.defined() && indices_in.defined(), op, ": grad_y and indices are required");
  if (DeviceBackend* gpu = backend_for(op, {&grad_y_in, &indices_in}))
    return gpu->max_pool2d_backward(grad_y_in, indices_in, x_shape, params);
  MEDTL_CHECK(x_shape.size() == 4, op, ": x_shape must be (N, C, H, W), got ", shape_str(x_shape));
  dispatch_float(grad_y_in.dtype(), op, [](auto) {});
  MEDTL_CHECK(indices_in.dtype() == DType::Int64, op, ": indices must be int64, got ", dtype_name(indices_in.dtype()));
  check_params(params, op);
  const int64_t N = x_shape[0], C = x_shape[1], H = x_shape[2], W = x_shape[3];
  const int64_t P = out_size(H, params.kernel_h, params.stride_h, params.pad_h, x_shape, op);
  const int64_t Q = out_size(W, params.kernel_w, params.stride_w, params.pad_w, x_shape, op);
  const Shape y_shape = {N, C, P, Q};
  MEDTL_CHECK(grad_y_in.shape() == y_shape, op, ": grad_y must have shape ", shape_str(y_shape), " (the output for x ",
              shape_str(x_shape), "), got ", shape_str(grad_y_in.shape()));
  MEDTL_CHECK(indices_in.shape() == y_shape, op, ": indices must have shape ", shape_str(y_shape), ", got ",
              shape_str(indices_in.shape()));

  const Tensor g = grad_y_in.contiguous();
  const Tensor indices = indices_in.contiguous();
  Tensor grad_x = empty(x_shape, g.dtype());
  const int64_t planes = N * C;
  if (planes * H * W == 0) return grad_x;
  const Geometry geo{H,
                     W,
                     P,
                     Q,
                     params,
                     windows(P, H, params.kernel_h, params.stride_h, params.pad_h),
                     windows(Q, W, params.kernel_w, params.stride_w, params.pad_w),
                     covering(H, P, params.kernel_h, params.stride_h, params.pad_h),
                     covering(W, Q, params.kernel_w, params.stride_w, params.pad_w)};

  dispatch_float(g.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pg = P * Q > 0 ? g.data<T>() : nullptr;
    const int64_t* pi = P * Q > 0 ? indices.data<int64_t>() : nullptr;
    T* pgx = grad_x.data<T>();
    int64_t most = 0;  // the most output columns covering one input column
    for (int64_t w = 0; w < W; ++w) most = std::max(most, geo.out_cols.hi[w] - geo.out_cols.lo[w]);
    const auto unpool = most <= 1 ? max_unpool_plane<1, T> : most == 2 ? max_unpool_plane<2, T>
                      : most == 3 ? max_unpool_plane<3, T> : max_unpool_plane<0, T>;
    std::vector<int64_t> matched(planes);  // per plane; P * Q when every index lies in its window
    const int64_t work = H * W + P * Q * params.kernel_h * params.kernel_w;
    parallel_for(0, planes, std::max<int64_t>(1, kGrain / work), [&](int64_t begin, int64_t end) {
      for (int64_t plane = begin; plane < end; ++plane)
        matched[plane] = unpool(pg + plane * P * Q, pi + plane * P * Q, pgx + plane * H * W, geo);
    });
    // An index outside its window would lose its gradient silently: find the first and say so
    // (after the parallel region, which an exception must not leave).
    for (int64_t plane = 0; plane < planes; ++plane) {
      if (matched[plane] == P * Q) continue;
      for (int64_t k = 0; k < P * Q; ++k) {
        const int64_t idx = pi[plane * P * Q + k], p = k / Q, q = k % Q;
        const int64_t h = idx >= 0 ? idx / W : -1, w = idx >= 0 ? idx % W : -1;
        MEDTL_CHECK(h >= geo.rows.lo[p] && h < geo.rows.hi[p] && w >= geo.cols.lo[q] && w < geo.cols.hi[q], op,
                    ": index ", idx, " at output (", plane / C, ", ", plane % C, ", ", p, ", ", q,
                    ") is not inside that output's window of x ", shape_str(x_shape),
                    "; pass the indices from max_pool2d_forward with the same x shape and params");
      }
    }
  });
  return grad_x;
}

}  // namespace medtl::ops
