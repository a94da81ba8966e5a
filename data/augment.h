// albumentations 0.4.3 transforms on an image and its mask: the paper's segmentation
// augmentation (paper-protocol.md 4.2) -- brightness/contrast, gamma, elastic and grid
// distortion, optical distortion, RandomSizedCrop, OneOf -- with albumentations' parameter
// draws, defaults and formulas, and OpenCV's coordinates and border rules.
//
// Every transform here has albumentations' probability p: it draws u = rng.uniform() and acts
// when u < p (always one draw, so later draws do not shift with the outcome). Parameters then come
// from the same SampleRng, in albumentations' order. The mask (if any) gets the same geometry with
// nearest interpolation, so it stays binary; photometric transforms leave it alone.
//
// What is not bit-exact with albumentations + OpenCV (documented in docs/data.md): the random
// numbers (Philox instead of Python's / NumPy's generators); OpenCV's 1/32-pixel fixed-point
// bilinear weights (we interpolate in float); uint8 rounding between steps unless a transform is
// told that the image holds uint8 values (PixelRange::uint8).
#pragma once

#include <utility>
#include <vector>

#include "data/transforms.h"

namespace medtl::data {

// The value range an image lives in, which albumentations reads off the array's dtype.
struct PixelRange {
  double max_value = 255.0;
  // true: the image holds 0..255 integers (a uint8 array in albumentations): results are
  // truncated to integers and clipped to [0, 255] as albumentations' lookup tables do.
  // false: float semantics, results clipped to [0, max_value] (float32 arrays, max_value 1).
  bool uint8 = true;
  static PixelRange uint8_image() { return {255.0, true}; }
  static PixelRange unit_float() { return {1.0, false}; }
};

// RandomBrightnessContrast(brightness_limit, contrast_limit, brightness_by_max=True):
// alpha = 1 + U(-contrast, contrast), beta = U(-brightness, brightness),
// out = clip(in * alpha + beta * max_value, 0, max_value).
class RandomBrightnessContrast : public Transform {
 public:
  RandomBrightnessContrast(double brightness_limit = 0.2, double contrast_limit = 0.2, double p = 0.5,
                           PixelRange range = {});
  void apply(ImageMask& x, SampleRng& rng) const override;
  std::string describe() const override;
  static Tensor adjust(const Tensor& image, double alpha, double beta, PixelRange range);

 private:
  double brightness_, contrast_, p_;
  PixelRange range_;
};

// RandomGamma(gamma_limit=(80, 120)): gamma = U(lo, hi) / 100, out = (in / max)^gamma * max.
class RandomGamma : public Transform {
 public:
  explicit RandomGamma(std::pair<double, double> gamma_limit = {80, 120}, double p = 0.5, PixelRange range = {});
  void apply(ImageMask& x, SampleRng& rng) const override;
  std::string describe() const override;
  static Tensor adjust(const Tensor& image, double gamma, PixelRange range);

 private:
  std::pair<double, double> limit_;
  double p_;
  PixelRange range_;
};

// ElasticTransform(alpha, sigma, alpha_affine) (albumentations' defaults 1, 50, 50; the paper
// 120, 6, 3.6): a random affine moving three points by U(-alpha_affine, alpha_affine) each, then a
// displacement field alpha * gaussian_filter(U(-1, 1), sigma) per axis, both with cv2 remap
// (BORDER_REFLECT_101). Image: Linear; mask: Nearest, same matrix and fields.
class ElasticTransform : public Transform {
 public:
  ElasticTransform(double alpha = 1.0, double sigma = 50.0, double alpha_affine = 50.0, double p = 0.5,
                   Interp image_interp = Interp::Linear, Border border = Border::Reflect101);
  void apply(ImageMask& x, SampleRng& rng) const override;
  std::string describe() const override;

 private:
  double alpha_, sigma_, alpha_affine_, p_;
  Interp image_interp_;
  Border border_;
};

// GridDistortion(num_steps=5, distort_limit=0.3): num_steps + 1 random step factors
// 1 + U(-limit, limit) per axis, piecewise-linear maps between grid lines, cv2 remap.
class GridDistortion : public Transform {
 public:
  GridDistortion(int64_t num_steps = 5, double distort_limit = 0.3, double p = 0.5,
                 Interp image_interp = Interp::Linear, Border border = Border::Reflect101);
  void apply(ImageMask& x, SampleRng& rng) const override;
  std::string describe() const override;
  // albumentations' F.grid_distortion maps for the given steps (num_steps + 1 each).
  static void grid_maps(int64_t h, int64_t w, int64_t num_steps, const std::vector<double>& xsteps,
                        const std::vector<double>& ysteps, std::vector<float>& map_x, std::vector<float>& map_y);

 private:
  int64_t num_steps_;
  double limit_, p_;
  Interp image_interp_;
  Border border_;
};

// OpticalDistortion(distort_limit=0.05, shift_limit=0.05) (the paper: 2, 0.5): k = U(-d, d),
// dx, dy = round(U(-s, s)); the radial lens model of cv2.initUndistortRectifyMap with camera
// fx = W, fy = H, centre (W/2 + dx, H/2 + dy), distortion (k, k, 0, 0, 0), then cv2 remap.
class OpticalDistortion : public Transform {
 public:
  OpticalDistortion(double distort_limit = 0.05, double shift_limit = 0.05, double p = 0.5,
                    Interp image_interp = Interp::Linear, Border border = Border::Reflect101);
  void apply(ImageMask& x, SampleRng& rng) const override;
  std::string describe() const override;
  static void optical_maps(int64_t h, int64_t w, double k, double dx, double dy, std::vector<float>& map_x,
                           std::vector<float>& map_y);

 private:
  double distort_limit_, shift_limit_, p_;
  Interp image_interp_;
  Border border_;
};

// RandomSizedCrop(min_max_height, height, width, w2h_ratio=1): crop height = randint(lo, hi)
// inclusive, width = int(height * w2h_ratio), corner at int((H - h) * U) / int((W - w) * U), then
// cv2.resize to (height, width): Linear image, Nearest mask.
class RandomSizedCrop : public Transform {
 public:
  RandomSizedCrop(std::pair<int64_t, int64_t> min_max_height, int64_t height, int64_t width, double w2h_ratio = 1.0,
                  double p = 1.0);
  void apply(ImageMask& x, SampleRng& rng) const override;
  std::string describe() const override;

 private:
  std::pair<int64_t, int64_t> min_max_;
  int64_t height_, width_;
  double w2h_ratio_, p_;
};

// OneOf(transforms, p): with probability p, one child chosen with probability proportional to its
// weight (albumentations: the children's own p, 0.5 each by default) is applied with certainty.
class OneOf : public Transform {
 public:
  // children: each transform with its weight.
  OneOf(std::vector<std::pair<TransformPtr, double>> children, double p = 0.5);
  void apply(ImageMask& x, SampleRng& rng) const override;
  std::string describe() const override;

 private:
  std::vector<std::pair<TransformPtr, double>> children_;
  double p_;
};

// The paper's segmentation train/val augmentation (albumentations 0.4.3), for an image already
// resized to size x size (the paper: Resize(size, size, Nearest, Nearest) first):
//   OneOf([RandomBrightnessContrast(), RandomGamma()], p=0.3)
//   OneOf([ElasticTransform(120, 6, 3.6), GridDistortion(), OpticalDistortion(2, 0.5)], p=0.3)
//   RandomSizedCrop((156, size), size, size, p=0.25)
// OneOf applies its pick with certainty (albumentations' force_apply), so the children are built
// with p = 1 and weight 0.5 (their default p). `range` says whether the image holds 0..255 uint8
// values (divide by 255 afterwards) or was already scaled to [0, 1].
std::shared_ptr<Pipeline> paper_segmentation_augmentation(PixelRange range, int64_t size = 224);

}  // namespace medtl::data
