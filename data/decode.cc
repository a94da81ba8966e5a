// Picks the decoder for a file from its first bytes (and, for DICOM without a preamble, its name).
#include "data/decode.h"

#include <filesystem>

#include "data/files.h"

namespace medtl::data {

DecodedImage load_image(const std::string& path, ChannelPolicy policy) {
  const std::string ext = lower(std::filesystem::path(path).extension().string());
  if (is_dicom_file(path) || ext == ".dcm" || ext == ".dicom") {
    const DicomImage d = decode_dicom(path);
    DecodedImage out;
    out.bits_per_channel = d.bits_stored;
    out.channels_in_file = static_cast<int>(d.pixels.size(0));
    // Luma rounding for colour DICOM follows the 8-bit rule when the samples are 8-bit.
    out.pixels = apply_channel_policy(d.pixels, policy, d.bits_stored <= 8 ? 8 : 16, path);
    return out;
  }
  return decode_image(path, policy);
}

}  // namespace medtl::data
