// Image decoding: PNG (8/16-bit, gray, gray+alpha, RGB, RGBA), JPEG, BMP, GIF, TIFF (8/16-bit),
// the channel policies (PIL's luma, replication, alpha dropped), and the errors for missing,
// empty, truncated and non-image files. Test images are written here with known pixel values.
#include <gtest/gtest.h>

#include <cmath>

#include "data/decode.h"
#include "data/image.h"
#include "tests/data_test_util.h"
#include "tests/test_util.h"

namespace medtl {
namespace {

using data::ChannelPolicy;
using data::decode_image;

std::vector<uint16_t> ramp(int n, int step, int modulo) {
  std::vector<uint16_t> v(n);
  for (int i = 0; i < n; ++i) v[i] = static_cast<uint16_t>((i * step) % modulo);
  return v;
}

// PIL's convert('L') on 8-bit RGB.
float pil_luma(int r, int g, int b) { return static_cast<float>((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16); }

class ImageDecode : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::scratch_dir("image_decode"); }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  std::string dir_;
};

TEST_F(ImageDecode, Png8BitGrayExactUnderEveryPolicy) {
  const int w = 7, h = 5;
  const auto values = ramp(w * h, 7, 256);
  testing::write_gray_png(path("g.png"), w, h, values);
  const auto keep = decode_image(path("g.png"), ChannelPolicy::Keep);
  EXPECT_EQ(keep.bits_per_channel, 8);
  EXPECT_EQ(keep.channels_in_file, 1);
  ASSERT_EQ(keep.pixels.shape(), (Shape{1, h, w}));
  for (int i = 0; i < w * h; ++i) EXPECT_EQ(keep.pixels.data<float>()[i], values[i]);
  for (ChannelPolicy p : {ChannelPolicy::RGB, ChannelPolicy::Gray3}) {
    const auto rgb = decode_image(path("g.png"), p);
    ASSERT_EQ(rgb.pixels.shape(), (Shape{3, h, w})) << data::channel_policy_name(p);
    for (int c = 0; c < 3; ++c) EXPECT_TRUE(testing::tensors_identical(rgb.pixels.select(0, c), keep.pixels.select(0, 0)));
  }
  EXPECT_TRUE(testing::tensors_identical(decode_image(path("g.png"), ChannelPolicy::Gray).pixels, keep.pixels));
}

TEST_F(ImageDecode, Png16BitKeepsTheFullRange) {
  const int w = 4, h = 3;
  const std::vector<uint16_t> values = {0, 1, 255, 256, 1000, 4095, 30000, 40000, 65534, 65535, 12345, 54321};
  testing::write_png(path("g16.png"), w, h, 1, 16, values);
  const auto d = decode_image(path("g16.png"), ChannelPolicy::Keep);
  EXPECT_EQ(d.bits_per_channel, 16);
  for (int i = 0; i < w * h; ++i) EXPECT_EQ(d.pixels.data<float>()[i], values[i]) << i;

  // 16-bit RGB to gray: 0.299 R + 0.587 G + 0.114 B, rounded.
  const std::vector<uint16_t> rgb = {65535, 0, 0, 0, 65535, 0, 0, 0, 65535, 1000, 2000, 3000};
  testing::write_png(path("c16.png"), 2, 2, 3, 16, rgb);
  const auto g = decode_image(path("c16.png"), ChannelPolicy::Gray);
  ASSERT_EQ(g.pixels.shape(), (Shape{1, 2, 2}));
  const float* p = g.pixels.data<float>();
  EXPECT_EQ(p[0], std::floor(0.299 * 65535 + 0.5));
  EXPECT_EQ(p[1], std::floor(0.587 * 65535 + 0.5));
  EXPECT_EQ(p[2], std::floor(0.114 * 65535 + 0.5));
  EXPECT_EQ(p[3], std::floor(0.299 * 1000 + 0.587 * 2000 + 0.114 * 3000 + 0.5));
}

TEST_F(ImageDecode, RgbaPolicies) {
  // RGBA pixels: red, green, blue, a mixed colour; alpha varies and must never leak in.
  const std::vector<uint16_t> rgba = {255, 0, 0, 10, 0, 255, 0, 128, 0, 0, 255, 255, 10, 200, 30, 0};
  testing::write_png(path("c.png"), 2, 2, 4, 8, rgba);
  const auto keep = decode_image(path("c.png"), ChannelPolicy::Keep);
  EXPECT_EQ(keep.channels_in_file, 4);
  ASSERT_EQ(keep.pixels.shape(), (Shape{4, 2, 2}));
  EXPECT_EQ(keep.pixels.at({3, 0, 1}), 128);

  const auto rgb = decode_image(path("c.png"), ChannelPolicy::RGB);
  ASSERT_EQ(rgb.pixels.shape(), (Shape{3, 2, 2}));
  EXPECT_EQ(rgb.pixels.at({0, 0, 0}), 255);
  EXPECT_EQ(rgb.pixels.at({1, 1, 1}), 200);

  const auto gray = decode_image(path("c.png"), ChannelPolicy::Gray);
  ASSERT_EQ(gray.pixels.shape(), (Shape{1, 2, 2}));
  EXPECT_EQ(gray.pixels.at({0, 0, 0}), pil_luma(255, 0, 0));  // 76, as PIL
  EXPECT_EQ(gray.pixels.at({0, 0, 1}), pil_luma(0, 255, 0));  // 150
  EXPECT_EQ(gray.pixels.at({0, 1, 0}), pil_luma(0, 0, 255));  // 29
  EXPECT_EQ(gray.pixels.at({0, 1, 1}), pil_luma(10, 200, 30));
  EXPECT_EQ(pil_luma(255, 0, 0), 76);

  const auto gray3 = decode_image(path("c.png"), ChannelPolicy::Gray3);
  ASSERT_EQ(gray3.pixels.shape(), (Shape{3, 2, 2}));
  for (int c = 0; c < 3; ++c) EXPECT_TRUE(testing::tensors_identical(gray3.pixels.select(0, c), gray.pixels.select(0, 0)));
}

TEST_F(ImageDecode, GrayAlphaDropsAlpha) {
  testing::write_png(path("ga.png"), 2, 1, 2, 8, {100, 0, 200, 255});
  const auto keep = decode_image(path("ga.png"), ChannelPolicy::Keep);
  EXPECT_EQ(keep.pixels.shape(), (Shape{2, 1, 2}));
  const auto gray = decode_image(path("ga.png"), ChannelPolicy::Gray);
  EXPECT_EQ(gray.pixels.to_vector<float>(), (std::vector<float>{100, 200}));
  const auto rgb = decode_image(path("ga.png"), ChannelPolicy::RGB);
  EXPECT_EQ(rgb.pixels.to_vector<float>(), (std::vector<float>{100, 200, 100, 200, 100, 200}));
}

TEST_F(ImageDecode, BmpExactJpegClose) {
  const int w = 16, h = 8;
  std::vector<uint8_t> rgb(w * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      rgb[(y * w + x) * 3 + 0] = static_cast<uint8_t>(x * 16);
      rgb[(y * w + x) * 3 + 1] = static_cast<uint8_t>(y * 32);
      rgb[(y * w + x) * 3 + 2] = 128;
    }
  ASSERT_NE(stbi_write_bmp(path("a.bmp").c_str(), w, h, 3, rgb.data()), 0);
  ASSERT_NE(stbi_write_jpg(path("a.jpg").c_str(), w, h, 3, rgb.data(), 100), 0);
  const auto bmp = decode_image(path("a.bmp"), ChannelPolicy::Keep);
  const auto jpg = decode_image(path("a.jpg"), ChannelPolicy::Keep);
  ASSERT_EQ(bmp.pixels.shape(), (Shape{3, h, w}));
  ASSERT_EQ(jpg.pixels.shape(), (Shape{3, h, w}));
  double worst = 0;
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        EXPECT_EQ(bmp.pixels.at({c, y, x}), rgb[(y * w + x) * 3 + c]);
        worst = std::max(worst, std::abs(jpg.pixels.at({c, y, x}) - rgb[(y * w + x) * 3 + c]));
      }
  EXPECT_LT(worst, 12.0) << "JPEG at quality 100 should be close to the source";
}

TEST_F(ImageDecode, GifPaletteAndMask) {
  const int w = 20, h = 15;  // 300 pixels: crosses the writer's LZW clear interval
  std::vector<uint8_t> on(w * h);
  for (int i = 0; i < w * h; ++i) on[i] = (i % 3 == 0) ? 1 : 0;
  testing::write_mask_gif(path("m.gif"), w, h, on);
  const auto gray = decode_image(path("m.gif"), ChannelPolicy::Gray);
  ASSERT_EQ(gray.pixels.shape(), (Shape{1, h, w}));
  for (int i = 0; i < w * h; ++i) ASSERT_EQ(gray.pixels.data<float>()[i], on[i] ? 255.0f : 0.0f) << i;

  testing::write_gif(path("p.gif"), 3, 1, {10, 20, 30, 40, 50, 60, 70, 80, 90}, {2, 0, 1});
  const auto rgb = decode_image(path("p.gif"), ChannelPolicy::RGB);
  EXPECT_EQ(rgb.pixels.to_vector<float>(), (std::vector<float>{70, 10, 40, 80, 20, 50, 90, 30, 60}));
}

TEST_F(ImageDecode, Tiff8And16Bit) {
  const int w = 5, h = 9;  // several strips of 4 rows
  std::vector<uint16_t> rgb(w * h * 3);
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<uint16_t>((i * 37) % 256);
  testing::write_tiff(path("c.tif"), w, h, 3, 8, rgb);
  const auto c = decode_image(path("c.tif"), ChannelPolicy::Keep);
  EXPECT_EQ(c.bits_per_channel, 8);
  ASSERT_EQ(c.pixels.shape(), (Shape{3, h, w}));
  for (int ch = 0; ch < 3; ++ch)
    for (int i = 0; i < w * h; ++i) ASSERT_EQ(c.pixels.data<float>()[ch * w * h + i], rgb[i * 3 + ch]);

  std::vector<uint16_t> g16(w * h);
  for (size_t i = 0; i < g16.size(); ++i) g16[i] = static_cast<uint16_t>(i * 1400 + 7);
  testing::write_tiff(path("g16.tiff"), w, h, 1, 16, g16);
  const auto g = decode_image(path("g16.tiff"), ChannelPolicy::Gray3);
  EXPECT_EQ(g.bits_per_channel, 16);
  ASSERT_EQ(g.pixels.shape(), (Shape{3, h, w}));
  for (int i = 0; i < w * h; ++i) ASSERT_EQ(g.pixels.data<float>()[2 * w * h + i], g16[i]);
}

TEST_F(ImageDecode, LoadImageUsesContentNotName) {
  testing::write_gray_png(path("really_a_png.jpg"), 2, 2, {1, 2, 3, 4});
  const auto d = data::load_image(path("really_a_png.jpg"), ChannelPolicy::Gray);
  EXPECT_EQ(d.pixels.to_vector<float>(), (std::vector<float>{1, 2, 3, 4}));
}

TEST_F(ImageDecode, BadFilesNameTheFileAndTheProblem) {
  EXPECT_ERROR_CONTAINS(decode_image(path("absent.png"), ChannelPolicy::RGB), "absent.png': no such file");
  testing::write_text(path("empty.png"), "");
  EXPECT_ERROR_CONTAINS(decode_image(path("empty.png"), ChannelPolicy::RGB), "empty.png': the file is empty");
  testing::write_text(path("text.png"), "this is not an image at all, just some text");
  EXPECT_ERROR_CONTAINS(decode_image(path("text.png"), ChannelPolicy::RGB), "cannot decode image '" + path("text.png"));
  // A PNG cut in half: the compressed data ends early.
  std::vector<uint16_t> noise(64 * 64);
  for (size_t i = 0; i < noise.size(); ++i) noise[i] = static_cast<uint16_t>((i * 7919) % 251);
  testing::write_gray_png(path("whole.png"), 64, 64, noise);
  const std::string bytes = testing::read_bytes(path("whole.png"));
  testing::write_text(path("cut.png"), bytes.substr(0, bytes.size() / 2));
  EXPECT_ERROR_CONTAINS(decode_image(path("cut.png"), ChannelPolicy::Gray), "cut.png");
  testing::write_text(path("cut.tif"), std::string("II*\0", 4) + "garbage");
  EXPECT_ERROR_CONTAINS(decode_image(path("cut.tif"), ChannelPolicy::Gray), "cannot decode TIFF");
}

}  // namespace
}  // namespace medtl
