// Transforms: each one against a hand-computed expectation or a property that must hold exactly
// (flip, crop offsets, ten-crop order, resize rules, rotation, normalisation numbers, the
// albumentations formulas), joint image/mask geometry, and SampleRng determinism.
#include <algorithm>
#include <cmath>
#include <functional>
#include <set>

#include "data/augment.h"
#include "data/image.h"
#include "data/transforms.h"
#include "tests/test_util.h"

namespace medtl::data {
namespace {

using medtl::testing::tensors_close;
using medtl::testing::tensors_identical;

// (C, H, W) holding 0, 1, 2, ... row-major.
Tensor ramp(int64_t c, int64_t h, int64_t w) { return arange(0.0, static_cast<double>(c * h * w)).view({c, h, w}); }

// A random binary mask (1, h, w): blobs, so that geometry moves whole regions.
Tensor blob_mask(int64_t h, int64_t w, uint64_t seed) {
  SampleRng rng(seed, 0, 0);
  std::vector<float> v(h * w, 0.0f);
  for (int blob = 0; blob < 6; ++blob) {
    const double cy = rng.uniform(0, h), cx = rng.uniform(0, w), r = rng.uniform(h / 10.0, h / 4.0);
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        if ((y - cy) * (y - cy) + (x - cx) * (x - cx) < r * r) v[y * w + x] = 1.0f;
  }
  return from_vector<float>(v, {1, h, w});
}

// t * factor, element by element.
Tensor ops_scale(const Tensor& t, float factor) {
  std::vector<float> v = t.to_vector<float>();
  for (float& x : v) x *= factor;
  return from_vector<float>(v, t.shape());
}

bool is_binary(const Tensor& t) {
  for (float v : t.to_vector<float>())
    if (v != 0.0f && v != 1.0f) return false;
  return true;
}

// Fraction of pixels where (image > threshold) equals the mask.
double agreement(const Tensor& image, const Tensor& mask, float threshold) {
  const auto a = image.to_vector<float>(), m = mask.to_vector<float>();
  int64_t same = 0;
  for (size_t i = 0; i < m.size(); ++i) same += ((a[i] > threshold) == (m[i] > 0.5f));
  return static_cast<double>(same) / m.size();
}

// ---- SampleRng. ----

TEST(SampleRng, DeterministicAndKeyedBySeedEpochIndex) {
  SampleRng a(7, 2, 11), b(7, 2, 11);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.uniform(), b.uniform());
  EXPECT_EQ(a.draws(), 100u);
  const double first = SampleRng(7, 2, 11).uniform();
  EXPECT_NE(first, SampleRng(8, 2, 11).uniform());
  EXPECT_NE(first, SampleRng(7, 3, 11).uniform());
  EXPECT_NE(first, SampleRng(7, 2, 12).uniform());
  EXPECT_ERROR_CONTAINS(SampleRng(0, 0, int64_t(1) << 40), "sample index");
}

TEST(SampleRng, Distributions) {
  SampleRng rng(1, 0, 5);
  const int n = 20000;
  double sum = 0, sum_n = 0, sum_n2 = 0;
  std::vector<int> counts(5, 0);
  for (int i = 0; i < n; ++i) {
    const double u = rng.uniform(-2.0, 3.0);
    ASSERT_GE(u, -2.0);
    ASSERT_LT(u, 3.0);
    sum += u;
    const double z = rng.normal();
    sum_n += z;
    sum_n2 += z * z;
    const int64_t k = rng.integer(10, 15);
    ASSERT_GE(k, 10);
    ASSERT_LT(k, 15);
    counts[k - 10]++;
  }
  EXPECT_NEAR(sum / n, 0.5, 0.05);
  EXPECT_NEAR(sum_n / n, 0.0, 0.03);
  EXPECT_NEAR(sum_n2 / n, 1.0, 0.05);
  for (int c : counts) EXPECT_NEAR(c, n / 5, n / 5 * 0.1);
}

// ---- Exact geometry. ----

TEST(Transforms, HorizontalFlipIsExact) {
  const Tensor x = ramp(2, 3, 4);
  const Tensor f = hflip(x);
  for (int64_t c = 0; c < 2; ++c)
    for (int64_t y = 0; y < 3; ++y)
      for (int64_t w = 0; w < 4; ++w) EXPECT_EQ(f.at({c, y, w}), x.at({c, y, 3 - w}));
  EXPECT_TRUE(tensors_identical(hflip(f), x));
  // RandomHorizontalFlip(p=1) flips image and mask together; p=0 never.
  SampleRng rng(0, 0, 0);
  ImageMask im{x, ramp(1, 3, 4)};
  RandomHorizontalFlip(1.0).apply(im, rng);
  EXPECT_TRUE(tensors_identical(im.image, f));
  EXPECT_TRUE(tensors_identical(im.mask, hflip(ramp(1, 3, 4))));
  ImageMask same{x, Tensor()};
  RandomHorizontalFlip(0.0).apply(same, rng);
  EXPECT_TRUE(tensors_identical(same.image, x));
}

TEST(Transforms, CenterCropOffsetsFollowTorchvisionRounding) {
  // H 7 -> 4: top = round(1.5) = 2; W 9 -> 4: left = round(2.5) = 2 (Python rounds halves to even).
  const Tensor x = ramp(1, 7, 9);
  const Tensor c = center_crop_tv(x, 4, 4);
  EXPECT_EQ(c.at({0, 0, 0}), 2 * 9 + 2);
  // W 10 -> 3: left = round(3.5) = 4.
  EXPECT_EQ(center_crop_tv(ramp(1, 3, 10), 3, 3).at({0, 0, 0}), 4);
  // The paper's 256 -> 224: offset 16 on both axes.
  const Tensor big = ramp(1, 256, 256);
  SampleRng rng(0, 0, 0);
  ImageMask im{big, Tensor()};
  CenterCrop(224, 224).apply(im, rng);
  EXPECT_EQ(im.image.shape(), (Shape{1, 224, 224}));
  EXPECT_EQ(im.image.at({0, 0, 0}), 16 * 256 + 16);
  EXPECT_ERROR_CONTAINS(center_crop_tv(x, 8, 4), "larger than the image");
}

TEST(Transforms, TenCropOrderIsTorchvisions) {
  const Tensor x = ramp(1, 5, 6);  // value = 6 * y + x
  const std::vector<Tensor> crops = ten_crop(x, 3, 3);
  ASSERT_EQ(crops.size(), 10u);
  // top-left, top-right, bottom-left, bottom-right, centre (top round(1) = 1, left round(1.5) = 2).
  const double tl[5] = {0, 3, 12, 15, 8};
  for (int k = 0; k < 5; ++k) {
    EXPECT_EQ(crops[k].at({0, 0, 0}), tl[k]) << "crop " << k;
    EXPECT_TRUE(tensors_identical(crops[k + 5], crop(hflip(x), static_cast<int64_t>(tl[k]) / 6,
                                                     static_cast<int64_t>(tl[k]) % 6, 3, 3)))
        << "flipped crop " << k;
  }
  // The flipped top-left crop is the mirror of the original top-right one.
  EXPECT_TRUE(tensors_identical(crops[5], hflip(crops[1])));
  SampleRng rng(0, 0, 0);
  ImageMask im{ramp(3, 8, 8), ramp(1, 8, 8)};
  TenCrop(4, 4).apply(im, rng);
  EXPECT_EQ(im.image.shape(), (Shape{10, 3, 4, 4}));
  EXPECT_EQ(im.mask.shape(), (Shape{10, 1, 4, 4}));
}

TEST(Transforms, ResizeRules) {
  // Nearest downscale of 0..7 to 4: OpenCV floor(i * 2) = 0, 2, 4, 6; PIL floor((i + .5) * 2) = 1, 3, 5, 7.
  const Tensor row = ramp(1, 1, 8);
  EXPECT_EQ(resize(row, 1, 4, Interp::Nearest).to_vector<float>(), (std::vector<float>{0, 2, 4, 6}));
  EXPECT_EQ(resize(row, 1, 4, Interp::NearestCenter).to_vector<float>(), (std::vector<float>{1, 3, 5, 7}));
  // cv2 INTER_LINEAR upscale of (0, 10) to 4: sources -0.25, 0.25, 0.75, 1.25, clamped at the edges.
  const Tensor two = from_vector<float>({0, 10}, {1, 1, 2});
  EXPECT_TRUE(tensors_close(resize(two, 1, 4, Interp::Linear), from_vector<float>({0, 2.5f, 7.5f, 10}, {1, 1, 4})));
  // Antialias is data/image.h's PIL-style filter.
  const Tensor img = ramp(2, 20, 30);
  EXPECT_TRUE(tensors_identical(resize(img, 7, 9, Interp::Antialias), resize_bilinear(img, 7, 9)));
}

TEST(Transforms, ResizeKeepsMasksBinary) {
  const Tensor mask = blob_mask(37, 53, 3);
  const Tensor image = ramp(1, 37, 53);
  for (auto [h, w] : {std::pair<int64_t, int64_t>{224, 224}, {20, 31}, {64, 17}}) {
    SampleRng rng(0, 0, 0);
    ImageMask im{image, mask};
    Resize(h, w).apply(im, rng);
    EXPECT_EQ(im.mask.shape(), (Shape{1, h, w}));
    EXPECT_TRUE(is_binary(im.mask));
    ImageMask cv{image, mask};
    Resize(h, w, Interp::Nearest, Interp::Nearest).apply(cv, rng);
    EXPECT_TRUE(is_binary(cv.mask));
  }
}


// ---- RandomResizedCrop. ----

TEST(RandomResizedCrop, BoxesStayInBoundsWithTorchvisionStatistics) {
  const RandomResizedCrop rrc(224, 224);
  const int64_t H = 256, W = 256;
  const int n = 4000;
  double area_sum = 0, top_sum = 0;
  int top_count = 0;
  for (int i = 0; i < n; ++i) {
    SampleRng rng(5, 0, i);
    const CropBox b = rrc.sample_box(H, W, rng);
    ASSERT_GE(b.top, 0);
    ASSERT_GE(b.left, 0);
    ASSERT_GT(b.h, 0);
    ASSERT_GT(b.w, 0);
    ASSERT_LE(b.top + b.h, H);
    ASSERT_LE(b.left + b.w, W);
    const double fraction = static_cast<double>(b.h * b.w) / (H * W);
    EXPECT_GE(fraction, 0.08 * 0.9);
    if (b.h >= 40 && b.w >= 40) {  // rounding to whole pixels moves small boxes' ratio a little
      EXPECT_GE(static_cast<double>(b.w) / b.h, 0.75 * 0.96);
      EXPECT_LE(static_cast<double>(b.w) / b.h, 4.0 / 3.0 * 1.04);
    }
    area_sum += fraction;
    if (b.h < H) top_sum += static_cast<double>(b.top) / (H - b.h), ++top_count;
  }
  // Expected area fraction: scale ~ U(0.08, 1) and log-ratio ~ U(log 3/4, log 4/3), kept when the
  // box fits (s * r <= 1 and s / r <= 1 on a square image): integrate on a grid.
  double num = 0, den = 0;
  const int g = 800;
  for (int a = 0; a < g; ++a)
    for (int b = 0; b < g; ++b) {
      const double s = 0.08 + 0.92 * (a + 0.5) / g;
      const double r = std::exp(std::log(0.75) + (std::log(4.0 / 3.0) - std::log(0.75)) * (b + 0.5) / g);
      if (s * r <= 1 && s / r <= 1) num += s, den += 1;
    }
  EXPECT_NEAR(area_sum / n, num / den, 0.015);
  EXPECT_NEAR(top_sum / top_count, 0.5, 0.03);  // the window position is uniform
}

TEST(RandomResizedCrop, FallbackIsTheCentredAllowedRatio) {
  const RandomResizedCrop never_fits(10, 10, {2.0, 2.0});  // twice the image area: every attempt fails
  SampleRng rng(0, 0, 0);
  CropBox b = never_fits.sample_box(100, 300, rng);  // W/H = 3 > 4/3: h = 100, w = round(133.3)
  EXPECT_EQ(b.top, 0);
  EXPECT_EQ(b.h, 100);
  EXPECT_EQ(b.w, 133);
  EXPECT_EQ(b.left, (300 - 133) / 2);
  b = never_fits.sample_box(300, 100, rng);  // W/H = 1/3 < 3/4: w = 100, h = round(100 / 0.75)
  EXPECT_EQ(b.w, 100);
  EXPECT_EQ(b.h, 133);
  EXPECT_EQ(b.top, 83);
  b = never_fits.sample_box(100, 110, rng);  // ratio allowed: the whole image
  EXPECT_EQ(b.h, 100);
  EXPECT_EQ(b.w, 110);
  EXPECT_EQ(b.top + b.left, 0);
}

TEST(RandomResizedCrop, CropsImageAndMaskTogether) {
  const Tensor mask = blob_mask(90, 120, 9);
  for (int i = 0; i < 20; ++i) {
    ImageMask im{ops_scale(mask, 255.0f), mask};
    SampleRng rng(1, 0, i);
    RandomResizedCrop(64, 48, {0.08, 1.0}, {0.75, 4.0 / 3.0}, Interp::NearestCenter).apply(im, rng);
    ASSERT_EQ(im.image.shape(), (Shape{1, 64, 48}));
    ASSERT_EQ(im.mask.shape(), (Shape{1, 64, 48}));
    EXPECT_TRUE(is_binary(im.mask));
    EXPECT_EQ(agreement(im.image, im.mask, 127.5f), 1.0) << "sample " << i;
  }
}

// ---- Rotation. ----

TEST(Rotation, NinetyDegreesIsCounterClockwise) {
  const Tensor x = ramp(1, 6, 6);
  const Tensor r = rotate(x, 90.0, Interp::NearestCenter, -1.0f);
  for (int64_t y = 0; y < 6; ++y)
    for (int64_t w = 0; w < 6; ++w) EXPECT_EQ(r.at({0, y, w}), x.at({0, w, 5 - y})) << y << "," << w;  // np.rot90
  EXPECT_TRUE(tensors_identical(rotate(x, 0.0, Interp::Linear, -1.0f), x));
}

TEST(Rotation, SevenDegreesFillsCornersAndKeepsCentralSymmetry) {
  const int64_t h = 31, w = 41;
  const Tensor x = ramp(1, h, w);
  for (Interp interp : {Interp::NearestCenter, Interp::Linear}) {
    const Tensor r = rotate(ones({1, h, w}), 7.0, interp, 0.0f);
    EXPECT_EQ(r.at({0, 0, 0}), 0.0);
    EXPECT_EQ(r.at({0, h - 1, w - 1}), 0.0);
    EXPECT_EQ(r.at({0, h / 2, w / 2}), 1.0);
    int64_t filled = 0;
    for (int64_t y = 0; y < h; ++y)
      for (int64_t c = 0; c < w; ++c) {
        EXPECT_EQ(r.at({0, y, c}), r.at({0, h - 1 - y, w - 1 - c})) << "not symmetric at " << y << "," << c;
        filled += r.at({0, y, c}) == 0.0;
      }
    // The uncovered corners of a W x H rectangle turned by t: about (W^2 + H^2) sin t cos t / 2... bounded.
    EXPECT_GT(filled, 20);
    EXPECT_LT(filled, 200);
    // The centre pixel (the rotation centre is its centre) keeps its value.
    EXPECT_EQ(rotate(x, 7.0, interp, 0.0f).at({0, h / 2, w / 2}), x.at({0, h / 2, w / 2}));
  }
}

TEST(Rotation, RandomRotationMovesMaskWithImage) {
  const Tensor mask = blob_mask(64, 64, 4);
  for (int i = 0; i < 10; ++i) {
    ImageMask im{ops_scale(mask, 255.0f), mask};
    SampleRng rng(2, 1, i), copy(2, 1, i);
    RandomRotation(7.0).apply(im, rng);
    const double angle = copy.uniform(-7.0, 7.0);
    EXPECT_TRUE(tensors_identical(im.mask, rotate(mask, angle, Interp::NearestCenter, 0.0f)));
    EXPECT_TRUE(is_binary(im.mask));
    EXPECT_EQ(agreement(im.image, im.mask, 127.5f), 1.0);
  }
}

// ---- Values. ----

TEST(Normalize, ImagenetCaffeAndSingleChannelNumbers) {
  const Tensor rgb = from_vector<float>({255, 0, 51, 102, 10, 20}, {3, 1, 2});
  const Tensor n = Normalize::normalize(rgb, NormalizeSpec::imagenet());
  EXPECT_NEAR(n.at({0, 0, 0}), (1.0 - 0.485) / 0.229, 1e-5);
  EXPECT_NEAR(n.at({0, 0, 1}), (0.0 - 0.485) / 0.229, 1e-5);
  EXPECT_NEAR(n.at({1, 0, 0}), (0.2 - 0.456) / 0.224, 1e-5);
  EXPECT_NEAR(n.at({2, 0, 1}), (20.0 / 255 - 0.406) / 0.225, 1e-5);
  // caffe: RGB -> BGR, minus the BGR means, no scaling.
  const Tensor c = Normalize::normalize(rgb, NormalizeSpec::caffe());
  EXPECT_NEAR(c.at({0, 0, 0}), 10 - 103.939, 1e-4);   // B = input channel 2
  EXPECT_NEAR(c.at({1, 0, 1}), 102 - 116.779, 1e-4);  // G
  EXPECT_NEAR(c.at({2, 0, 0}), 255 - 123.68, 1e-4);   // R = input channel 0
  // One value for every channel; (10, C, H, W) after TenCrop works too.
  const Tensor g = Normalize::normalize(full({10, 1, 2, 2}, 255.0), NormalizeSpec::chestxray());
  EXPECT_NEAR(g.at({9, 0, 1, 1}), (1.0 - 0.5056) / 0.252, 1e-5);
  EXPECT_ERROR_CONTAINS(Normalize::normalize(ones({2, 2, 2}), NormalizeSpec::imagenet()), "3 mean values");
}

TEST(Normalize, GrayToRgbReplicates) {
  SampleRng rng(0, 0, 0);
  ImageMask im{ramp(1, 2, 3), Tensor()};
  GrayToRgb().apply(im, rng);
  ASSERT_EQ(im.image.shape(), (Shape{3, 2, 3}));
  for (int64_t c = 0; c < 3; ++c) EXPECT_EQ(im.image.at({c, 1, 2}), 5.0);
  ImageMask two{ramp(2, 2, 3), Tensor()};
  EXPECT_ERROR_CONTAINS(GrayToRgb().apply(two, rng), "2 channels");
}

TEST(Photometric, BrightnessContrastFormula) {
  const Tensor x = from_vector<float>({0, 100, 250}, {1, 1, 3});
  // uint8: clip(v * alpha + beta * 255, 0, 255) truncated, as albumentations' lookup table.
  const auto u = RandomBrightnessContrast::adjust(x, 1.1, 0.1, PixelRange::uint8_image()).to_vector<float>();
  EXPECT_EQ(u, (std::vector<float>{25, 135, 255}));  // 25.5 -> 25, 135.5 -> 135, 300.5 -> 255
  const auto d = RandomBrightnessContrast::adjust(x, 0.9, -0.2, PixelRange::uint8_image()).to_vector<float>();
  EXPECT_EQ(d, (std::vector<float>{0, 39, 174}));  // -51 -> 0, 39, 174
  const Tensor f = from_vector<float>({0.5f}, {1, 1, 1});
  EXPECT_NEAR(RandomBrightnessContrast::adjust(f, 1.2, 0.05, PixelRange::unit_float()).item(), 0.65, 1e-6);
  // The transform draws alpha = 1 + U(-c, c) then beta = U(-b, b) after its p draw.
  SampleRng rng(3, 0, 1), copy(3, 0, 1);
  ImageMask im{x, Tensor()};
  RandomBrightnessContrast(0.2, 0.2, 1.0).apply(im, rng);
  copy.uniform();
  const double alpha = 1.0 + copy.uniform(-0.2, 0.2), beta = copy.uniform(-0.2, 0.2);
  EXPECT_TRUE(tensors_identical(im.image, RandomBrightnessContrast::adjust(x, alpha, beta, PixelRange::uint8_image())));
}

TEST(Photometric, GammaFormula) {
  const Tensor x = from_vector<float>({0, 100, 255}, {1, 1, 3});
  const auto g = RandomGamma::adjust(x, 1.2, PixelRange::uint8_image()).to_vector<float>();
  EXPECT_EQ(g[0], 0);
  EXPECT_EQ(g[1], std::trunc(std::pow(100.0 / 255, 1.2) * 255));
  EXPECT_EQ(g[2], 255);
  EXPECT_NEAR(RandomGamma::adjust(from_vector<float>({0.5f}, {1, 1, 1}), 0.8, PixelRange::unit_float()).item(),
              std::pow(0.5, 0.8), 1e-6);
  SampleRng rng(4, 0, 2), copy(4, 0, 2);
  ImageMask im{x, ones({1, 1, 3})};
  RandomGamma({80, 120}, 1.0).apply(im, rng);
  copy.uniform();
  EXPECT_TRUE(tensors_identical(im.image, RandomGamma::adjust(x, copy.uniform(80, 120) / 100, PixelRange::uint8_image())));
  EXPECT_TRUE(tensors_identical(im.mask, ones({1, 1, 3})));  // photometric: the mask is untouched
}

// ---- OpenCV-style kernels. ----

TEST(Kernels, AffineFromPointsAndInverse) {
  const Affine m = affine_from_points({{{0, 0}, {1, 0}, {0, 1}}}, {{{1, 2}, {3, 2}, {1, 5}}});
  const Affine expected = {2, 0, 1, 0, 3, 2};
  for (int k = 0; k < 6; ++k) EXPECT_NEAR(m[k], expected[k], 1e-12);
  const Affine inv = invert_affine(m);
  EXPECT_NEAR(inv[0] * 3 + inv[1] * 5 + inv[2], 1.0, 1e-12);  // (3, 5) -> (1, 1)
  EXPECT_NEAR(inv[3] * 3 + inv[4] * 5 + inv[5], 1.0, 1e-12);
  EXPECT_ERROR_CONTAINS(affine_from_points({{{0, 0}, {1, 1}, {2, 2}}}, {{{0, 0}, {1, 1}, {2, 2}}}), "collinear");
}

TEST(Kernels, WarpAndRemapBorders) {
  const Tensor x = ramp(1, 1, 5);  // 0 1 2 3 4
  // Shift right by one: out[0] reads in[-1] = in[1] under BORDER_REFLECT_101.
  EXPECT_EQ(warp_affine(x, {1, 0, 1, 0, 1, 0}, Interp::Linear, Border::Reflect101).to_vector<float>(),
            (std::vector<float>{1, 0, 1, 2, 3}));
  EXPECT_EQ(warp_affine(x, {1, 0, -2, 0, 1, 0}, Interp::Nearest, Border::Constant, 9.0f).to_vector<float>(),
            (std::vector<float>{2, 3, 4, 9, 9}));
  EXPECT_EQ(warp_affine(x, {1, 0, -2, 0, 1, 0}, Interp::Linear, Border::Replicate).to_vector<float>(),
            (std::vector<float>{2, 3, 4, 4, 4}));
  // Nearest rounds halves to even (OpenCV's saturate_cast); Linear interpolates.
  const std::vector<float> mx = {0.5f, 1.5f, 2.25f, 5.0f}, my(4, 0.0f);
  EXPECT_EQ(remap(x, mx, my, 1, 4, Interp::Nearest, Border::Reflect101).to_vector<float>(),
            (std::vector<float>{0, 2, 2, 3}));
  EXPECT_EQ(remap(x, mx, my, 1, 4, Interp::Linear, Border::Reflect101).to_vector<float>(),
            (std::vector<float>{0.5f, 1.5f, 2.25f, 3}));
}

TEST(Kernels, GaussianFilterMatchesScipy) {
  const int64_t h = 61, w = 61;
  std::vector<double> delta(h * w, 0.0);
  delta[30 * w + 30] = 1.0;
  const std::vector<double> out = gaussian_filter(delta, h, w, 6.0);
  double norm = 0;  // scipy: radius int(4 * 6 + 0.5) = 24, weights exp(-k^2 / 72) / sum
  for (int k = -24; k <= 24; ++k) norm += std::exp(-k * k / 72.0);
  EXPECT_NEAR(out[30 * w + 30], 1.0 / (norm * norm), 1e-12);
  EXPECT_NEAR(out[30 * w + 40], std::exp(-100 / 72.0) / (norm * norm), 1e-12);
  EXPECT_EQ(out[30 * w + 55], 0.0);  // beyond the radius
  const std::vector<double> flat = gaussian_filter(std::vector<double>(20 * 30, 2.5), 20, 30, 6.0);
  for (double v : flat) EXPECT_NEAR(v, 2.5, 1e-12);  // reflect mode keeps a constant constant
}

TEST(Kernels, GridAndOpticalMaps) {
  // Width 10, 2 steps of 5 with factors 1: np.linspace(0, 5, 5) then np.linspace(5, 10, 5).
  std::vector<float> mx, my;
  GridDistortion::grid_maps(3, 10, 2, {1, 1, 1}, {1, 1, 1}, mx, my);
  const std::vector<float> row(mx.begin(), mx.begin() + 10);
  EXPECT_EQ(row, (std::vector<float>{0, 1.25f, 2.5f, 3.75f, 5, 5, 6.25f, 7.5f, 8.75f, 10}));
  GridDistortion::grid_maps(3, 10, 2, {1.2, 0.8, 1}, {1, 1, 1}, mx, my);
  EXPECT_FLOAT_EQ(mx[4], 6.0f);  // first cell ends at 5 * 1.2
  EXPECT_FLOAT_EQ(mx[9], 10.0f);
  // k = 0: the new camera's centre ((W - 1) / 2) against the old (W / 2) shifts by half a pixel.
  OpticalDistortion::optical_maps(4, 6, 0.0, 0.0, 0.0, mx, my);
  EXPECT_FLOAT_EQ(mx[0], 0.5f);
  EXPECT_FLOAT_EQ(my[23], 3.5f);
  // k = 2 at the top-left pixel of a 224 image: x = y = -111.5 / 224, r2 = 2 x^2, kr = 1 + k r2 + k r2^2.
  OpticalDistortion::optical_maps(224, 224, 2.0, 0.0, 0.0, mx, my);
  const double x0 = -111.5 / 224, r2 = 2 * x0 * x0, kr = 1 + 2 * r2 + 2 * r2 * r2;
  EXPECT_NEAR(mx[0], 224 * x0 * kr + 112, 1e-3);
}

// ---- albumentations' geometric transforms on image + mask. ----

TEST(Distortions, ElasticWithoutDisplacementIsIdentity) {
  const Tensor image = ramp(2, 32, 40), mask = blob_mask(32, 40, 1);
  ImageMask im{image, mask};
  SampleRng rng(0, 0, 0);
  ElasticTransform(0.0, 6.0, 0.0, 1.0).apply(im, rng);
  EXPECT_TRUE(tensors_close(im.image, image, 0, 1e-4));
  EXPECT_TRUE(tensors_identical(im.mask, mask));
}

// The joint property: a mask equal to the thresholded image stays equal (exactly, when the image
// is also read with Nearest; almost everywhere with bilinear), the mask stays binary, and the
// transform does move pixels.
void check_joint_geometry(const std::function<TransformPtr(Interp)>& make, const char* name) {
  const Tensor mask = blob_mask(96, 96, 7);
  const Tensor image = ops_scale(mask, 255.0f);
  int moved = 0;
  for (int i = 0; i < 8; ++i) {
    ImageMask exact{image, mask};
    SampleRng rng(11, 0, i);
    make(Interp::Nearest)->apply(exact, rng);
    EXPECT_TRUE(is_binary(exact.mask)) << name;
    EXPECT_EQ(agreement(exact.image, exact.mask, 127.5f), 1.0) << name << " sample " << i;
    ImageMask smooth{image, mask};
    SampleRng rng2(11, 0, i);
    make(Interp::Linear)->apply(smooth, rng2);
    EXPECT_TRUE(tensors_identical(smooth.mask, exact.mask)) << name;  // the mask does not depend on the image's interp
    EXPECT_GE(agreement(smooth.image, smooth.mask, 127.5f), 0.97) << name << " sample " << i;
    moved += !tensors_identical(exact.mask, mask);
  }
  EXPECT_GE(moved, 6) << name << " left the mask unchanged too often";
}

TEST(Distortions, ElasticKeepsMaskBinaryAndAligned) {
  check_joint_geometry([](Interp i) { return std::make_shared<ElasticTransform>(120.0, 6.0, 3.6, 1.0, i); }, "elastic");
}

TEST(Distortions, GridKeepsMaskBinaryAndAligned) {
  check_joint_geometry([](Interp i) { return std::make_shared<GridDistortion>(5, 0.3, 1.0, i); }, "grid");
}

TEST(Distortions, OpticalKeepsMaskBinaryAndAligned) {
  check_joint_geometry([](Interp i) { return std::make_shared<OpticalDistortion>(2.0, 0.5, 1.0, i); }, "optical");
}

TEST(Distortions, RandomSizedCrop) {
  const Tensor mask = blob_mask(224, 224, 5);
  const Tensor image = ops_scale(mask, 255.0f);
  for (int i = 0; i < 6; ++i) {
    ImageMask im{image, mask};
    SampleRng rng(3, 0, i);
    RandomSizedCrop({156, 224}, 224, 224, 1.0, 1.0).apply(im, rng);
    ASSERT_EQ(im.image.shape(), (Shape{1, 224, 224}));
    EXPECT_TRUE(is_binary(im.mask));
    EXPECT_GE(agreement(im.image, im.mask, 127.5f), 0.97);
  }
  ImageMask untouched{image, mask};
  SampleRng rng(3, 0, 0);
  RandomSizedCrop({156, 224}, 224, 224, 1.0, 0.0).apply(untouched, rng);
  EXPECT_TRUE(tensors_identical(untouched.image, image));
  ImageMask small{ones({1, 100, 100}), Tensor()};
  SampleRng rng2(3, 0, 0);
  EXPECT_ERROR_CONTAINS(RandomSizedCrop({156, 224}, 224, 224).apply(small, rng2), "larger than the image");
}

TEST(Distortions, OneOfPicksByWeightWithProbabilityP) {
  const Tensor x = ramp(1, 2, 3);
  const OneOf always_flip({{std::make_shared<RandomHorizontalFlip>(1.0), 1.0}, {std::make_shared<ScaleValues>(0.0), 0.0}}, 1.0);
  SampleRng rng(0, 0, 0);
  ImageMask im{x, Tensor()};
  always_flip.apply(im, rng);
  EXPECT_TRUE(tensors_identical(im.image, hflip(x)));
  const OneOf sometimes({{std::make_shared<RandomHorizontalFlip>(1.0), 0.5}, {std::make_shared<ScaleValues>(0.0), 0.5}}, 0.3);
  int flipped = 0, zeroed = 0;
  const int n = 3000;
  for (int i = 0; i < n; ++i) {
    ImageMask s{x, Tensor()};
    SampleRng r(9, 0, i);
    sometimes.apply(s, r);
    flipped += tensors_identical(s.image, hflip(x));
    zeroed += s.image.at({0, 0, 1}) == 0.0;
  }
  EXPECT_NEAR(flipped / double(n), 0.15, 0.03);
  EXPECT_NEAR(zeroed / double(n), 0.15, 0.03);
}

// ---- The paper's pipelines. ----

TEST(PaperPipelines, ClassificationShapesAndValues) {
  const Tensor gray = ramp(1, 64, 64);
  const Tensor image = ops_scale(gray, 255.0f / (64 * 64));
  SampleRng rng(1, 0, 3);
  ImageMask train{image, Tensor()};
  paper_classification_train(NormalizeSpec::imagenet())->apply(train, rng);
  ASSERT_EQ(train.image.shape(), (Shape{3, 224, 224}));
  // Channels are one gray image normalised three ways: c1 = (c0 * 0.229 + 0.485 - 0.456) / 0.224.
  EXPECT_NEAR(train.image.at({1, 100, 100}), (train.image.at({0, 100, 100}) * 0.229 + 0.485 - 0.456) / 0.224, 1e-5);
  ImageMask val{image, Tensor()};
  paper_classification_val(NormalizeSpec::imagenet())->apply(val, rng);
  EXPECT_EQ(val.image.shape(), (Shape{3, 224, 224}));
  ImageMask test{image, Tensor()};
  paper_classification_test(NormalizeSpec::imagenet())->apply(test, rng);
  EXPECT_EQ(test.image.shape(), (Shape{10, 3, 224, 224}));
  SampleRng fresh(1, 0, 3);
  ImageMask v2{image, Tensor()};
  paper_classification_val(NormalizeSpec::imagenet())->apply(v2, fresh);
  EXPECT_EQ(fresh.draws(), 0u);
  EXPECT_TRUE(tensors_identical(v2.image, val.image));
}

TEST(PaperPipelines, SegmentationAugmentationIsDeterministicAndKeepsMasks) {
  const auto pipeline = paper_segmentation_augmentation(PixelRange::uint8_image());
  const Tensor mask = blob_mask(224, 224, 2);
  const Tensor image = ops_scale(mask, 200.0f);
  int changed = 0;
  const int n = 60;
  for (int i = 0; i < n; ++i) {
    ImageMask a{image, mask}, b{image, mask};
    SampleRng ra(5, 2, i), rb(5, 2, i);
    pipeline->apply(a, ra);
    pipeline->apply(b, rb);
    ASSERT_EQ(a.image.shape(), (Shape{1, 224, 224}));
    ASSERT_EQ(a.mask.shape(), (Shape{1, 224, 224}));
    EXPECT_TRUE(tensors_identical(a.image, b.image));
    EXPECT_TRUE(tensors_identical(a.mask, b.mask));
    EXPECT_TRUE(is_binary(a.mask));
    changed += !tensors_identical(a.image, image);
  }
  // P(nothing happens) = 0.7 * 0.7 * 0.75 = 0.37.
  EXPECT_GT(changed, n * 0.45);
  EXPECT_LT(changed, n * 0.8);
  EXPECT_NE(pipeline->describe().find("ElasticTransform(alpha 120, sigma 6, alpha_affine 3.6"), std::string::npos)
      << pipeline->describe();
}

}  // namespace
}  // namespace medtl::data
