// Image files to tensors and the geometric basics every pipeline needs: decode (PNG, JPEG, BMP,
// GIF through stb_image, 8 or 16 bit), resize with PIL-style antialiasing, centre crop.
#pragma once

#include <string>

#include "tensor/tensor.h"

namespace medtl::data {

// What to do with the file's channels.
enum class ChannelPolicy {
  Keep,  // as stored: 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA)
  Gray,  // one channel; colour is converted to luma
  RGB,   // three channels; gray is replicated, alpha dropped
};

struct DecodedImage {
  Tensor pixels;          // float32 (C, H, W) on the file's own scale: 0..255 (8-bit) or 0..65535 (16-bit)
  int bits_per_channel;   // 8 or 16
  int channels_in_file;
};

// Decodes an image file. A missing or undecodable file throws medtl::Error naming the path and
// stb's reason.
DecodedImage decode_image(const std::string& path, ChannelPolicy policy);

// Resamples each channel to (out_h, out_w) with a triangle (bilinear) filter whose support grows
// with the downscale factor, as PIL's Image.resize(BILINEAR) and torchvision with antialias do.
// image: (C, H, W) float -> (C, out_h, out_w)
Tensor resize_bilinear(const Tensor& image, int64_t out_h, int64_t out_w);

// image: (C, H, W) -> (C, h, w), the centred window (offsets rounded like torchvision's CenterCrop).
Tensor center_crop(const Tensor& image, int64_t h, int64_t w);

// The largest centred square: (C, H, W) -> (C, min(H, W), min(H, W)).
Tensor center_square(const Tensor& image);

}  // namespace medtl::data
