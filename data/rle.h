// Run-length encoded masks as Kaggle competitions write them: "start length start length ...".
// Two conventions exist, both column-major (pixel p is at row p % H, column p / H):
//  - SIIM-ACR pneumothorax (mask_functions.py rle2mask): each start is RELATIVE to the end of the
//    previous run, 0-based;
//  - the common Kaggle one (Data Science Bowl 2018 submissions, ...): absolute starts, 1-based.
#pragma once

#include <cstdint>
#include <string>

#include "tensor/tensor.h"

namespace medtl::data {

struct RleFormat {
  bool relative_starts = true;  // start counts from the end of the previous run
  bool one_based = false;       // the first pixel is 1
  bool column_major = true;     // pixels numbered down the columns (Fortran order)
  static RleFormat siim() { return {true, false, true}; }
  static RleFormat kaggle_absolute() { return {false, true, true}; }
};

// Decodes `rle` into a float32 (1, height, width) mask of 0/1; "" and "-1" give an empty mask.
// Malformed text (odd count, negative numbers, a run beyond the image) throws naming `what`.
Tensor rle_decode(const std::string& rle, int64_t height, int64_t width, const RleFormat& format,
                  const std::string& what = "RLE");
// Sets the runs of `rle` to 1 in an existing (1, H, W) float32 mask (union).
void rle_paint(const std::string& rle, Tensor& mask, const RleFormat& format, const std::string& what = "RLE");
// The inverse: a (1, H, W) or (H, W) mask (nonzero = 1) to text; "-1" for an empty mask.
std::string rle_encode(const Tensor& mask, const RleFormat& format);

}  // namespace medtl::data
