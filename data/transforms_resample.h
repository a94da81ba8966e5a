// The resampling kernels behind the transforms: resize (PIL and OpenCV rules), crop, flip, PIL's
// rotate, OpenCV's remap / warpAffine, and SciPy's gaussian_filter. Deterministic functions of
// their arguments, no randomness: data/transforms.h and data/augment.h draw the parameters.
//
// Every image here is float32 (C, H, W) (anything else is converted first); a mask is an image
// with one channel. Two coordinate conventions meet in this file, each where its library uses it:
//  - PIL / torchvision: pixel (x, y) covers [x, x+1), its centre is x + 0.5.
//  - OpenCV (albumentations): pixel x sits at coordinate x (maps and matrices use integer centres).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace medtl::data {

// How a value is read between pixels.
enum class Interp {
  Antialias,     // PIL Image.resize(BILINEAR) / torchvision Resize: a triangle filter whose
                 // support widens when shrinking (data/image.h resize_bilinear). Resize only.
  Linear,        // plain bilinear on the 4 nearest pixels: cv2.INTER_LINEAR, PIL rotate(BILINEAR)
  Nearest,       // OpenCV's nearest: resize floor(x * in/out); remap / warp round(x)
  NearestCenter, // PIL's nearest: floor((x + 0.5) * in/out); rotate floor(centre coordinate)
};
const char* interp_name(Interp interp);

// What is read outside the image (OpenCV's border modes).
enum class Border {
  Constant,    // a fixed value (cv2.BORDER_CONSTANT)
  Reflect101,  // gfedcb|abcdefgh|gfedcba (cv2.BORDER_REFLECT_101, albumentations' default)
  Replicate,   // aaaaaa|abcdefgh|hhhhhhh (cv2.BORDER_REPLICATE)
};

// Python 3's round(): halves go to the even neighbour (torchvision's int(round(...))).
int64_t round_half_even(double value);

// ---- Geometry that copies pixels. ----

// image (C, H, W) -> (C, h, w), the window at (top, left); the window must lie inside the image.
Tensor crop(const Tensor& image, int64_t top, int64_t left, int64_t h, int64_t w);
// torchvision's CenterCrop offsets: top = round((H - h) / 2) with Python's rounding.
Tensor center_crop_tv(const Tensor& image, int64_t h, int64_t w);
// Mirrors the last dim (width): any (..., W) tensor.
Tensor hflip(const Tensor& image);

// ---- Resize. ----

// image (C, H, W) -> (C, out_h, out_w) with the given rule:
//   Antialias      resize_bilinear (PIL / torchvision BILINEAR with antialiasing)
//   Linear         cv2.resize INTER_LINEAR: src = (dst + 0.5) * in/out - 0.5, edges clamped, no antialias
//   Nearest        cv2.resize INTER_NEAREST: src = min(floor(dst * in/out), in - 1)
//   NearestCenter  PIL NEAREST / torchvision masks: src = min(floor((dst + 0.5) * in/out), in - 1)
Tensor resize(const Tensor& image, int64_t out_h, int64_t out_w, Interp interp);

// ---- PIL's rotate (torchvision RandomRotation / F.rotate with expand=False, centre = image centre). ----

// Rotates counter-clockwise by `degrees` about (W / 2, H / 2), sampling each output pixel
// centre through PIL's inverse matrix (cos/sin rounded to 15 decimals, as PIL does).
// interp: NearestCenter (PIL NEAREST: the pixel containing the point) or Linear (PIL BILINEAR:
// points outside [0, W) x [0, H) get `fill`, neighbours inside are clamped to the edge).
Tensor rotate(const Tensor& image, double degrees, Interp interp, float fill);

// ---- OpenCV remap and warpAffine (albumentations' geometric transforms). ----

// out[c, y, x] = image[c] read at (map_x[y, x], map_y[y, x]) in OpenCV coordinates.
// map_x, map_y: out_h * out_w values, row-major. interp: Linear (coordinates quantised to 1/32
// pixel first, as OpenCV does) or Nearest (round half to even, as OpenCV's saturate_cast).
// border_value is used with Border::Constant only.
Tensor remap(const Tensor& image, const std::vector<float>& map_x, const std::vector<float>& map_y,
             int64_t out_h, int64_t out_w, Interp interp, Border border, float border_value = 0.0f);

// A 2x3 affine matrix [a b c; d e f]: (x, y) -> (a x + b y + c, d x + e y + f).
using Affine = std::array<double, 6>;
// cv2.getAffineTransform: the affine map taking src[k] to dst[k] for the three points. Throws
// when the source points are collinear.
Affine affine_from_points(const std::array<std::array<double, 2>, 3>& src,
                          const std::array<std::array<double, 2>, 3>& dst);
Affine invert_affine(const Affine& m);
// cv2.warpAffine(image, m, (W, H)) without WARP_INVERSE_MAP: m maps source to destination, the
// output keeps the input size. Source coordinates follow OpenCV's fixed point (1/1024 pixel,
// then whole pixels for Nearest or 1/32 pixel for Linear). interp: Linear or Nearest.
Tensor warp_affine(const Tensor& image, const Affine& m, Interp interp, Border border, float border_value = 0.0f);

// ---- Smoothing. ----

// scipy.ndimage.gaussian_filter(field, sigma) on an (h, w) row-major field: a separable kernel of
// radius int(truncate * sigma + 0.5), mode 'reflect' (dcba|abcd|dcba), computed in double.
std::vector<double> gaussian_filter(const std::vector<double>& field, int64_t h, int64_t w, double sigma,
                                    double truncate = 4.0);

}  // namespace medtl::data
