// albumentations 0.4.3 transforms: brightness/contrast, gamma, elastic, grid and optical distortion,
// RandomSizedCrop, OneOf, and the paper's segmentation augmentation.
#include "data/augment.h"

#include <algorithm>
#include <cmath>

namespace medtl::data {
namespace {

void check_joint(const ImageMask& x, const char* op) {
  MEDTL_CHECK(x.image.defined() && x.image.dim() == 3, op, ": expected an image (C, H, W), got ",
              x.image.defined() ? shape_str(x.image.shape()) : std::string("an undefined tensor"));
  if (x.mask.defined())
    MEDTL_CHECK(x.mask.dim() == 3 && x.mask.size(1) == x.image.size(1) && x.mask.size(2) == x.image.size(2), op,
                ": the mask ", shape_str(x.mask.shape()), " does not match the image ", shape_str(x.image.shape()));
}

void check_p(double p, const char* op) { MEDTL_CHECK(p >= 0.0 && p <= 1.0, op, ": p must be in [0, 1], got ", p); }

// Applies f to every value of a float32 copy of the image.
template <typename F>
Tensor map_values(const Tensor& image, F f) {
  const Tensor src = image.to(DType::Float32).contiguous();
  Tensor out = empty(src.shape());
  const float* s = src.data<float>();
  float* o = out.data<float>();
  for (int64_t i = 0; i < src.numel(); ++i) o[i] = static_cast<float>(f(static_cast<double>(s[i])));
  return out;
}

// Same geometry for image and mask: the image with its interpolation, the mask with Nearest.
void remap_joint(ImageMask& x, const std::vector<float>& mx, const std::vector<float>& my, Interp image_interp,
                 Border border) {
  const int64_t h = x.image.size(1), w = x.image.size(2);
  x.image = remap(x.image, mx, my, h, w, image_interp, border, 0.0f);
  if (x.mask.defined()) x.mask = remap(x.mask, mx, my, h, w, Interp::Nearest, border, 0.0f);
}

}  // namespace

// ---- Brightness, contrast, gamma. ----

RandomBrightnessContrast::RandomBrightnessContrast(double brightness_limit, double contrast_limit, double p,
                                                   PixelRange range)
    : brightness_(brightness_limit), contrast_(contrast_limit), p_(p), range_(range) {
  check_p(p, "RandomBrightnessContrast");
}

Tensor RandomBrightnessContrast::adjust(const Tensor& image, double alpha, double beta, PixelRange range) {
  const double max_value = range.max_value, shift = beta * max_value;
  return map_values(image, [&](double v) {
    const double out = std::clamp(v * alpha + shift, 0.0, max_value);
    return range.uint8 ? std::trunc(out) : out;  // uint8: the lookup table's astype(uint8)
  });
}

void RandomBrightnessContrast::apply(ImageMask& x, SampleRng& rng) const {
  if (!(rng.uniform() < p_)) return;
  const double alpha = 1.0 + rng.uniform(-contrast_, contrast_);
  const double beta = rng.uniform(-brightness_, brightness_);
  x.image = adjust(x.image, alpha, beta, range_);
}

std::string RandomBrightnessContrast::describe() const {
  return str_cat("RandomBrightnessContrast(brightness +-", brightness_, ", contrast +-", contrast_, ", p ", p_, ")");
}

RandomGamma::RandomGamma(std::pair<double, double> gamma_limit, double p, PixelRange range)
    : limit_(gamma_limit), p_(p), range_(range) {
  check_p(p, "RandomGamma");
  MEDTL_CHECK(0 < gamma_limit.first && gamma_limit.first <= gamma_limit.second,
              "RandomGamma: gamma_limit must satisfy 0 < lo <= hi, got (", gamma_limit.first, ", ", gamma_limit.second, ")");
}

Tensor RandomGamma::adjust(const Tensor& image, double gamma, PixelRange range) {
  const double max_value = range.max_value;
  return map_values(image, [&](double v) {
    const double out = std::pow(std::max(v, 0.0) / max_value, gamma) * max_value;
    return range.uint8 ? std::trunc(out) : out;
  });
}

void RandomGamma::apply(ImageMask& x, SampleRng& rng) const {
  if (!(rng.uniform() < p_)) return;
  const double gamma = rng.uniform(limit_.first, limit_.second) / 100.0;
  x.image = adjust(x.image, gamma, range_);
}

std::string RandomGamma::describe() const {
  return str_cat("RandomGamma(", limit_.first, "..", limit_.second, ", p ", p_, ")");
}

// ---- Elastic. ----

ElasticTransform::ElasticTransform(double alpha, double sigma, double alpha_affine, double p, Interp image_interp,
                                   Border border)
    : alpha_(alpha), sigma_(sigma), alpha_affine_(alpha_affine), p_(p), image_interp_(image_interp), border_(border) {
  check_p(p, "ElasticTransform");
  MEDTL_CHECK(sigma > 0, "ElasticTransform: sigma must be positive, got ", sigma);
}

void ElasticTransform::apply(ImageMask& x, SampleRng& rng) const {
  check_joint(x, "ElasticTransform");
  if (!(rng.uniform() < p_)) return;
  const int64_t h = x.image.size(1), w = x.image.size(2);
  // The random affine. albumentations builds the points from (height, width) as if they were
  // (x, y); kept as is (it only matters for non-square images).
  const double c0 = static_cast<double>(h / 2), c1 = static_cast<double>(w / 2);
  const double sq = static_cast<double>(std::min(h, w) / 3);
  const std::array<std::array<double, 2>, 3> src = {{{c0 + sq, c1 + sq}, {c0 + sq, c1 - sq}, {c0 - sq, c1 - sq}}};
  std::array<std::array<double, 2>, 3> dst = src;
  for (auto& point : dst)
    for (double& v : point) v = static_cast<float>(v + rng.uniform(-alpha_affine_, alpha_affine_));
  const Affine m = affine_from_points(src, dst);
  x.image = warp_affine(x.image, m, image_interp_, border_);
  if (x.mask.defined()) x.mask = warp_affine(x.mask, m, Interp::Nearest, border_);
  // The displacement fields: alpha * gaussian_filter(U(-1, 1), sigma), dx first, then dy.
  std::vector<double> noise(h * w);
  auto field = [&]() {
    for (double& v : noise) v = rng.uniform() * 2.0 - 1.0;
    return gaussian_filter(noise, h, w, sigma_);
  };
  const std::vector<double> dx = field();
  const std::vector<double> dy = field();
  std::vector<float> mx(h * w), my(h * w);
  for (int64_t y = 0; y < h; ++y)
    for (int64_t xx = 0; xx < w; ++xx) {
      const int64_t i = y * w + xx;
      mx[i] = static_cast<float>(xx + static_cast<float>(dx[i] * alpha_));
      my[i] = static_cast<float>(y + static_cast<float>(dy[i] * alpha_));
    }
  remap_joint(x, mx, my, image_interp_, border_);
}

std::string ElasticTransform::describe() const {
  return str_cat("ElasticTransform(alpha ", alpha_, ", sigma ", sigma_, ", alpha_affine ", alpha_affine_, ", p ", p_, ")");
}

// ---- Grid distortion. ----

GridDistortion::GridDistortion(int64_t num_steps, double distort_limit, double p, Interp image_interp, Border border)
    : num_steps_(num_steps), limit_(distort_limit), p_(p), image_interp_(image_interp), border_(border) {
  check_p(p, "GridDistortion");
  MEDTL_CHECK(num_steps > 0, "GridDistortion: num_steps must be positive, got ", num_steps);
}

void GridDistortion::grid_maps(int64_t h, int64_t w, int64_t num_steps, const std::vector<double>& xsteps,
                               const std::vector<double>& ysteps, std::vector<float>& map_x, std::vector<float>& map_y) {
  MEDTL_CHECK(static_cast<int64_t>(xsteps.size()) == num_steps + 1 && static_cast<int64_t>(ysteps.size()) == num_steps + 1,
              "GridDistortion: expected ", num_steps + 1, " steps per axis");
  // One axis of F.grid_distortion: cells of size // num_steps, each a np.linspace from the
  // previous grid line to prev + step * factor; the last cell ends at the image edge.
  auto axis = [&](int64_t size, const std::vector<double>& steps) {
    std::vector<float> line(size, 0.0f);
    const int64_t step = size / num_steps;
    double prev = 0;
    for (int64_t idx = 0; idx <= num_steps; ++idx) {
      const int64_t start = idx * step;
      int64_t end = start + step;
      double cur;
      if (end > size) {
        end = size;
        cur = static_cast<double>(size);
      } else {
        cur = prev + step * steps[idx];
      }
      const int64_t n = end - start;
      for (int64_t k = 0; k < n; ++k) {  // np.linspace(prev, cur, n), endpoint included
        const double v = n == 1 ? prev : (k == n - 1 ? cur : prev + k * ((cur - prev) / (n - 1)));
        line[start + k] = static_cast<float>(v);
      }
      prev = cur;
    }
    return line;
  };
  const std::vector<float> xx = axis(w, xsteps), yy = axis(h, ysteps);
  map_x.resize(h * w);
  map_y.resize(h * w);
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      map_x[y * w + x] = xx[x];
      map_y[y * w + x] = yy[y];
    }
}

void GridDistortion::apply(ImageMask& x, SampleRng& rng) const {
  check_joint(x, "GridDistortion");
  if (!(rng.uniform() < p_)) return;
  std::vector<double> xsteps(num_steps_ + 1), ysteps(num_steps_ + 1);
  for (double& s : xsteps) s = 1.0 + rng.uniform(-limit_, limit_);
  for (double& s : ysteps) s = 1.0 + rng.uniform(-limit_, limit_);
  std::vector<float> mx, my;
  grid_maps(x.image.size(1), x.image.size(2), num_steps_, xsteps, ysteps, mx, my);
  remap_joint(x, mx, my, image_interp_, border_);
}

std::string GridDistortion::describe() const {
  return str_cat("GridDistortion(steps ", num_steps_, ", limit +-", limit_, ", p ", p_, ")");
}

// ---- Optical distortion. ----

OpticalDistortion::OpticalDistortion(double distort_limit, double shift_limit, double p, Interp image_interp,
                                     Border border)
    : distort_limit_(distort_limit), shift_limit_(shift_limit), p_(p), image_interp_(image_interp), border_(border) {
  check_p(p, "OpticalDistortion");
}

void OpticalDistortion::optical_maps(int64_t h, int64_t w, double k, double dx, double dy, std::vector<float>& map_x,
                                     std::vector<float>& map_y) {
  // cv2.initUndistortRectifyMap(A, (k, k, 0, 0, 0), R = I, newCameraMatrix = None): the new
  // camera is A with its principal point moved to ((W - 1) / 2, (H - 1) / 2).
  const double fx = static_cast<double>(w), fy = static_cast<double>(h);
  const double u0 = static_cast<float>(w * 0.5 + dx), v0 = static_cast<float>(h * 0.5 + dy);
  const double cx_new = (w - 1) * 0.5, cy_new = (h - 1) * 0.5;
  const double k1 = static_cast<float>(k), k2 = k1;
  map_x.resize(h * w);
  map_y.resize(h * w);
  for (int64_t i = 0; i < h; ++i)
    for (int64_t j = 0; j < w; ++j) {
      const double x = (j - cx_new) / fx, y = (i - cy_new) / fy;
      const double r2 = x * x + y * y;
      const double kr = 1 + (k2 * r2 + k1) * r2;
      map_x[i * w + j] = static_cast<float>(fx * x * kr + u0);
      map_y[i * w + j] = static_cast<float>(fy * y * kr + v0);
    }
}

void OpticalDistortion::apply(ImageMask& x, SampleRng& rng) const {
  check_joint(x, "OpticalDistortion");
  if (!(rng.uniform() < p_)) return;
  const double k = rng.uniform(-distort_limit_, distort_limit_);
  const double dx = static_cast<double>(round_half_even(rng.uniform(-shift_limit_, shift_limit_)));
  const double dy = static_cast<double>(round_half_even(rng.uniform(-shift_limit_, shift_limit_)));
  std::vector<float> mx, my;
  optical_maps(x.image.size(1), x.image.size(2), k, dx, dy, mx, my);
  remap_joint(x, mx, my, image_interp_, border_);
}

std::string OpticalDistortion::describe() const {
  return str_cat("OpticalDistortion(k +-", distort_limit_, ", shift +-", shift_limit_, ", p ", p_, ")");
}

// ---- RandomSizedCrop. ----

RandomSizedCrop::RandomSizedCrop(std::pair<int64_t, int64_t> min_max_height, int64_t height, int64_t width,
                                 double w2h_ratio, double p)
    : min_max_(min_max_height), height_(height), width_(width), w2h_ratio_(w2h_ratio), p_(p) {
  check_p(p, "RandomSizedCrop");
  MEDTL_CHECK(0 < min_max_height.first && min_max_height.first <= min_max_height.second,
              "RandomSizedCrop: min_max_height must satisfy 0 < lo <= hi, got (", min_max_height.first, ", ",
              min_max_height.second, ")");
  MEDTL_CHECK(height > 0 && width > 0 && w2h_ratio > 0, "RandomSizedCrop: height, width and w2h_ratio must be positive");
}

void RandomSizedCrop::apply(ImageMask& x, SampleRng& rng) const {
  check_joint(x, "RandomSizedCrop");
  if (!(rng.uniform() < p_)) return;
  const int64_t crop_h = rng.integer(min_max_.first, min_max_.second + 1);
  const double h_start = rng.uniform(), w_start = rng.uniform();
  const int64_t crop_w = static_cast<int64_t>(crop_h * w2h_ratio_);
  const int64_t H = x.image.size(1), W = x.image.size(2);
  MEDTL_CHECK(crop_h <= H && crop_w <= W, "RandomSizedCrop: crop ", crop_h, "x", crop_w, " is larger than the image ",
              H, "x", W, "; resize the image to at least ", min_max_.second, " first");
  const int64_t top = static_cast<int64_t>((H - crop_h) * h_start), left = static_cast<int64_t>((W - crop_w) * w_start);
  x.image = resize(crop(x.image, top, left, crop_h, crop_w), height_, width_, Interp::Linear);
  if (x.mask.defined()) x.mask = resize(crop(x.mask, top, left, crop_h, crop_w), height_, width_, Interp::Nearest);
}

std::string RandomSizedCrop::describe() const {
  return str_cat("RandomSizedCrop(", min_max_.first, "..", min_max_.second, " -> ", height_, "x", width_, ", p ", p_, ")");
}

// ---- OneOf. ----

OneOf::OneOf(std::vector<std::pair<TransformPtr, double>> children, double p) : children_(std::move(children)), p_(p) {
  check_p(p, "OneOf");
  MEDTL_CHECK(!children_.empty(), "OneOf: no transforms to choose from");
  double total = 0;
  for (const auto& [t, weight] : children_) {
    MEDTL_CHECK(t != nullptr && weight >= 0, "OneOf: every child needs a transform and a weight >= 0");
    total += weight;
  }
  MEDTL_CHECK(total > 0, "OneOf: the weights sum to 0");
}

void OneOf::apply(ImageMask& x, SampleRng& rng) const {
  if (!(rng.uniform() < p_)) return;
  double total = 0;
  for (const auto& child : children_) total += child.second;
  const double u = rng.uniform() * total;
  double cumulative = 0;
  size_t pick = children_.size() - 1;
  for (size_t i = 0; i < children_.size(); ++i) {
    cumulative += children_[i].second;
    if (u < cumulative) {
      pick = i;
      break;
    }
  }
  children_[pick].first->apply(x, rng);
}

std::string OneOf::describe() const {
  std::string out = str_cat("OneOf(p ", p_, ": ");
  for (size_t i = 0; i < children_.size(); ++i) out += (i ? " | " : "") + children_[i].first->describe();
  return out + ")";
}

// ---- The paper's segmentation augmentation. ----

std::shared_ptr<Pipeline> paper_segmentation_augmentation(PixelRange range, int64_t size) {
  auto p = std::make_shared<Pipeline>();
  p->emplace<OneOf>(std::vector<std::pair<TransformPtr, double>>{
                        {std::make_shared<RandomBrightnessContrast>(0.2, 0.2, 1.0, range), 0.5},
                        {std::make_shared<RandomGamma>(std::make_pair(80.0, 120.0), 1.0, range), 0.5}},
                    0.3);
  p->emplace<OneOf>(std::vector<std::pair<TransformPtr, double>>{
                        {std::make_shared<ElasticTransform>(120.0, 6.0, 3.6, 1.0), 0.5},
                        {std::make_shared<GridDistortion>(5, 0.3, 1.0), 0.5},
                        {std::make_shared<OpticalDistortion>(2.0, 0.5, 1.0), 0.5}},
                    0.3);
  p->emplace<RandomSizedCrop>(std::pair<int64_t, int64_t>(std::min<int64_t>(156, size), size), size, size,
                              1.0, 0.25);
  return p;
}

}  // namespace medtl::data
