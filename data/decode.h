// One entry point for every image file the datasets read: DICOM (by its "DICM" preamble or a .dcm
// name) goes to data/dicom.h, everything else to data/image.h's decode_image (stb, libtiff).
#pragma once

#include <string>

#include "data/dicom.h"
#include "data/image.h"

namespace medtl::data {

// Decodes `path` to float32 (C, H, W) under `policy`. DICOM gives modality values (see dicom.h;
// bits_per_channel = Bits Stored); gray DICOM is replicated for RGB/Gray3 like any gray image.
DecodedImage load_image(const std::string& path, ChannelPolicy policy);

}  // namespace medtl::data
