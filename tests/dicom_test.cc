// DICOM decoding on the real sample files of Debian's python3-pydicom (tools/fetch_dicom_samples.sh).
// Expected values were read with pydicom 2.3.1 + NumPy (pixel_array, apply_modality_lut) where
// pydicom can decode the file; for compressed files, the lossless ones must equal the
// uncompressed original and the lossy ones must be close to it (JPEG-lossy: two pixel values
// that pydicom's own test suite lists, read off in OsiriX).
#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "data/decode.h"
#include "data/dicom.h"
#include "tests/data_test_util.h"
#include "tests/test_util.h"

namespace medtl {
namespace {

using data::decode_dicom;
using testing::dicom_sample;

double sum(const Tensor& t) {
  double s = 0;
  for (float v : t.to_vector<float>()) s += v;
  return s;
}

TEST(Dicom, CtSmallInHounsfieldUnits) {
  // 128x128 CT, 16-bit signed, Rescale Slope 1, Intercept -1024.
  const auto d = decode_dicom(dicom_sample("CT_small.dcm"));
  EXPECT_EQ(d.pixels.shape(), (Shape{1, 128, 128}));
  EXPECT_EQ(d.bits_allocated, 16);
  EXPECT_TRUE(d.is_signed);
  EXPECT_EQ(d.rescale_slope, 1.0);
  EXPECT_EQ(d.rescale_intercept, -1024.0);
  EXPECT_EQ(d.photometric, "MONOCHROME2");
  EXPECT_EQ(d.pixels.at({0, 0, 0}), 175 - 1024);
  EXPECT_EQ(d.pixels.at({0, 0, 1}), 180 - 1024);
  EXPECT_EQ(d.pixels.at({0, 10, 20}), 185 - 1024);
  EXPECT_EQ(d.pixels.at({0, 127, 127}), 909 - 1024);
  EXPECT_DOUBLE_EQ(sum(d.pixels), -1950906.0);  // pydicom: apply_modality_lut(...).sum()
  data::DicomOptions raw;
  raw.apply_rescale = false;
  EXPECT_DOUBLE_EQ(sum(decode_dicom(dicom_sample("CT_small.dcm"), raw).pixels), 14826310.0);
}

TEST(Dicom, MrSmallEveryEncodingGivesTheSamePixels) {
  const Tensor reference = decode_dicom(dicom_sample("MR_small.dcm")).pixels;
  EXPECT_EQ(reference.shape(), (Shape{1, 64, 64}));
  EXPECT_DOUBLE_EQ(sum(reference), 2125338.0);
  EXPECT_EQ(reference.at({0, 0, 0}), 905);
  EXPECT_EQ(reference.at({0, 10, 20}), 316);
  for (const char* name : {"MR_small_bigendian.dcm", "MR_small_implicit.dcm", "MR_small_RLE.dcm",
                           "MR_small_jpeg_ls_lossless.dcm", "MR_small_expb.dcm", "MR_small_padded.dcm"}) {
    const auto d = decode_dicom(dicom_sample(name));
    EXPECT_TRUE(testing::tensors_identical(d.pixels, reference)) << name << " (" << d.transfer_syntax << ")";
  }
}

TEST(Dicom, Monochrome1IsInvertedAndRescaled) {
  // A 16x16 CR, MONOCHROME1, 12 bits stored, Rescale Slope 0.684, Intercept 200.
  const std::string path = dicom_sample("dicomdirtests/77654033/CR3/6278");
  EXPECT_TRUE(data::is_dicom_file(path));  // no .dcm name: recognised by its preamble
  const auto d = decode_dicom(path);
  EXPECT_EQ(d.photometric, "MONOCHROME1");
  EXPECT_EQ(d.bits_stored, 12);
  EXPECT_NEAR(d.rescale_slope, 0.684, 1e-12);
  EXPECT_EQ(d.rescale_intercept, 200.0);
  EXPECT_TRUE(d.has_window);
  EXPECT_EQ(d.window_center, 1600.0);
  EXPECT_EQ(d.window_width, 2800.0);
  // Stored (pydicom) first pixels 2551, 2604: inverted in the 12-bit range, then rescaled.
  EXPECT_NEAR(d.pixels.at({0, 0, 0}), 0.684 * (4095 - 2551) + 200, 1e-3);
  EXPECT_NEAR(d.pixels.at({0, 0, 1}), 0.684 * (4095 - 2604) + 200, 1e-3);
  // Sum: 0.684 * (256 * 4095 - 613147) + 256 * 200.
  EXPECT_NEAR(sum(d.pixels), 0.684 * (256.0 * 4095 - 613147) + 256 * 200, 0.05);
  data::DicomOptions keep;
  keep.invert_monochrome1 = false;
  EXPECT_NEAR(sum(decode_dicom(path, keep).pixels), 470592.548, 0.05);  // pydicom's modality sum
}

TEST(Dicom, EightBitDeflatedAndOneBit) {
  const auto dfl = decode_dicom(dicom_sample("image_dfl.dcm"));  // Deflated Explicit VR Little Endian
  EXPECT_EQ(dfl.pixels.shape(), (Shape{1, 512, 512}));
  EXPECT_DOUBLE_EQ(sum(dfl.pixels), 33322688.0);
  EXPECT_EQ(dfl.pixels.at({0, 0, 0}), 213);
  EXPECT_EQ(dfl.pixels.at({0, 10, 20}), 255);
  const auto bits = decode_dicom(dicom_sample("liver_1frame.dcm"));  // Bits Allocated 1
  EXPECT_EQ(bits.bits_allocated, 1);
  EXPECT_DOUBLE_EQ(sum(bits.pixels), 36233.0);
}

TEST(Dicom, MultiFrameThirtyTwoBit) {
  const std::string path = dicom_sample("rtdose.dcm");  // 15 frames of 10x10, uint32
  const auto first = decode_dicom(path);
  EXPECT_EQ(first.frames, 15);
  EXPECT_EQ(first.pixels.at({0, 0, 0}), 1249000);
  double total = 0;
  for (int64_t f = 0; f < 15; ++f) {
    data::DicomOptions o;
    o.frame = f;
    total += sum(decode_dicom(path, o).pixels);
  }
  EXPECT_DOUBLE_EQ(total, 1519910000.0);
  data::DicomOptions beyond;
  beyond.frame = 15;
  EXPECT_ERROR_CONTAINS(decode_dicom(path, beyond), "frame 15 requested, the file has 15");
}

TEST(Dicom, ColourRgbAndJpeg) {
  const auto odd = decode_dicom(dicom_sample("SC_rgb_small_odd.dcm"));  // 3x3 RGB, uncompressed
  ASSERT_EQ(odd.pixels.shape(), (Shape{3, 3, 3}));
  // pydicom rows: (166, 141, 52) x3, (63, 87, 176) x3, (158, 158, 158) x3.
  EXPECT_EQ(odd.pixels.at({0, 0, 0}), 166);
  EXPECT_EQ(odd.pixels.at({1, 0, 2}), 141);
  EXPECT_EQ(odd.pixels.at({2, 1, 1}), 176);
  EXPECT_EQ(odd.pixels.at({1, 2, 0}), 158);
  // Planar configuration 1 in big endian, and 16-bit RLE colour (pydicom sums).
  EXPECT_DOUBLE_EQ(sum(decode_dicom(dicom_sample("ExplVR_BigEnd.dcm")).pixels), 2470716.0);
  EXPECT_DOUBLE_EQ(sum(decode_dicom(dicom_sample("SC_rgb_rle_16bit.dcm")).pixels), 984567000.0);
  EXPECT_ERROR_CONTAINS(decode_dicom(dicom_sample("SC_ybr_full_422_uncompressed.dcm")), "YBR_FULL_422");
  // JPEG baseline stored as YBR_FULL, decoded to RGB: close to the lossless RLE copy of the picture.
  const Tensor lossless = decode_dicom(dicom_sample("SC_rgb_rle.dcm")).pixels;
  EXPECT_DOUBLE_EQ(sum(lossless), 3831000.0);
  const Tensor jpeg = decode_dicom(dicom_sample("SC_rgb_jpeg_dcmtk.dcm")).pixels;
  ASSERT_EQ(jpeg.shape(), lossless.shape());
  const auto a = jpeg.to_vector<float>(), b = lossless.to_vector<float>();
  double mean_abs = 0;
  for (size_t i = 0; i < a.size(); ++i) mean_abs += std::abs(a[i] - b[i]);
  mean_abs /= static_cast<double>(a.size());
  EXPECT_LT(mean_abs, 3.0);
}

TEST(Dicom, TwelveBitLossyJpeg) {
  const auto d = decode_dicom(dicom_sample("JPEG-lossy.dcm"));  // JPEG Extended, 12 bits
  ASSERT_EQ(d.pixels.shape(), (Shape{1, 1024, 256}));
  EXPECT_EQ(d.pixels.at({0, 420, 140}), 244);  // pydicom test_gdcm_pixel_data.py, from OsiriX
  EXPECT_EQ(d.pixels.at({0, 230, 120}), 95);
}

TEST(Dicom, LoadImageAppliesChannelPolicy) {
  const auto rgb = data::load_image(dicom_sample("CT_small.dcm"), data::ChannelPolicy::RGB);
  ASSERT_EQ(rgb.pixels.shape(), (Shape{3, 128, 128}));
  EXPECT_EQ(rgb.pixels.at({2, 10, 20}), 185 - 1024);
  const auto gray = data::load_image(dicom_sample("SC_rgb_small_odd.dcm"), data::ChannelPolicy::Gray);
  EXPECT_EQ(gray.pixels.at({0, 2, 2}), 158);
}

TEST(Dicom, ConcurrentDecodingMatchesSerial) {
  // The loader decodes from several threads at once: codecs (JPEG, JPEG-LS, RLE) must not interfere.
  const std::vector<std::string> names = {"MR_small_jpeg_ls_lossless.dcm", "JPEG-lossy.dcm", "MR_small_RLE.dcm",
                                          "SC_rgb_jpeg_dcmtk.dcm", "CT_small.dcm", "image_dfl.dcm"};
  std::vector<Tensor> serial;
  for (const auto& n : names) serial.push_back(decode_dicom(dicom_sample(n)).pixels);
  std::vector<std::vector<Tensor>> results(4, std::vector<Tensor>(names.size()));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int round = 0; round < 3; ++round)
        for (size_t k = 0; k < names.size(); ++k) {
          const size_t j = (k + t) % names.size();
          results[t][j] = decode_dicom(dicom_sample(names[j])).pixels;
        }
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t)
    for (size_t k = 0; k < names.size(); ++k) EXPECT_TRUE(testing::tensors_identical(results[t][k], serial[k])) << names[k];
}

TEST(Dicom, UnsupportedAndBrokenFilesAreNamed) {
  EXPECT_ERROR_CONTAINS(decode_dicom(dicom_sample("JPEG2000.dcm")), "cannot be decoded here");
  EXPECT_ERROR_CONTAINS(decode_dicom(dicom_sample("rtplan.dcm")), "has no Pixel Data");
  EXPECT_ERROR_CONTAINS(decode_dicom("/nonexistent/x.dcm"), "x.dcm': no such file");
  const std::string dir = testing::scratch_dir("dicom_broken");
  const std::string bytes = testing::read_bytes(dicom_sample("CT_small.dcm"));
  testing::write_text(dir + "/cut.dcm", bytes.substr(0, bytes.size() / 2));
  EXPECT_ERROR_CONTAINS(decode_dicom(dir + "/cut.dcm"), "cut.dcm");
  testing::write_text(dir + "/text.dcm", "hello");
  EXPECT_ERROR_CONTAINS(decode_dicom(dir + "/text.dcm"), "text.dcm");
}

}  // namespace
}  // namespace medtl
