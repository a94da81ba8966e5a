// CPU batch normalisation (forward in training and eval, backward), float32 and float64, with
// per-channel sums in a fixed order: bit-identical for any thread count.
//
// Layout: x is made contiguous and seen as (N, C, S), S = H * W (1 for 2-D input). Channel c's
// elements, in "logical order" i = n * S + s, are exactly the run that ops::sum over dims
// {0, 2, 3} reduces for output c (see reduce_cpu.cc), and they are summed the same way: cut into
// chunks of kChunk elements at fixed logical offsets, element j of a chunk into lane j % kLanes,
// lanes folded by a fixed halving tree, chunk sums combined by a fixed pairwise tree. A chunk
// may span several (n, c) planes; the lane position simply carries over from one plane to the
// next. One thread reduces a whole channel; threads only decide which channels each one takes.
//
// Accumulation is in double for both dtypes. Batch statistics are sensitive (the variance is a
// difference of nearly equal quantities when |mean| >> std, and 25k+ elements per channel in a
// ResNet stem), and here it is cheap: a channel's planes (~100 KB for (8, C, 56, 56) float32)
// stay in L2 between the passes, so the extra conversions are hidden behind the memory traffic
// of the first pass. For float64 the order and the accumulator equal reduce_cpu.cc's, so
// save_mean is bit-identical to ops::mean(x, {0, 2, 3}).
//
// Formulas (PyTorch's): training normalises with the batch mean and the biased variance, and
// updates running stats with the unbiased one; y = x * scale + shift with scale = w * invstd,
// shift = b - mean * scale. Backward (training):
//   grad_x = invstd * w * (g - mean(g) - xhat * mean(g * xhat)),  xhat = (x - mean) * invstd
// and in eval grad_x = g * w * invstd; grad_weight = sum(g * xhat), grad_bias = sum(g) in both.
#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "tensor/backend.h"
#include "tensor/dispatch.h"
#include "tensor/ops/batch_norm.h"
#include "tensor/parallel.h"

namespace medtl::ops {
namespace {

constexpr int64_t kChunk = 4096;   // elements per chunk, as in reduce_cpu.cc: never derived from threads
constexpr int kLanes = 16;         // interleaved accumulators, as in reduce_cpu.cc
constexpr int64_t kGrain = 32768;  // elements of work that make a thread worth starting

// x seen as (N, C, S).
struct Layout {
  int64_t N = 0, C = 0, S = 1;
  int64_t per_channel() const { return N * S; }  // elements reduced per channel
};

Layout layout_of(const Tensor& x) {
  Layout l;
  l.N = x.size(0);
  l.C = x.size(1);
  for (int64_t d = 2; d < x.dim(); ++d) l.S *= x.size(d);
  return l;
}

// Fixed pairwise tree over n >= 1 partial sums: depends on n only.
inline double pairwise(const double* p, int64_t n) {
  if (n == 1) return p[0];
  const int64_t half = n / 2;
  return pairwise(p, half) + pairwise(p + half, n - half);
}

// K sums over channel c in the fixed order described at the top. term(offset) returns the K
// addends (std::array<double, K>) for the element at `offset` (in elements, into (N, C, S)).
// partial: scratch, reused across channels by the calling thread.
template <int K, typename Term>
std::array<double, K> channel_sums(const Layout& l, int64_t c, const Term& term, std::vector<double>& partial) {
  const int64_t M = l.per_channel();
  const int64_t chunks = (M + kChunk - 1) / kChunk;
  std::array<double, K> out{};
  if (chunks == 0) return out;
  partial.resize(static_cast<size_t>(chunks * K));
  for (int64_t ch = 0; ch < chunks; ++ch) {
    const int64_t start = ch * kChunk, end = std::min(M, start + kChunk);
    double lane[K][kLanes] = {};
    int pos = 0;  // lane of the next element: (logical index - start) % kLanes
    int64_t n = start / l.S, s = start % l.S;  // where logical index i lies: plane (n, c), offset s
    for (int64_t i = start; i < end;) {
      const int64_t len = std::min(end - i, l.S - s);
      const int64_t base = (n * l.C + c) * l.S + s;
      int64_t j = 0;
      for (; pos != 0 && j < len; ++j, pos = (pos + 1) % kLanes) {
        const auto v = term(base + j);
        for (int k = 0; k < K; ++k) lane[k][pos] += v[k];
      }
      for (; j + kLanes <= len; j += kLanes) {
#pragma GCC unroll 16
        for (int q = 0; q < kLanes; ++q) {
          const auto v = term(base + j + q);
          for (int k = 0; k < K; ++k) lane[k][q] += v[k];
        }
      }
      for (; j < len; ++j, pos = (pos + 1) % kLanes) {
        const auto v = term(base + j);
        for (int k = 0; k < K; ++k) lane[k][pos] += v[k];
      }
      i += len;
      s += len;
      if (s == l.S) s = 0, ++n;
    }
    for (int k = 0; k < K; ++k) {
      for (int width = kLanes / 2; width > 0; width /= 2)
        for (int q = 0; q < width; ++q) lane[k][q] += lane[k][q + width];
      partial[static_cast<size_t>(k * chunks + ch)] = lane[k][0];
    }
  }
  for (int k = 0; k < K; ++k) out[k] = pairwise(partial.data() + k * chunks, chunks);
  return out;
}

// Calls body(c, partial) for every channel, channels split over threads.
template <typename Body>
void for_each_channel(const Layout& l, const Body& body) {
  const int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(1, l.per_channel()));
  parallel_for(0, l.C, grain, [&](int64_t begin, int64_t end) {
    std::vector<double> partial;
    for (int64_t c = begin; c < end; ++c) body(c, partial);
  });
}

// Applies f(offset) to every element offset of channel c (f must not depend on the order).
template <typename F>
void for_channel_elements(const Layout& l, int64_t c, const F& f) {
  for (int64_t n = 0; n < l.N; ++n) {
    const int64_t base = (n * l.C + c) * l.S;
#pragma omp simd
    for (int64_t s = 0; s < l.S; ++s) f(base + s);
  }
}

void check_x(const Tensor& x, const char* op) {
  MEDTL_CHECK(x.defined(), op, ": x is undefined (default-constructed)");
  MEDTL_CHECK(x.device().is_cpu(), op, ": the CPU kernel got x on ", x.device().str());
  MEDTL_CHECK(x.dim() >= 2, op, ": x must be (N, C) or (N, C, H, W), got shape ", shape_str(x.shape()));
  dispatch_float(x.dtype(), op, [](auto) {});
}

// A per-channel tensor (weight, bias, running stats, saved stats): (C,), x's dtype, on the CPU.
void check_channel_tensor(const Tensor& t, const char* name, const Tensor& x, const char* op) {
  if (!t.defined()) return;
  MEDTL_CHECK(t.device().is_cpu(), op, ": ", name, " is on ", t.device().str(), ", x on the CPU");
  MEDTL_CHECK(t.dim() == 1 && t.size(0) == x.size(1), op, ": ", name, " must have shape (", x.size(1),
              ",) (one value per channel of x, shape ", shape_str(x.shape()), "), got ", shape_str(t.shape()));
  MEDTL_CHECK(t.dtype() == x.dtype(), op, ": ", name, " is ", dtype_name(t.dtype()), " but x is ",
              dtype_name(x.dtype()), "; convert one with .to(DType)");
}

// The values of an optional (C,) tensor as a contiguous pointer, or null when undefined.
template <typename T>
const T* channel_values(const Tensor& t, Tensor& keep_alive) {
  if (!t.defined()) return nullptr;
  keep_alive = t.contiguous();
  return keep_alive.data<T>();
}

}  // namespace

BatchNormForward batch_norm_forward(const Tensor& x_in, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                                    const Tensor& running_var, bool training, double momentum, double eps) {
  const char* op = "batch_norm";
  if (DeviceBackend* gpu = backend_for(op, {&x_in, &weight, &bias, &running_mean, &running_var}))
    return gpu->batch_norm_forward(x_in, weight, bias, running_mean, running_var, training, momentum, eps);
  check_x(x_in, op);
  check_channel_tensor(weight, "weight", x_in, op);
  check_channel_tensor(bias, "bias", x_in, op);
  check_channel_tensor(running_mean, "running_mean", x_in, op);
  check_channel_tensor(running_var, "running_var", x_in, op);
  MEDTL_CHECK(running_mean.defined() == running_var.defined(), op,
              ": give both running_mean and running_var, or neither (got only ",
              running_mean.defined() ? "running_mean" : "running_var", ")");
  MEDTL_CHECK(eps >= 0, op, ": eps must be >= 0, got ", eps);
  const Layout l = layout_of(x_in);
  if (training) {
    MEDTL_CHECK(l.per_channel() != 1, op, ": Expected more than 1 value per channel when training, got input size ",
                shape_str(x_in.shape()), "; batch statistics need N * H * W >= 2: use a larger batch, or ",
                "evaluation mode (training = false)");
  } else {
    MEDTL_CHECK(running_mean.defined(), op,
                ": evaluation mode (training = false) normalises with running_mean and running_var, "
                "but none were given; pass them, or use training = true for batch statistics");
  }

  const Tensor x = x_in.contiguous();
  BatchNormForward result;
  result.y = empty(x.shape(), x.dtype());
  if (x.numel() == 0) {
    // As PyTorch: an empty batch gives an empty output, zero saved statistics, and leaves the
    // running statistics alone (there is nothing to estimate them from).
    result.save_mean = zeros({l.C}, x.dtype());
    result.save_invstd = zeros({l.C}, x.dtype());
    return result;
  }
  result.save_mean = empty({l.C}, x.dtype());
  result.save_invstd = empty({l.C}, x.dtype());

  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    Tensor w_keep, b_keep;
    const T* w = channel_values<T>(weight, w_keep);
    const T* b = channel_values<T>(bias, b_keep);
    T* rm = running_mean.defined() ? running_mean.data<T>() : nullptr;
    T* rv = running_var.defined() ? running_var.data<T>() : nullptr;
    const int64_t rm_stride = running_mean.defined() ? running_mean.stride(0) : 0;
    const int64_t rv_stride = running_var.defined() ? running_var.stride(0) : 0;
    const T* px = l.N * l.C * l.S > 0 ? x.data<T>() : nullptr;
    T* py = result.y.data<T>();
    T* save_mean = result.save_mean.data<T>();
    T* save_invstd = result.save_invstd.data<T>();
    const double M = static_cast<double>(l.per_channel());

    for_each_channel(l, [&](int64_t c, std::vector<double>& partial) {
      double mean, invstd;
      if (training) {
        // Two passes: the mean, then the sum of squared deviations from it (as ops::var).
        mean = channel_sums<1>(l, c, [&](int64_t i) { return std::array<double, 1>{static_cast<double>(px[i])}; },
                               partial)[0] / M;
        const double ssd = channel_sums<1>(l, c, [&](int64_t i) {
          const double d = static_cast<double>(px[i]) - mean;
          return std::array<double, 1>{d * d};
        }, partial)[0];
        const double var = ssd / M;  // biased: for normalisation
        invstd = 1.0 / std::sqrt(var + eps);
        if (rm) {
          const double unbiased = ssd / (M - 1.0);
          T& m = rm[c * rm_stride];
          T& v = rv[c * rv_stride];
          m = static_cast<T>((1.0 - momentum) * static_cast<double>(m) + momentum * mean);
          v = static_cast<T>((1.0 - momentum) * static_cast<double>(v) + momentum * unbiased);
        }
      } else {
        mean = static_cast<double>(rm[c * rm_stride]);
        invstd = 1.0 / std::sqrt(static_cast<double>(rv[c * rv_stride]) + eps);
      }
      save_mean[c] = static_cast<T>(mean);
      save_invstd[c] = static_cast<T>(invstd);
      const double scale_d = (w ? static_cast<double>(w[c]) : 1.0) * invstd;
      const T scale = static_cast<T>(scale_d);
      const T shift = static_cast<T>((b ? static_cast<double>(b[c]) : 0.0) - mean * scale_d);
      for (int64_t n = 0; n < l.N; ++n) {
        const int64_t base = (n * l.C + c) * l.S;
        const T* xs = px + base;
        T* ys = py + base;
#pragma omp simd
        for (int64_t s = 0; s < l.S; ++s) ys[s] = xs[s] * scale + shift;
      }
    });
  });
  return result;
}

BatchNormBackward batch_norm_backward(const Tensor& grad_y_in, const Tensor& x_in, const Tensor& weight,
                                      const Tensor& save_mean_in, const Tensor& save_invstd_in, bool training) {
  const char* op = "batch_norm_backward";
  if (DeviceBackend* gpu = backend_for(op, {&grad_y_in, &x_in, &weight, &save_mean_in, &save_invstd_in}))
    return gpu->batch_norm_backward(grad_y_in, x_in, weight, save_mean_in, save_invstd_in, training);
  check_x(x_in, op);
  MEDTL_CHECK(grad_y_in.defined() && grad_y_in.shape() == x_in.shape(), op, ": grad_y must have x's shape ",
              shape_str(x_in.shape()), ", got ", grad_y_in.defined() ? shape_str(grad_y_in.shape()) : "undefined");
  MEDTL_CHECK(grad_y_in.dtype() == x_in.dtype(), op, ": grad_y is ", dtype_name(grad_y_in.dtype()), " but x is ",
              dtype_name(x_in.dtype()));
  MEDTL_CHECK(grad_y_in.device().is_cpu(), op, ": the CPU kernel got grad_y on ", grad_y_in.device().str());
  MEDTL_CHECK(save_mean_in.defined() && save_invstd_in.defined(), op,
              ": save_mean and save_invstd (from batch_norm_forward) are required");
  check_channel_tensor(weight, "weight", x_in, op);
  check_channel_tensor(save_mean_in, "save_mean", x_in, op);
  check_channel_tensor(save_invstd_in, "save_invstd", x_in, op);

  const Layout l = layout_of(x_in);
  const Tensor x = x_in.contiguous();
  const Tensor g = grad_y_in.contiguous();
  BatchNormBackward result;
  result.grad_x = empty(x.shape(), x.dtype());
  result.grad_weight = empty({l.C}, x.dtype());
  result.grad_bias = empty({l.C}, x.dtype());

  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    Tensor w_keep, m_keep, s_keep;
    const T* w = channel_values<T>(weight, w_keep);
    const T* save_mean = channel_values<T>(save_mean_in, m_keep);
    const T* save_invstd = channel_values<T>(save_invstd_in, s_keep);
    const bool any = l.N * l.C * l.S > 0;
    const T* px = any ? x.data<T>() : nullptr;
    const T* pg = any ? g.data<T>() : nullptr;
    T* pgx = result.grad_x.data<T>();
    T* grad_w = result.grad_weight.data<T>();
    T* grad_b = result.grad_bias.data<T>();
    const double M = static_cast<double>(l.per_channel());

    for_each_channel(l, [&](int64_t c, std::vector<double>& partial) {
      const double mean = static_cast<double>(save_mean[c]);
      const double invstd = static_cast<double>(save_invstd[c]);
      const double wc = w ? static_cast<double>(w[c]) : 1.0;
      // sum(g) and sum(g * (x - mean)), in one pass.
      const auto sums = channel_sums<2>(l, c, [&](int64_t i) {
        const double gi = static_cast<double>(pg[i]);
        return std::array<double, 2>{gi, gi * (static_cast<double>(px[i]) - mean)};
      }, partial);
      grad_b[c] = static_cast<T>(sums[0]);
      grad_w[c] = static_cast<T>(sums[1] * invstd);
      const T a = static_cast<T>(wc * invstd);  // dy/dx with the statistics held fixed
      if (training) {
        // grad_x = a * (g - mean(g) - (x - mean) * k), k = invstd^2 * mean(g * (x - mean))
        const T mean_g = static_cast<T>(sums[0] / M);
        const T k = static_cast<T>(invstd * invstd * sums[1] / M);
        const T mean_t = static_cast<T>(mean);
        for_channel_elements(l, c, [&](int64_t i) { pgx[i] = a * (pg[i] - mean_g - (px[i] - mean_t) * k); });
      } else {
        for_channel_elements(l, c, [&](int64_t i) { pgx[i] = pg[i] * a; });
      }
    });
  });
  return result;
}

}  // namespace medtl::ops
