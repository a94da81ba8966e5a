// Decoding through stb_image (PNG, JPEG, BMP, GIF, PNM, TGA) and libtiff (TIFF), channel
// policies, antialiased bilinear resizing and centre crops.
#include "data/image.h"

#include <stb/stb_image.h>
#include <tiffio.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <vector>

#include "tensor/parallel.h"

namespace medtl::data {
namespace {

// Interleaved (H, W, C) samples to a float (C, H, W) tensor.
template <typename Sample>
Tensor planar_from_interleaved(const Sample* samples, int64_t h, int64_t w, int64_t c) {
  Tensor out = empty({c, h, w});
  float* p = out.data<float>();
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t i = 0; i < h * w; ++i) p[ch * h * w + i] = static_cast<float>(samples[i * c + ch]);
  return out;
}

std::string read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  MEDTL_CHECK(in.good(), "cannot open image '", path, "': no such file or no permission");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  MEDTL_CHECK(!in.bad(), "cannot read image '", path, "': I/O error");
  return buffer.str();
}

bool is_tiff(const std::string& bytes) {
  return bytes.size() >= 4 && (bytes.compare(0, 4, std::string("II*\0", 4)) == 0 ||
                               bytes.compare(0, 4, std::string("MM\0*", 4)) == 0);
}

// libtiff reports through global handlers; collect the last message per thread instead of
// printing it, so errors end up in our exception.
thread_local std::string tiff_last_error;
void tiff_error_handler(const char* module, const char* fmt, va_list ap) {
  char buffer[512];
  std::vsnprintf(buffer, sizeof buffer, fmt, ap);
  tiff_last_error = std::string(module ? module : "libtiff") + ": " + buffer;
}
void tiff_warning_handler(const char*, const char*, va_list) {}
void install_tiff_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    TIFFSetErrorHandler(tiff_error_handler);
    TIFFSetWarningHandler(tiff_warning_handler);
  });
}

DecodedImage decode_tiff(const std::string& path) {
  install_tiff_handlers();
  tiff_last_error.clear();
  std::unique_ptr<TIFF, void (*)(TIFF*)> tif(TIFFOpen(path.c_str(), "r"), TIFFClose);
  MEDTL_CHECK(tif != nullptr, "cannot decode TIFF '", path, "': ", tiff_last_error);
  uint32_t w = 0, h = 0;
  uint16_t spp = 1, bits = 8, photometric = PHOTOMETRIC_MINISBLACK, planar = PLANARCONFIG_CONTIG,
           format = SAMPLEFORMAT_UINT;
  TIFFGetField(tif.get(), TIFFTAG_IMAGEWIDTH, &w);
  TIFFGetField(tif.get(), TIFFTAG_IMAGELENGTH, &h);
  TIFFGetFieldDefaulted(tif.get(), TIFFTAG_SAMPLESPERPIXEL, &spp);
  TIFFGetFieldDefaulted(tif.get(), TIFFTAG_BITSPERSAMPLE, &bits);
  TIFFGetFieldDefaulted(tif.get(), TIFFTAG_PLANARCONFIG, &planar);
  TIFFGetFieldDefaulted(tif.get(), TIFFTAG_SAMPLEFORMAT, &format);
  TIFFGetField(tif.get(), TIFFTAG_PHOTOMETRIC, &photometric);
  MEDTL_CHECK(w > 0 && h > 0, "cannot decode TIFF '", path, "': image size ", w, "x", h);
  const bool simple = !TIFFIsTiled(tif.get()) && planar == PLANARCONFIG_CONTIG && format == SAMPLEFORMAT_UINT &&
                      (bits == 8 || bits == 16) && spp >= 1 && spp <= 4 &&
                      (photometric == PHOTOMETRIC_MINISBLACK || photometric == PHOTOMETRIC_MINISWHITE ||
                       photometric == PHOTOMETRIC_RGB);
  DecodedImage out;
  if (simple) {
    const int64_t row_samples = static_cast<int64_t>(w) * spp;
    const tmsize_t line = TIFFScanlineSize(tif.get());
    MEDTL_CHECK(line == row_samples * (bits / 8), "cannot decode TIFF '", path, "': unexpected scanline size ", line);
    std::vector<unsigned char> row(static_cast<size_t>(line));
    std::vector<float> interleaved(static_cast<size_t>(row_samples) * h);
    for (uint32_t y = 0; y < h; ++y) {
      MEDTL_CHECK(TIFFReadScanline(tif.get(), row.data(), y, 0) == 1, "cannot decode TIFF '", path, "': row ", y,
                  " unreadable (", tiff_last_error, "); is the file complete?");
      float* dst = interleaved.data() + static_cast<size_t>(y) * row_samples;
      if (bits == 8) {
        for (int64_t i = 0; i < row_samples; ++i) dst[i] = row[i];
      } else {
        const auto* r16 = reinterpret_cast<const uint16_t*>(row.data());  // libtiff returns native order
        for (int64_t i = 0; i < row_samples; ++i) dst[i] = r16[i];
      }
    }
    if (photometric == PHOTOMETRIC_MINISWHITE) {
      const float top = bits == 8 ? 255.0f : 65535.0f;
      for (auto& v : interleaved) v = top - v;
    }
    out.pixels = planar_from_interleaved(interleaved.data(), h, w, spp);
    out.bits_per_channel = bits;
    out.channels_in_file = spp;
    return out;
  }
  // Everything else (palette, tiled, YCbCr, 1-bit, ...): libtiff's RGBA reader, 8 bits per channel.
  MEDTL_CHECK(bits <= 8, "cannot decode TIFF '", path, "': ", bits, "-bit samples with photometric ", photometric,
              " (tiled or planar) are not supported; save it as an 8/16-bit contiguous TIFF or PNG");
  std::vector<uint32_t> rgba(static_cast<size_t>(w) * h);
  MEDTL_CHECK(TIFFReadRGBAImageOriented(tif.get(), w, h, rgba.data(), ORIENTATION_TOPLEFT, 0) == 1,
              "cannot decode TIFF '", path, "': ", tiff_last_error);
  const int c = photometric == PHOTOMETRIC_MINISBLACK || photometric == PHOTOMETRIC_MINISWHITE ? 1 : 3;
  std::vector<unsigned char> interleaved(static_cast<size_t>(w) * h * c);
  for (size_t i = 0; i < rgba.size(); ++i) {
    if (c == 1) {
      interleaved[i] = static_cast<unsigned char>(TIFFGetR(rgba[i]));
    } else {
      interleaved[i * 3 + 0] = static_cast<unsigned char>(TIFFGetR(rgba[i]));
      interleaved[i * 3 + 1] = static_cast<unsigned char>(TIFFGetG(rgba[i]));
      interleaved[i * 3 + 2] = static_cast<unsigned char>(TIFFGetB(rgba[i]));
    }
  }
  out.pixels = planar_from_interleaved(interleaved.data(), h, w, c);
  out.bits_per_channel = 8;
  out.channels_in_file = c;
  return out;
}

// Per output index: the first input index and the normalised triangle-filter weights.
struct FilterTaps {
  std::vector<int64_t> first;
  std::vector<int64_t> count;
  std::vector<double> weights;  // count[i] weights for output i, back to back at offset[i]
  std::vector<int64_t> offset;
};

FilterTaps triangle_taps(int64_t in_size, int64_t out_size) {
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double support = std::max(scale, 1.0);  // filter radius in input pixels
  FilterTaps taps;
  for (int64_t i = 0; i < out_size; ++i) {
    const double center = (static_cast<double>(i) + 0.5) * scale;
    const int64_t lo = std::max<int64_t>(0, static_cast<int64_t>(std::floor(center - support + 0.5)));
    const int64_t hi = std::min<int64_t>(in_size, static_cast<int64_t>(std::floor(center + support + 0.5)));
    taps.first.push_back(lo);
    taps.count.push_back(hi - lo);
    taps.offset.push_back(static_cast<int64_t>(taps.weights.size()));
    double total = 0.0;
    for (int64_t j = lo; j < hi; ++j) {
      const double distance = (static_cast<double>(j) + 0.5 - center) / support;
      const double weight = std::max(0.0, 1.0 - std::abs(distance));
      taps.weights.push_back(weight);
      total += weight;
    }
    for (int64_t j = 0; j < hi - lo; ++j) taps.weights[taps.offset.back() + j] /= (total > 0 ? total : 1.0);
  }
  return taps;
}

}  // namespace

const char* channel_policy_name(ChannelPolicy policy) {
  switch (policy) {
    case ChannelPolicy::Keep: return "keep";
    case ChannelPolicy::Gray: return "gray";
    case ChannelPolicy::RGB: return "rgb";
    case ChannelPolicy::Gray3: return "gray3";
  }
  return "?";
}

Tensor apply_channel_policy(const Tensor& pixels, ChannelPolicy policy, int bits, const std::string& what) {
  MEDTL_CHECK(pixels.dim() == 3 && pixels.size(0) >= 1 && pixels.size(0) <= 4, "'", what,
              "': expected (C, H, W) with 1 to 4 channels, got ", shape_str(pixels.shape()));
  const Tensor src = pixels.to(DType::Float32).contiguous();
  const int64_t c = src.size(0), h = src.size(1), w = src.size(2), plane = h * w;
  if (policy == ChannelPolicy::Keep) return src;
  const bool colour = c >= 3;
  const float* s = src.data<float>();
  auto luma = [&](int64_t i) -> float {
    const double r = s[i], g = s[plane + i], b = s[2 * plane + i];
    if (bits == 8) {
      const uint32_t ri = static_cast<uint32_t>(r), gi = static_cast<uint32_t>(g), bi = static_cast<uint32_t>(b);
      return static_cast<float>((ri * 19595u + gi * 38470u + bi * 7471u + 0x8000u) >> 16);
    }
    return static_cast<float>(std::floor(0.299 * r + 0.587 * g + 0.114 * b + 0.5));
  };
  if (policy == ChannelPolicy::RGB && colour) {
    if (c == 3) return src;
    return src.narrow(0, 0, 3).contiguous();  // drop alpha
  }
  Tensor gray = empty({1, h, w});
  float* g = gray.data<float>();
  if (colour) {
    for (int64_t i = 0; i < plane; ++i) g[i] = luma(i);
  } else {
    std::memcpy(g, s, sizeof(float) * plane);  // channel 0 (channel 1, if any, is alpha)
  }
  if (policy == ChannelPolicy::Gray) return gray;
  return gray.expand({3, h, w}).contiguous();  // RGB of gray, or Gray3
}

DecodedImage decode_image(const std::string& path, ChannelPolicy policy) {
  const std::string bytes = read_file_bytes(path);
  MEDTL_CHECK(!bytes.empty(), "cannot decode image '", path, "': the file is empty");
  DecodedImage out;
  if (is_tiff(bytes)) {
    out = decode_tiff(path);
  } else {
    const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
    const int len = static_cast<int>(bytes.size());
    int w = 0, h = 0, channels = 0;
    if (stbi_is_16_bit_from_memory(data, len)) {
      std::unique_ptr<stbi_us, void (*)(void*)> samples(stbi_load_16_from_memory(data, len, &w, &h, &channels, 0),
                                                        stbi_image_free);
      MEDTL_CHECK(samples != nullptr, "cannot decode image '", path, "': ", stbi_failure_reason(),
                  " (supported: PNG, JPEG, BMP, GIF, PNM, TGA, TIFF; is the file complete?)");
      out.pixels = planar_from_interleaved(samples.get(), h, w, channels);
      out.bits_per_channel = 16;
    } else {
      std::unique_ptr<stbi_uc, void (*)(void*)> samples(stbi_load_from_memory(data, len, &w, &h, &channels, 0),
                                                        stbi_image_free);
      MEDTL_CHECK(samples != nullptr, "cannot decode image '", path, "': ", stbi_failure_reason(),
                  " (supported: PNG, JPEG, BMP, GIF, PNM, TGA, TIFF; is the file complete?)");
      out.pixels = planar_from_interleaved(samples.get(), h, w, channels);
      out.bits_per_channel = 8;
    }
    out.channels_in_file = channels;
  }
  out.pixels = apply_channel_policy(out.pixels, policy, out.bits_per_channel, path);
  return out;
}

Tensor resize_bilinear(const Tensor& image, int64_t out_h, int64_t out_w) {
  MEDTL_CHECK(image.dim() == 3, "resize_bilinear: expected (C, H, W), got shape ", shape_str(image.shape()));
  MEDTL_CHECK(out_h > 0 && out_w > 0, "resize_bilinear: output size must be positive, got ", out_h, "x", out_w);
  const Tensor src = image.to(DType::Float32).contiguous();
  const int64_t c = src.size(0), in_h = src.size(1), in_w = src.size(2);
  const FilterTaps rows = triangle_taps(in_h, out_h), cols = triangle_taps(in_w, out_w);
  // Horizontal pass into (C, in_h, out_w), then vertical into (C, out_h, out_w); double sums.
  Tensor horizontal = empty({c, in_h, out_w});
  Tensor out = empty({c, out_h, out_w});
  const float* s = src.data<float>();
  float* t = horizontal.data<float>();
  float* o = out.data<float>();
  // Threads only pay off on large images: at least ~32K output values per thread.
  const int64_t row_grain = std::max<int64_t>(16, 32768 / out_w);
  parallel_for(0, c * in_h, row_grain, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row)
      for (int64_t x = 0; x < out_w; ++x) {
        double sum = 0.0;
        for (int64_t k = 0; k < cols.count[x]; ++k) sum += cols.weights[cols.offset[x] + k] * s[row * in_w + cols.first[x] + k];
        t[row * out_w + x] = static_cast<float>(sum);
      }
  });
  parallel_for(0, c * out_h, row_grain, [&](int64_t begin, int64_t end) {
    for (int64_t index = begin; index < end; ++index) {
      const int64_t ch = index / out_h, y = index % out_h;
      for (int64_t x = 0; x < out_w; ++x) {
        double sum = 0.0;
        for (int64_t k = 0; k < rows.count[y]; ++k)
          sum += rows.weights[rows.offset[y] + k] * t[(ch * in_h + rows.first[y] + k) * out_w + x];
        o[index * out_w + x] = static_cast<float>(sum);
      }
    }
  });
  return out;
}

Tensor center_crop(const Tensor& image, int64_t h, int64_t w) {
  MEDTL_CHECK(image.dim() == 3, "center_crop: expected (C, H, W), got shape ", shape_str(image.shape()));
  const int64_t in_h = image.size(1), in_w = image.size(2);
  MEDTL_CHECK(h <= in_h && w <= in_w, "center_crop: crop ", h, "x", w, " is larger than the image ", in_h, "x", in_w,
              "; resize first");
  const int64_t top = static_cast<int64_t>(std::nearbyint((in_h - h) / 2.0));
  const int64_t left = static_cast<int64_t>(std::nearbyint((in_w - w) / 2.0));
  return image.narrow(1, top, h).narrow(2, left, w).contiguous();
}

Tensor center_square(const Tensor& image) {
  const int64_t side = std::min(image.size(1), image.size(2));
  return center_crop(image, side, side);
}

}  // namespace medtl::data
