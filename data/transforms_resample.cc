// Resampling kernels: resize, crop, flip, PIL rotate, OpenCV remap / warpAffine, gaussian_filter.
#include "data/transforms_resample.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "data/image.h"

namespace medtl::data {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr int64_t kInterTab = 32;  // OpenCV's INTER_TAB_SIZE: bilinear weights in 1/32 pixel steps

int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

Tensor as_chw(const Tensor& image, const char* op) {
  MEDTL_CHECK(image.defined(), op, ": the image is undefined");
  MEDTL_CHECK(image.dim() == 3, op, ": expected an image (C, H, W), got shape ", shape_str(image.shape()));
  MEDTL_CHECK(image.size(1) > 0 && image.size(2) > 0, op, ": the image ", shape_str(image.shape()), " is empty");
  return image.to(DType::Float32).contiguous();
}

// OpenCV's borderInterpolate for an index outside [0, n); -1 means "use the constant".
int64_t border_index(int64_t p, int64_t n, Border border) {
  if (p >= 0 && p < n) return p;
  switch (border) {
    case Border::Constant: return -1;
    case Border::Replicate: return p < 0 ? 0 : n - 1;
    case Border::Reflect101:
      if (n == 1) return 0;
      while (p < 0 || p >= n) p = p < 0 ? -p : 2 * n - p - 2;
      return p;
  }
  return -1;
}

// Python's round(x, 15), as PIL rounds the rotation matrix.
double round15(double x) { return static_cast<double>(round_half_even(x * 1e15)) / 1e15; }

}  // namespace

const char* interp_name(Interp interp) {
  switch (interp) {
    case Interp::Antialias: return "antialias";
    case Interp::Linear: return "linear";
    case Interp::Nearest: return "nearest";
    case Interp::NearestCenter: return "nearest-center";
  }
  return "?";
}

int64_t round_half_even(double value) {
  const double lower = std::floor(value);
  const double diff = value - lower;
  int64_t r = static_cast<int64_t>(lower);
  if (diff > 0.5 || (diff == 0.5 && (r % 2 != 0))) ++r;
  return r;
}

Tensor crop(const Tensor& image, int64_t top, int64_t left, int64_t h, int64_t w) {
  const Tensor src = as_chw(image, "crop");
  MEDTL_CHECK(h > 0 && w > 0 && top >= 0 && left >= 0 && top + h <= src.size(1) && left + w <= src.size(2),
              "crop: window ", h, "x", w, " at (top ", top, ", left ", left, ") does not fit in the image ",
              src.size(1), "x", src.size(2));
  return src.narrow(1, top, h).narrow(2, left, w).contiguous();
}

Tensor center_crop_tv(const Tensor& image, int64_t h, int64_t w) {
  MEDTL_CHECK(image.dim() == 3, "center_crop: expected (C, H, W), got shape ", shape_str(image.shape()));
  MEDTL_CHECK(h <= image.size(1) && w <= image.size(2), "center_crop: crop ", h, "x", w,
              " is larger than the image ", image.size(1), "x", image.size(2), "; resize first");
  return crop(image, round_half_even((image.size(1) - h) / 2.0), round_half_even((image.size(2) - w) / 2.0), h, w);
}

Tensor hflip(const Tensor& image) {
  MEDTL_CHECK(image.defined() && image.dim() >= 1, "hflip: expected a tensor (..., W)");
  const Tensor src = image.to(DType::Float32).contiguous();
  Tensor out = empty(src.shape());
  const int64_t w = src.size(-1), rows = w == 0 ? 0 : src.numel() / w;
  const float* s = src.data<float>();
  float* o = out.data<float>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t x = 0; x < w; ++x) o[r * w + x] = s[r * w + (w - 1 - x)];
  return out;
}

Tensor resize(const Tensor& image, int64_t out_h, int64_t out_w, Interp interp) {
  const Tensor src = as_chw(image, "resize");
  MEDTL_CHECK(out_h > 0 && out_w > 0, "resize: output size must be positive, got ", out_h, "x", out_w);
  if (interp == Interp::Antialias) return resize_bilinear(src, out_h, out_w);
  const int64_t c = src.size(0), in_h = src.size(1), in_w = src.size(2);
  if (in_h == out_h && in_w == out_w) return src.clone();
  const double sy = static_cast<double>(in_h) / out_h, sx = static_cast<double>(in_w) / out_w;
  Tensor out = empty({c, out_h, out_w});
  const float* s = src.data<float>();
  float* o = out.data<float>();
  if (interp == Interp::Nearest || interp == Interp::NearestCenter) {
    const double half = interp == Interp::NearestCenter ? 0.5 : 0.0;
    std::vector<int64_t> xs(out_w), ys(out_h);
    for (int64_t x = 0; x < out_w; ++x) xs[x] = std::min<int64_t>(static_cast<int64_t>(std::floor((x + half) * sx)), in_w - 1);
    for (int64_t y = 0; y < out_h; ++y) ys[y] = std::min<int64_t>(static_cast<int64_t>(std::floor((y + half) * sy)), in_h - 1);
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t y = 0; y < out_h; ++y)
        for (int64_t x = 0; x < out_w; ++x) o[(ch * out_h + y) * out_w + x] = s[(ch * in_h + ys[y]) * in_w + xs[x]];
    return out;
  }
  MEDTL_CHECK(interp == Interp::Linear, "resize: unsupported interpolation ", interp_name(interp));
  // cv2.resize INTER_LINEAR: per output index the first source index and the weight of the second.
  auto taps = [](int64_t in, int64_t n, double scale, std::vector<int64_t>& first, std::vector<double>& frac) {
    first.resize(n);
    frac.resize(n);
    for (int64_t i = 0; i < n; ++i) {
      const double f = (i + 0.5) * scale - 0.5;
      int64_t p = static_cast<int64_t>(std::floor(f));
      double t = f - p;
      if (p < 0) p = 0, t = 0;
      if (p >= in - 1) p = in - 1, t = 0;
      first[i] = p;
      frac[i] = t;
    }
  };
  std::vector<int64_t> x0, y0;
  std::vector<double> fx, fy;
  taps(in_w, out_w, sx, x0, fx);
  taps(in_h, out_h, sy, y0, fy);
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t y = 0; y < out_h; ++y) {
      const float* r0 = s + (ch * in_h + y0[y]) * in_w;
      const float* r1 = s + (ch * in_h + std::min(y0[y] + 1, in_h - 1)) * in_w;
      for (int64_t x = 0; x < out_w; ++x) {
        const int64_t xa = x0[x], xb = std::min(x0[x] + 1, in_w - 1);
        const double top = r0[xa] + fx[x] * (r0[xb] - r0[xa]);
        const double bottom = r1[xa] + fx[x] * (r1[xb] - r1[xa]);
        o[(ch * out_h + y) * out_w + x] = static_cast<float>(top + fy[y] * (bottom - top));
      }
    }
  return out;
}

Tensor rotate(const Tensor& image, double degrees, Interp interp, float fill) {
  const Tensor src = as_chw(image, "rotate");
  MEDTL_CHECK(interp == Interp::NearestCenter || interp == Interp::Linear,
              "rotate: interpolation must be NearestCenter (PIL NEAREST) or Linear (PIL BILINEAR), got ",
              interp_name(interp));
  const int64_t c = src.size(0), h = src.size(1), w = src.size(2);
  // PIL Image.rotate: the inverse matrix about the centre (W / 2, H / 2).
  const double angle = -degrees * kPi / 180.0;
  const double a = round15(std::cos(angle)), b = round15(std::sin(angle));
  const double d = round15(-std::sin(angle)), e = round15(std::cos(angle));
  const double cx = w / 2.0, cy = h / 2.0;
  const double tx = a * -cx + b * -cy + cx, ty = d * -cx + e * -cy + cy;
  Tensor out = empty({c, h, w});
  const float* s = src.data<float>();
  float* o = out.data<float>();
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      const double xin = a * (x + 0.5) + b * (y + 0.5) + tx;
      const double yin = d * (x + 0.5) + e * (y + 0.5) + ty;
      const bool inside = xin >= 0.0 && xin < w && yin >= 0.0 && yin < h;
      if (!inside) {
        for (int64_t ch = 0; ch < c; ++ch) o[(ch * h + y) * w + x] = fill;
        continue;
      }
      if (interp == Interp::NearestCenter) {
        const int64_t xi = static_cast<int64_t>(xin), yi = static_cast<int64_t>(yin);
        for (int64_t ch = 0; ch < c; ++ch) o[(ch * h + y) * w + x] = s[(ch * h + yi) * w + xi];
        continue;
      }
      const double xs = xin - 0.5, ys = yin - 0.5;
      const int64_t xf = static_cast<int64_t>(std::floor(xs)), yf = static_cast<int64_t>(std::floor(ys));
      const double dx = xs - xf, dy = ys - yf;
      const int64_t xa = std::clamp<int64_t>(xf, 0, w - 1), xb = std::clamp<int64_t>(xf + 1, 0, w - 1);
      const int64_t ya = std::clamp<int64_t>(yf, 0, h - 1);
      const bool second_row = yf + 1 >= 0 && yf + 1 < h;
      for (int64_t ch = 0; ch < c; ++ch) {
        const float* r0 = s + (ch * h + ya) * w;
        const double v1 = r0[xa] + (r0[xb] - r0[xa]) * dx;
        double v2 = v1;
        if (second_row) {
          const float* r1 = s + (ch * h + yf + 1) * w;
          v2 = r1[xa] + (r1[xb] - r1[xa]) * dx;
        }
        o[(ch * h + y) * w + x] = static_cast<float>(v1 + (v2 - v1) * dy);
      }
    }
  return out;
}

Tensor remap(const Tensor& image, const std::vector<float>& map_x, const std::vector<float>& map_y, int64_t out_h,
             int64_t out_w, Interp interp, Border border, float border_value) {
  const Tensor src = as_chw(image, "remap");
  MEDTL_CHECK(static_cast<int64_t>(map_x.size()) == out_h * out_w && static_cast<int64_t>(map_y.size()) == out_h * out_w,
              "remap: maps hold ", map_x.size(), " and ", map_y.size(), " values, expected ", out_h * out_w);
  MEDTL_CHECK(interp == Interp::Linear || interp == Interp::Nearest,
              "remap: interpolation must be Linear or Nearest, got ", interp_name(interp));
  const int64_t c = src.size(0), h = src.size(1), w = src.size(2), plane = h * w;
  Tensor out = empty({c, out_h, out_w});
  const float* s = src.data<float>();
  float* o = out.data<float>();
  const int64_t out_plane = out_h * out_w;
  for (int64_t i = 0; i < out_plane; ++i) {
    const double fx = map_x[i], fy = map_y[i];
    if (interp == Interp::Nearest) {
      const int64_t xi = border_index(round_half_even(fx), w, border);
      const int64_t yi = border_index(round_half_even(fy), h, border);
      for (int64_t ch = 0; ch < c; ++ch)
        o[ch * out_plane + i] = (xi < 0 || yi < 0) ? border_value : s[ch * plane + yi * w + xi];
      continue;
    }
    // OpenCV quantises coordinates to 1/32 pixel (INTER_TAB_SIZE) before weighting.
    const int64_t qx = round_half_even(fx * kInterTab), qy = round_half_even(fy * kInterTab);
    const int64_t xf = floor_div(qx, kInterTab), yf = floor_div(qy, kInterTab);
    const double ax = static_cast<double>(qx - xf * kInterTab) / kInterTab;
    const double ay = static_cast<double>(qy - yf * kInterTab) / kInterTab;
    const int64_t xs[2] = {border_index(xf, w, border), border_index(xf + 1, w, border)};
    const int64_t ys[2] = {border_index(yf, h, border), border_index(yf + 1, h, border)};
    for (int64_t ch = 0; ch < c; ++ch) {
      const float* p = s + ch * plane;
      auto at = [&](int j, int k) -> double {
        return (xs[k] < 0 || ys[j] < 0) ? border_value : p[ys[j] * w + xs[k]];
      };
      const double top = at(0, 0) * (1 - ax) + at(0, 1) * ax;
      const double bottom = at(1, 0) * (1 - ax) + at(1, 1) * ax;
      o[ch * out_plane + i] = static_cast<float>(top * (1 - ay) + bottom * ay);
    }
  }
  return out;
}

Affine affine_from_points(const std::array<std::array<double, 2>, 3>& src,
                          const std::array<std::array<double, 2>, 3>& dst) {
  // Solve [x y 1] (a b c)^T = u and [x y 1] (d e f)^T = v by Cramer's rule.
  const double det = src[0][0] * (src[1][1] - src[2][1]) - src[0][1] * (src[1][0] - src[2][0]) +
                     (src[1][0] * src[2][1] - src[2][0] * src[1][1]);
  MEDTL_CHECK(std::abs(det) > 1e-12, "affine_from_points: the three source points are collinear");
  Affine m{};
  for (int row = 0; row < 2; ++row) {
    const double u0 = dst[0][row], u1 = dst[1][row], u2 = dst[2][row];
    const double a = u0 * (src[1][1] - src[2][1]) - src[0][1] * (u1 - u2) + (u1 * src[2][1] - u2 * src[1][1]);
    const double b = src[0][0] * (u1 - u2) - u0 * (src[1][0] - src[2][0]) + (src[1][0] * u2 - src[2][0] * u1);
    const double cc = src[0][0] * (src[1][1] * u2 - src[2][1] * u1) - src[0][1] * (src[1][0] * u2 - src[2][0] * u1) +
                      u0 * (src[1][0] * src[2][1] - src[2][0] * src[1][1]);
    m[row * 3 + 0] = a / det;
    m[row * 3 + 1] = b / det;
    m[row * 3 + 2] = cc / det;
  }
  return m;
}

Affine invert_affine(const Affine& m) {
  // cv2.invertAffineTransform's operation order, so rounding matches it too.
  double det = m[0] * m[4] - m[1] * m[3];
  MEDTL_CHECK(std::abs(det) > 1e-15, "invert_affine: the matrix is singular");
  det = 1.0 / det;
  const double a11 = m[4] * det, a22 = m[0] * det, a12 = -m[1] * det, a21 = -m[3] * det;
  return {a11, a12, -a11 * m[2] - a12 * m[5], a21, a22, -a21 * m[2] - a22 * m[5]};
}

Tensor warp_affine(const Tensor& image, const Affine& m, Interp interp, Border border, float border_value) {
  MEDTL_CHECK(image.dim() == 3, "warp_affine: expected (C, H, W), got shape ", shape_str(image.shape()));
  MEDTL_CHECK(interp == Interp::Linear || interp == Interp::Nearest,
              "warp_affine: interpolation must be Linear or Nearest, got ", interp_name(interp));
  const int64_t h = image.size(1), w = image.size(2);
  const Affine inv = invert_affine(m);
  // OpenCV's fixed point: source coordinates in 1/1024 pixel (AB_BITS = 10), then shifted to whole
  // pixels (nearest) or 1/32 pixel (linear). The maps below hold exactly those values, which
  // remap reads back without change (integers, or multiples of 1/32).
  constexpr int64_t kAbScale = 1024;
  const bool nearest = interp == Interp::Nearest;
  const int64_t round_delta = nearest ? kAbScale / 2 : kAbScale / kInterTab / 2;
  const int shift = nearest ? 10 : 5;
  const double unit = nearest ? 1.0 : 1.0 / kInterTab;
  std::vector<int64_t> adelta(w), bdelta(w);
  for (int64_t x = 0; x < w; ++x) {
    adelta[x] = round_half_even(inv[0] * x * kAbScale);
    bdelta[x] = round_half_even(inv[3] * x * kAbScale);
  }
  std::vector<float> mx(h * w), my(h * w);
  for (int64_t y = 0; y < h; ++y) {
    const int64_t x0 = round_half_even((inv[1] * y + inv[2]) * kAbScale) + round_delta;
    const int64_t y0 = round_half_even((inv[4] * y + inv[5]) * kAbScale) + round_delta;
    for (int64_t x = 0; x < w; ++x) {
      mx[y * w + x] = static_cast<float>(floor_div(x0 + adelta[x], int64_t(1) << shift) * unit);
      my[y * w + x] = static_cast<float>(floor_div(y0 + bdelta[x], int64_t(1) << shift) * unit);
    }
  }
  return remap(image, mx, my, h, w, interp, border, border_value);
}

std::vector<double> gaussian_filter(const std::vector<double>& field, int64_t h, int64_t w, double sigma,
                                    double truncate) {
  MEDTL_CHECK(static_cast<int64_t>(field.size()) == h * w, "gaussian_filter: field holds ", field.size(),
              " values, expected ", h, "x", w);
  MEDTL_CHECK(sigma > 0, "gaussian_filter: sigma must be positive, got ", sigma);
  const int64_t radius = static_cast<int64_t>(truncate * sigma + 0.5);
  std::vector<double> kernel(2 * radius + 1);
  double total = 0;
  for (int64_t k = -radius; k <= radius; ++k) total += kernel[k + radius] = std::exp(-0.5 / (sigma * sigma) * k * k);
  for (double& v : kernel) v /= total;
  // scipy 'reflect': the period is 2n, the second half mirrored (the edge pixel repeats).
  auto reflect = [](int64_t p, int64_t n) {
    p %= 2 * n;
    if (p < 0) p += 2 * n;
    return p < n ? p : 2 * n - 1 - p;
  };
  // Reflected indices for -radius .. n + radius - 1, so the loops below do no index arithmetic.
  auto table = [&](int64_t n) {
    std::vector<int64_t> t(n + 2 * radius);
    for (int64_t i = 0; i < n + 2 * radius; ++i) t[i] = reflect(i - radius, n);
    return t;
  };
  const std::vector<int64_t> ry = table(h), rx = table(w);
  std::vector<double> tmp(h * w), out(h * w);
  for (int64_t y = 0; y < h; ++y)  // axis 0 first, as gaussian_filter walks the axes in order
    for (int64_t x = 0; x < w; ++x) {
      double sum = 0;
      for (int64_t k = 0; k <= 2 * radius; ++k) sum += kernel[k] * field[ry[y + k] * w + x];
      tmp[y * w + x] = sum;
    }
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      double sum = 0;
      const double* row = tmp.data() + y * w;
      for (int64_t k = 0; k <= 2 * radius; ++k) sum += kernel[k] * row[rx[x + k]];
      out[y * w + x] = sum;
    }
  return out;
}

}  // namespace medtl::data
