// conv2d as plain loops (float32 and float64, accumulated in double): the oracle the tests compare
// the oneDNN path against, and the float64 path. Also the argument checks both paths share.
//
// Determinism: every output element is owned by one thread and sums its terms in one fixed loop
// order, so results are bit-identical for any thread count.
#include <algorithm>
#include <vector>

#include "tensor/dispatch.h"
#include "tensor/ops/conv2d.h"
#include "tensor/parallel.h"

namespace medtl::ops {
namespace {

std::string params_str(const Conv2dParams& p) {
  return str_cat("stride (", p.stride_h, ", ", p.stride_w, "), padding (", p.pad_h, ", ", p.pad_w, "), dilation (",
                 p.dilation_h, ", ", p.dilation_w, ")");
}

void check_operand(const char* op, const char* name, const Tensor& t) {
  MEDTL_CHECK(t.defined(), op, ": ", name, " is undefined (default-constructed)");
}

void check_same_dtype(const char* op, const char* name_a, const Tensor& a, const char* name_b, const Tensor& b) {
  MEDTL_CHECK(a.dtype() == b.dtype(), op, ": dtypes differ: ", name_a, " ", shape_str(a.shape()), " is ",
              dtype_name(a.dtype()), ", ", name_b, " ", shape_str(b.shape()), " is ", dtype_name(b.dtype()),
              "; convert one with .to(DType)");
}

// All sizes of one call, read from the (already validated) shapes.
struct Dims {
  int64_t n, c, h, w;  // x
  int64_t k, r, s;     // w: (K, C, R, S)
  int64_t p, q;        // y: (N, K, P, Q)
  int64_t sh, sw, ph, pw, dh, dw;
};

Dims make_dims(const Shape& x, const Shape& w, const Shape& y, const Conv2dParams& prm) {
  return {x[0], x[1], x[2], x[3], w[0], w[2], w[3], y[2], y[3],
          prm.stride_h, prm.stride_w, prm.pad_h, prm.pad_w, prm.dilation_h, prm.dilation_w};
}

// Work items of `work_each` multiply-adds: start threads only above ~64k multiply-adds per item.
int64_t grain_for(int64_t work_each) { return std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, work_each)); }

// y[n,k,p,q] = bias[k] + sum_{c,r,s} x[n,c,p*sh-ph+r*dh, q*sw-pw+s*dw] w[k,c,r,s]; threads split (n, k).
template <typename T>
void forward_loops(const Dims& d, const T* x, const T* w, const T* bias, T* y) {
  parallel_for(0, d.n * d.k, grain_for(d.p * d.q * d.c * d.r * d.s), [&](int64_t begin, int64_t end) {
    for (int64_t nk = begin; nk < end; ++nk) {
      const int64_t n = nk / d.k, k = nk % d.k;
      T* y_plane = y + nk * d.p * d.q;
      for (int64_t p = 0; p < d.p; ++p) {
        for (int64_t q = 0; q < d.q; ++q) {
          double acc = bias != nullptr ? static_cast<double>(bias[k]) : 0.0;
          for (int64_t c = 0; c < d.c; ++c) {
            const T* x_plane = x + (n * d.c + c) * d.h * d.w;
            const T* w_plane = w + (k * d.c + c) * d.r * d.s;
            for (int64_t r = 0; r < d.r; ++r) {
              const int64_t ih = p * d.sh - d.ph + r * d.dh;
              if (ih < 0 || ih >= d.h) continue;
              for (int64_t s = 0; s < d.s; ++s) {
                const int64_t iw = q * d.sw - d.pw + s * d.dw;
                if (iw < 0 || iw >= d.w) continue;
                acc += static_cast<double>(x_plane[ih * d.w + iw]) * static_cast<double>(w_plane[r * d.s + s]);
              }
            }
          }
          y_plane[p * d.q + q] = static_cast<T>(acc);
        }
      }
    }
  });
}

// grad_x[n,c,ih,iw] = sum over (k, r, s, p, q) with ih = p*sh-ph+r*dh, iw = q*sw-pw+s*dw of
// grad_y[n,k,p,q] w[k,c,r,s]; threads split (n, c), each scattering into its own double plane.
template <typename T>
void backward_input_loops(const Dims& d, const T* gy, const T* w, T* gx) {
  parallel_for(0, d.n * d.c, grain_for(d.k * d.r * d.s * d.p * d.q), [&](int64_t begin, int64_t end) {
    std::vector<double> acc(d.h * d.w);
    for (int64_t nc = begin; nc < end; ++nc) {
      const int64_t n = nc / d.c, c = nc % d.c;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t k = 0; k < d.k; ++k) {
        const T* gy_plane = gy + (n * d.k + k) * d.p * d.q;
        const T* w_plane = w + (k * d.c + c) * d.r * d.s;
        for (int64_t r = 0; r < d.r; ++r) {
          for (int64_t s = 0; s < d.s; ++s) {
            const double wv = static_cast<double>(w_plane[r * d.s + s]);
            for (int64_t p = 0; p < d.p; ++p) {
              const int64_t ih = p * d.sh - d.ph + r * d.dh;
              if (ih < 0 || ih >= d.h) continue;
              for (int64_t q = 0; q < d.q; ++q) {
                const int64_t iw = q * d.sw - d.pw + s * d.dw;
                if (iw < 0 || iw >= d.w) continue;
                acc[ih * d.w + iw] += static_cast<double>(gy_plane[p * d.q + q]) * wv;
              }
            }
          }
        }
      }
      T* gx_plane = gx + nc * d.h * d.w;
      for (int64_t i = 0; i < d.h * d.w; ++i) gx_plane[i] = static_cast<T>(acc[i]);
    }
  });
}

// grad_w[k,c,r,s] = sum_{n,p,q} grad_y[n,k,p,q] x[n,c,p*sh-ph+r*dh, q*sw-pw+s*dw]; threads split (k, c).
template <typename T>
void backward_weight_loops(const Dims& d, const T* gy, const T* x, T* gw) {
  parallel_for(0, d.k * d.c, grain_for(d.r * d.s * d.n * d.p * d.q), [&](int64_t begin, int64_t end) {
    for (int64_t kc = begin; kc < end; ++kc) {
      const int64_t k = kc / d.c, c = kc % d.c;
      for (int64_t r = 0; r < d.r; ++r) {
        for (int64_t s = 0; s < d.s; ++s) {
          double acc = 0.0;
          for (int64_t n = 0; n < d.n; ++n) {
            const T* gy_plane = gy + (n * d.k + k) * d.p * d.q;
            const T* x_plane = x + (n * d.c + c) * d.h * d.w;
            for (int64_t p = 0; p < d.p; ++p) {
              const int64_t ih = p * d.sh - d.ph + r * d.dh;
              if (ih < 0 || ih >= d.h) continue;
              for (int64_t q = 0; q < d.q; ++q) {
                const int64_t iw = q * d.sw - d.pw + s * d.dw;
                if (iw < 0 || iw >= d.w) continue;
                acc += static_cast<double>(gy_plane[p * d.q + q]) * static_cast<double>(x_plane[ih * d.w + iw]);
              }
            }
          }
          gw[(kc * d.r + r) * d.s + s] = static_cast<T>(acc);
        }
      }
    }
  });
}

}  // namespace

Shape conv2d_output_shape(const Shape& x_shape, const Shape& w_shape, const Conv2dParams& params) {
  MEDTL_CHECK(x_shape.size() == 4, "conv2d: x must be 4-D (N, C, H, W), got shape ", shape_str(x_shape),
              "; add a batch dim with unsqueeze(0) for a single image");
  MEDTL_CHECK(w_shape.size() == 4, "conv2d: w must be 4-D (K, C, R, S), got shape ", shape_str(w_shape));
  for (int64_t size : x_shape)
    MEDTL_CHECK(size >= 0, "conv2d: x has a negative size: ", shape_str(x_shape));
  for (int64_t size : w_shape)
    MEDTL_CHECK(size >= 0, "conv2d: w has a negative size: ", shape_str(w_shape));
  MEDTL_CHECK(params.stride_h >= 1 && params.stride_w >= 1 && params.dilation_h >= 1 && params.dilation_w >= 1 &&
                  params.pad_h >= 0 && params.pad_w >= 0,
              "conv2d: strides and dilations must be >= 1 and paddings >= 0, got ", params_str(params));
  MEDTL_CHECK(x_shape[1] == w_shape[1], "conv2d: channel mismatch: x ", shape_str(x_shape), " has C=", x_shape[1],
              " channels but w ", shape_str(w_shape), " (K, C, R, S) expects C=", w_shape[1]);
  const int64_t span_h = params.dilation_h * (w_shape[2] - 1) + 1, span_w = params.dilation_w * (w_shape[3] - 1) + 1;
  const int64_t padded_h = x_shape[2] + 2 * params.pad_h, padded_w = x_shape[3] + 2 * params.pad_w;
  MEDTL_CHECK(w_shape[2] >= 1 && w_shape[3] >= 1, "conv2d: w ", shape_str(w_shape), " has an empty kernel");
  MEDTL_CHECK(span_h <= padded_h && span_w <= padded_w, "conv2d: kernel larger than padded input: w ",
              shape_str(w_shape), " with dilation (", params.dilation_h, ", ", params.dilation_w, ") spans ", span_h,
              "x", span_w, " but x ", shape_str(x_shape), " with padding (", params.pad_h, ", ", params.pad_w,
              ") is only ", padded_h, "x", padded_w);
  return {x_shape[0], w_shape[0], (padded_h - span_h) / params.stride_h + 1, (padded_w - span_w) / params.stride_w + 1};
}

Shape conv2d_check_forward(const char* op, const Tensor& x, const Tensor& w, const Tensor& bias,
                           const Conv2dParams& params) {
  check_operand(op, "x", x);
  check_operand(op, "w", w);
  check_same_dtype(op, "x", x, "w", w);
  const Shape y_shape = conv2d_output_shape(x.shape(), w.shape(), params);
  if (bias.defined()) {
    check_operand(op, "bias", bias);
    check_same_dtype(op, "x", x, "bias", bias);
    MEDTL_CHECK(bias.dim() == 1 && bias.size(0) == w.size(0), op, ": bias must have shape (K,) = (", w.size(0),
                ") for w ", shape_str(w.shape()), ", got ", shape_str(bias.shape()));
  }
  return y_shape;
}

Shape conv2d_check_backward_input(const char* op, const Tensor& grad_y, const Tensor& w, const Shape& x_shape,
                                  const Conv2dParams& params) {
  check_operand(op, "grad_y", grad_y);
  check_operand(op, "w", w);
  check_same_dtype(op, "grad_y", grad_y, "w", w);
  const Shape y_shape = conv2d_output_shape(x_shape, w.shape(), params);
  MEDTL_CHECK(grad_y.shape() == y_shape, op, ": grad_y has shape ", shape_str(grad_y.shape()), " but x ",
              shape_str(x_shape), " and w ", shape_str(w.shape()), " with ", params_str(params), " give y ",
              shape_str(y_shape));
  return y_shape;
}

Shape conv2d_check_backward_weight(const char* op, const Tensor& grad_y, const Tensor& x, const Shape& w_shape,
                                   const Conv2dParams& params) {
  check_operand(op, "grad_y", grad_y);
  check_operand(op, "x", x);
  check_same_dtype(op, "grad_y", grad_y, "x", x);
  const Shape y_shape = conv2d_output_shape(x.shape(), w_shape, params);
  MEDTL_CHECK(grad_y.shape() == y_shape, op, ": grad_y has shape ", shape_str(grad_y.shape()), " but x ",
              shape_str(x.shape()), " and w ", shape_str(w_shape), " with ", params_str(params), " give y ",
              shape_str(y_shape));
  return y_shape;
}

Tensor conv2d_forward_reference(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& params) {
  const Shape y_shape = conv2d_check_forward("conv2d_forward_reference", x, w, bias, params);
  Tensor y = empty(y_shape, x.dtype());
  if (y.numel() == 0) return y;
  const Tensor xc = x.contiguous(), wc = w.contiguous(), bc = bias.defined() ? bias.contiguous() : Tensor();
  dispatch_float(x.dtype(), "conv2d_forward_reference", [&](auto tag) {
    using T = typename decltype(tag)::type;
    forward_loops<T>(make_dims(x.shape(), w.shape(), y_shape, params), xc.template data<T>(), wc.template data<T>(),
                     bc.defined() ? bc.template data<T>() : nullptr, y.template data<T>());
  });
  return y;
}

Tensor conv2d_backward_input_reference(const Tensor& grad_y, const Tensor& w, const Shape& x_shape,
                                       const Conv2dParams& params) {
  const Shape y_shape = conv2d_check_backward_input("conv2d_backward_input_reference", grad_y, w, x_shape, params);
  Tensor gx = empty(x_shape, grad_y.dtype());
  if (gx.numel() == 0) return gx;
  const Tensor gyc = grad_y.contiguous(), wc = w.contiguous();
  dispatch_float(grad_y.dtype(), "conv2d_backward_input_reference", [&](auto tag) {
    using T = typename decltype(tag)::type;
    backward_input_loops<T>(make_dims(x_shape, w.shape(), y_shape, params), gyc.template data<T>(),
                            wc.template data<T>(), gx.template data<T>());
  });
  return gx;
}

Tensor conv2d_backward_weight_reference(const Tensor& grad_y, const Tensor& x, const Shape& w_shape,
                                        const Conv2dParams& params) {
  const Shape y_shape = conv2d_check_backward_weight("conv2d_backward_weight_reference", grad_y, x, w_shape, params);
  Tensor gw = empty(w_shape, grad_y.dtype());
  if (gw.numel() == 0) return gw;
  const Tensor gyc = grad_y.contiguous(), xc = x.contiguous();
  dispatch_float(grad_y.dtype(), "conv2d_backward_weight_reference", [&](auto tag) {
    using T = typename decltype(tag)::type;
    backward_weight_loops<T>(make_dims(x.shape(), w_shape, y_shape, params), gyc.template data<T>(),
                             xc.template data<T>(), gw.template data<T>());
  });
  return gw;
}

}  // namespace medtl::ops
