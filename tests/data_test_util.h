// Helpers for the data/ tests: where the real data lies (../shared/data beside the checkout, the
// DICOM samples in the cache), scratch folders, and small writers for test images (PNG 8/16-bit
// through zlib, GIF, JPEG/BMP through stb_image_write, TIFF through libtiff) and text files.
//
// Finding ../shared/data from inside a Bazel test: the test's working directory is its runfiles
// tree, somewhere under Bazel's output base, so a relative "../shared" means nothing there. But
// every runfile is a symlink back into the source tree. This header is listed in the tests'
// `data`, so resolving the symlink "<runfiles>/medtl/tests/data_test_util.h" gives
// "<checkout>/tests/data_test_util.h", and the shared data is "<checkout>/../shared/data": the
// layout of every developer machine and of CI (a clone of the project with ../shared beside it).
// $MEDTL_SHARED_DATA, when set (bazel test --test_env=MEDTL_SHARED_DATA=/path), overrides this.
#pragma once

#include <gtest/gtest.h>
#include <stb/stb_image_write.h>
#include <tiffio.h>
#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "data/files.h"
#include "tensor/error.h"

namespace medtl::testing {

// The folder holding the real sample datasets (nih-chestxray14-1000-64px/, pneumoniamnist/, ...).
// Throws, saying how to fix it, when it cannot be found.
inline std::string shared_data_dir() {
  namespace fs = std::filesystem;
  if (const char* env = std::getenv("MEDTL_SHARED_DATA"); env != nullptr && env[0] != '\0') {
    if (fs::is_directory(env)) return env;
    throw Error(std::string("MEDTL_SHARED_DATA='") + env + "' is not a folder");
  }
  std::vector<fs::path> anchors;
  for (const char* var : {"TEST_SRCDIR"}) {
    if (const char* root = std::getenv(var); root != nullptr) {
      const char* workspace = std::getenv("TEST_WORKSPACE");
      anchors.push_back(fs::path(root) / (workspace ? workspace : "medtl") / "tests/data_test_util.h");
    }
  }
  anchors.push_back(fs::path("tests/data_test_util.h"));  // run from the checkout or the runfiles root
  for (const auto& anchor : anchors) {
    std::error_code ec;
    const fs::path real = fs::canonical(anchor, ec);
    if (ec) continue;
    // <checkout>/tests/data_test_util.h -> <checkout>/../shared/data; walk up in case of extra levels.
    for (fs::path dir = real.parent_path(); !dir.empty() && dir != dir.root_path(); dir = dir.parent_path()) {
      const fs::path candidate = dir.parent_path() / "shared" / "data";
      if (fs::is_directory(candidate)) return candidate.string();
    }
  }
  throw Error(
      "cannot find ../shared/data beside the checkout (looked next to the real path of tests/data_test_util.h); "
      "run from a checkout with ../shared beside it, or pass --test_env=MEDTL_SHARED_DATA=/path/to/shared/data");
}

inline std::string shared_data(const std::string& relative) { return shared_data_dir() + "/" + relative; }

// A DICOM sample of Debian's python3-pydicom, fetched by tools/fetch_dicom_samples.sh.
inline std::string dicom_sample(const std::string& name) {
  const std::string path = data::cache_dir() + "/dicom/pydicom/" + name;
  if (!std::filesystem::exists(path))
    throw Error("missing " + path + ": run ./setup.sh (or tools/fetch_dicom_samples.sh)");
  return path;
}

// A fresh, empty folder under $TEST_TMPDIR (or /tmp) for one test.
inline std::string scratch_dir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::filesystem::path dir = std::filesystem::path(tmp ? tmp : "/tmp") / ("medtl_" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

inline void write_text(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out.good()) throw Error("cannot write " + path);
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// PNG of `channels` (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) at 8 or 16 bits; samples interleaved
// row-major, one value per sample.
inline void write_png(const std::string& path, int w, int h, int channels, int bits, const std::vector<uint16_t>& samples) {
  auto be32 = [](std::string& s, uint32_t v) {
    for (int i = 3; i >= 0; --i) s += static_cast<char>((v >> (8 * i)) & 0xff);
  };
  auto chunk = [&](std::string& out, const char* type, const std::string& data) {
    be32(out, static_cast<uint32_t>(data.size()));
    std::string body = std::string(type, 4) + data;
    out += body;
    be32(out, static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size()))));
  };
  static const int kColourType[5] = {0, 0, 4, 2, 6};
  std::string ihdr;
  be32(ihdr, w);
  be32(ihdr, h);
  ihdr += static_cast<char>(bits);
  ihdr += static_cast<char>(kColourType[channels]);
  ihdr += std::string("\0\0\0", 3);
  std::string raw;
  for (int y = 0; y < h; ++y) {
    raw += '\0';  // filter: none
    for (int i = 0; i < w * channels; ++i) {
      const uint16_t v = samples[static_cast<size_t>(y) * w * channels + i];
      if (bits == 16) raw += static_cast<char>(v >> 8);
      raw += static_cast<char>(v & 0xff);
    }
  }
  uLongf size = compressBound(static_cast<uLong>(raw.size()));
  std::string packed(size, '\0');
  compress(reinterpret_cast<Bytef*>(packed.data()), &size, reinterpret_cast<const Bytef*>(raw.data()), static_cast<uLong>(raw.size()));
  packed.resize(size);
  std::string out("\x89PNG\r\n\x1a\n", 8);
  chunk(out, "IHDR", ihdr);
  chunk(out, "IDAT", packed);
  chunk(out, "IEND", "");
  write_text(path, out);
}

// 8-bit gray PNG from values 0..255.
inline void write_gray_png(const std::string& path, int w, int h, const std::vector<uint16_t>& values) {
  write_png(path, w, h, 1, 8, values);
}

// A GIF with a global palette (up to 256 RGB entries) and one frame of palette indices, encoded
// as "uncompressed" LZW: 9-bit codes with a clear code often enough that the table never grows.
inline void write_gif(const std::string& path, int w, int h, const std::vector<uint8_t>& palette_rgb,
                      const std::vector<uint8_t>& indices) {
  std::string out = "GIF89a";
  auto le16 = [&](int v) { out += static_cast<char>(v & 0xff); out += static_cast<char>((v >> 8) & 0xff); };
  le16(w);
  le16(h);
  out += static_cast<char>(0xF7);  // global table, 8 bits colour resolution, 256 entries
  out += '\0';
  out += '\0';
  std::vector<uint8_t> table(768, 0);
  std::copy(palette_rgb.begin(), palette_rgb.end(), table.begin());
  out.append(reinterpret_cast<const char*>(table.data()), table.size());
  out += ',';
  le16(0); le16(0); le16(w); le16(h);
  out += '\0';
  out += static_cast<char>(8);  // LZW minimum code size
  std::string codes;
  uint32_t buffer = 0;
  int nbits = 0;
  auto emit = [&](uint32_t code) {
    buffer |= code << nbits;
    nbits += 9;
    while (nbits >= 8) { codes += static_cast<char>(buffer & 0xff); buffer >>= 8; nbits -= 8; }
  };
  emit(256);
  int since_clear = 0;
  for (uint8_t v : indices) {
    if (since_clear == 200) { emit(256); since_clear = 0; }
    emit(v);
    ++since_clear;
  }
  emit(257);
  if (nbits > 0) codes += static_cast<char>(buffer & 0xff);
  for (size_t at = 0; at < codes.size(); at += 255) {
    const size_t n = std::min<size_t>(255, codes.size() - at);
    out += static_cast<char>(n);
    out += codes.substr(at, n);
  }
  out += '\0';
  out += ';';
  write_text(path, out);
}

// A binary mask as a 2-colour GIF (black / white), as DRIVE's <id>_manual1.gif.
inline void write_mask_gif(const std::string& path, int w, int h, const std::vector<uint8_t>& on) {
  write_gif(path, w, h, {0, 0, 0, 255, 255, 255}, on);
}

// TIFF (gray or RGB, interleaved samples, 8 or 16 bits), LZW-compressed as DRIVE's are.
inline void write_tiff(const std::string& path, int w, int h, int channels, int bits,
                       const std::vector<uint16_t>& samples) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  TIFF* tif = TIFFOpen(path.c_str(), "w");
  if (tif == nullptr) throw Error("cannot create " + path);
  TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, w);
  TIFFSetField(tif, TIFFTAG_IMAGELENGTH, h);
  TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, channels);
  TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, bits);
  TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, channels == 1 ? PHOTOMETRIC_MINISBLACK : PHOTOMETRIC_RGB);
  TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
  TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_LZW);
  TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, 4);
  const size_t per_row = static_cast<size_t>(w) * channels;
  std::vector<uint8_t> row8(per_row);
  std::vector<uint16_t> row16(per_row);
  for (int y = 0; y < h; ++y) {
    for (size_t i = 0; i < per_row; ++i) {
      row8[i] = static_cast<uint8_t>(samples[y * per_row + i]);
      row16[i] = samples[y * per_row + i];
    }
    TIFFWriteScanline(tif, bits == 16 ? static_cast<void*>(row16.data()) : static_cast<void*>(row8.data()), y, 0);
  }
  TIFFClose(tif);
}

}  // namespace medtl::testing
