// Decoding through stb_image, antialiased bilinear resizing and centre crops.
#include "data/image.h"

#include <stb/stb_image.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <vector>

#include "tensor/parallel.h"

namespace medtl::data {
namespace {

int desired_channels(ChannelPolicy policy) {
  switch (policy) {
    case ChannelPolicy::Gray: return 1;
    case ChannelPolicy::RGB: return 3;
    case ChannelPolicy::Keep: return 0;
  }
  return 0;
}

// Interleaved (H, W, C) samples to a float (C, H, W) tensor.
template <typename Sample>
Tensor planar_from_interleaved(const Sample* samples, int64_t h, int64_t w, int64_t c) {
  Tensor out = empty({c, h, w});
  float* p = out.data<float>();
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t i = 0; i < h * w; ++i) p[ch * h * w + i] = static_cast<float>(samples[i * c + ch]);
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

DecodedImage decode_image(const std::string& path, ChannelPolicy policy) {
  MEDTL_CHECK(std::ifstream(path).good(), "cannot open image '", path, "': no such file or no permission");
  int w = 0, h = 0, channels = 0;
  const int wanted = desired_channels(policy);
  DecodedImage out;
  if (stbi_is_16_bit(path.c_str())) {
    std::unique_ptr<stbi_us, void (*)(void*)> samples(stbi_load_16(path.c_str(), &w, &h, &channels, wanted), stbi_image_free);
    MEDTL_CHECK(samples != nullptr, "cannot decode image '", path, "': ", stbi_failure_reason(),
                " (supported: PNG, JPEG, BMP, GIF, PNM, TGA; is the file complete?)");
    out.pixels = planar_from_interleaved(samples.get(), h, w, wanted ? wanted : channels);
    out.bits_per_channel = 16;
  } else {
    std::unique_ptr<stbi_uc, void (*)(void*)> samples(stbi_load(path.c_str(), &w, &h, &channels, wanted), stbi_image_free);
    MEDTL_CHECK(samples != nullptr, "cannot decode image '", path, "': ", stbi_failure_reason(),
                " (supported: PNG, JPEG, BMP, GIF, PNM, TGA; is the file complete?)");
    out.pixels = planar_from_interleaved(samples.get(), h, w, wanted ? wanted : channels);
    out.bits_per_channel = 8;
  }
  out.channels_in_file = channels;
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
  parallel_for(0, c * in_h, 16, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row)
      for (int64_t x = 0; x < out_w; ++x) {
        double sum = 0.0;
        for (int64_t k = 0; k < cols.count[x]; ++k) sum += cols.weights[cols.offset[x] + k] * s[row * in_w + cols.first[x] + k];
        t[row * out_w + x] = static_cast<float>(sum);
      }
  });
  parallel_for(0, c * out_h, 16, [&](int64_t begin, int64_t end) {
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
  const int64_t top = static_cast<int64_t>(std::round((in_h - h) / 2.0));
  const int64_t left = static_cast<int64_t>(std::round((in_w - w) / 2.0));
  return image.narrow(1, top, h).narrow(2, left, w).contiguous();
}

Tensor center_square(const Tensor& image) {
  const int64_t side = std::min(image.size(1), image.size(2));
  return center_crop(image, side, side);
}

}  // namespace medtl::data
