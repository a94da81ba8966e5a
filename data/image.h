// Image files to tensors and the geometric basics every pipeline needs: decode (PNG, JPEG, BMP,
// GIF, PNM, TGA through stb_image; TIFF through libtiff; 8 or 16 bit), resize with PIL-style
// antialiasing, centre crop. DICOM lives in data/dicom.h; data/decode.h picks the decoder.
#pragma once

#include <string>

#include "tensor/tensor.h"

namespace medtl::data {

// What to do with the file's channels. Conversions follow PIL's Image.convert:
//  - colour to gray is ITU-R 601-2 luma, L = (19595 R + 38470 G + 7471 B + 32768) >> 16 on 8-bit
//    samples (bit-identical to PIL's convert('L')); 0.299 R + 0.587 G + 0.114 B rounded for 16-bit;
//  - gray to colour replicates the gray channel;
//  - alpha is dropped, never composited.
enum class ChannelPolicy {
  Keep,   // as stored: 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA)
  Gray,   // one channel; colour is converted to luma
  RGB,    // three channels; colour kept, gray replicated, alpha dropped (PIL's convert('RGB'))
  Gray3,  // three identical channels: gray, or the luma of colour, replicated (a gray image for
          // an ImageNet network, whatever the file stores)
};
const char* channel_policy_name(ChannelPolicy policy);

struct DecodedImage {
  Tensor pixels;          // float32 (C, H, W) on the file's own scale: 0..255 (8-bit) or 0..65535 (16-bit)
  int bits_per_channel;   // 8 or 16
  int channels_in_file;   // 1, 2, 3 or 4 (palette images count as what the palette expands to)
};

// Decodes an image file (PNG, JPEG, BMP, GIF (first frame), PNM, TGA, TIFF). The format is taken
// from the file's first bytes, not its name. A missing, empty, truncated or undecodable file
// throws medtl::Error naming the path and the decoder's reason.
DecodedImage decode_image(const std::string& path, ChannelPolicy policy);

// Applies `policy` to a decoded (C, H, W) image with C in 1..4 (used by decode_image and by the
// DICOM and npz readers). `bits` (8 or 16) selects the luma rounding; `what` names the source.
Tensor apply_channel_policy(const Tensor& pixels, ChannelPolicy policy, int bits, const std::string& what);

// Resamples each channel to (out_h, out_w) with a triangle (bilinear) filter whose support grows
// with the downscale factor, as PIL's Image.resize(BILINEAR) and torchvision with antialias do.
// image: (C, H, W) float -> (C, out_h, out_w)
Tensor resize_bilinear(const Tensor& image, int64_t out_h, int64_t out_w);

// image: (C, H, W) -> (C, h, w), the centred window; offsets round half to even, as torchvision's CenterCrop (Python round()).
Tensor center_crop(const Tensor& image, int64_t h, int64_t w);

// The largest centred square: (C, H, W) -> (C, min(H, W), min(H, W)).
Tensor center_square(const Tensor& image);

}  // namespace medtl::data
