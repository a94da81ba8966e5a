// DICOM files to tensors through DCMTK: uncompressed (little/big endian, implicit/explicit VR,
// deflated), RLE, JPEG (baseline, extended 12-bit, lossless) and JPEG-LS pixel data. No JPEG 2000
// (DCMTK's free edition has no decoder for it): such files throw an error that says so.
//
// Monochrome images come back as modality values: stored value (masked to Bits Stored, sign-
// extended when Pixel Representation is 1) times Rescale Slope plus Rescale Intercept (CT:
// Hounsfield units). MONOCHROME1 (white = low values) is inverted so that, as in MONOCHROME2,
// higher values are brighter: v -> (lo + hi) - v, where [lo, hi] is the rescaled range of the
// representable stored values (0..2^BitsStored-1, or the signed range). Colour images (RGB,
// YBR_FULL, converted to RGB) come back as their samples, unrescaled.
#pragma once

#include <cstdint>
#include <string>

#include "tensor/tensor.h"

namespace medtl::data {

struct DicomOptions {
  int64_t frame = 0;              // which frame of a multi-frame object
  bool apply_rescale = true;      // slope/intercept to modality values (monochrome only)
  bool invert_monochrome1 = true; // make MONOCHROME1 read like MONOCHROME2
};

struct DicomImage {
  Tensor pixels;                 // float32 (C, H, W): C = 1 (monochrome) or 3 (colour)
  int64_t rows = 0, columns = 0;
  int64_t frames = 1;            // Number of Frames (1 when absent)
  int bits_allocated = 0, bits_stored = 0;
  bool is_signed = false;        // Pixel Representation 1
  double rescale_slope = 1.0, rescale_intercept = 0.0;  // as stored (1, 0 when absent)
  std::string photometric;       // Photometric Interpretation as stored (MONOCHROME1, RGB, ...)
  std::string transfer_syntax;   // its UID name, e.g. "JPEG Baseline"
  double window_center = 0.0, window_width = 0.0;  // first Window Center/Width (0 when absent)
  bool has_window = false;
};

// True when the file carries the DICOM preamble ("DICM" at byte 128).
bool is_dicom_file(const std::string& path);

// Decodes one frame. Missing file, no pixel data, an unsupported transfer syntax or pixel layout,
// or a frame out of range throw medtl::Error naming the file and the problem. Thread-safe.
DicomImage decode_dicom(const std::string& path, const DicomOptions& options = {});

}  // namespace medtl::data
