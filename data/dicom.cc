// DICOM decoding through DCMTK: dcmdata parses the file and hands out one uncompressed frame
// (decompressing RLE, JPEG and JPEG-LS through the registered codecs); the bit unpacking, the
// rescale and the MONOCHROME1 inversion are done here, where they can be read and tested.
#include "data/dicom.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/oflog/oflog.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <mutex>
#include <vector>

namespace medtl::data {
namespace {

void register_codecs_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    OFLog::configure(OFLogger::FATAL_LOG_LEVEL);  // DCMTK's warnings would go to stderr; we throw instead
    DcmRLEDecoderRegistration::registerCodecs();
    DJDecoderRegistration::registerCodecs();    // JPEG: YCbCr is converted to RGB
    DJLSDecoderRegistration::registerCodecs();
  });
}

uint16_t get_u16(DcmDataset* ds, const DcmTagKey& tag, uint16_t fallback) {
  Uint16 value = 0;
  return ds->findAndGetUint16(tag, value).good() ? value : fallback;
}

double get_f64(DcmDataset* ds, const DcmTagKey& tag, double fallback) {
  Float64 value = 0;
  return ds->findAndGetFloat64(tag, value).good() ? value : fallback;
}

// Stored sample `index` of the frame as a signed 64-bit value: masked to bits_stored below
// high_bit, sign-extended when signed.
struct SampleReader {
  const unsigned char* bytes;
  int bits_allocated, bits_stored, shift;
  bool is_signed;

  int64_t operator()(int64_t index) const {
    uint64_t raw = 0;
    switch (bits_allocated) {
      case 1: raw = (bytes[index / 8] >> (index % 8)) & 1u; break;
      case 8: raw = bytes[index]; break;
      case 16: { uint16_t v; std::memcpy(&v, bytes + 2 * index, 2); raw = v; break; }
      case 32: { uint32_t v; std::memcpy(&v, bytes + 4 * index, 4); raw = v; break; }
    }
    raw >>= shift;
    const uint64_t mask = bits_stored >= 64 ? ~uint64_t(0) : ((uint64_t(1) << bits_stored) - 1);
    raw &= mask;
    if (is_signed && (raw >> (bits_stored - 1)) & 1u) return static_cast<int64_t>(raw | ~mask);
    return static_cast<int64_t>(raw);
  }
};

}  // namespace

bool is_dicom_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char head[132] = {};
  if (!in.read(head, sizeof head)) return false;
  return std::memcmp(head + 128, "DICM", 4) == 0;
}

DicomImage decode_dicom(const std::string& path, const DicomOptions& options) {
  register_codecs_once();
  MEDTL_CHECK(std::ifstream(path).good(), "cannot open DICOM file '", path, "': no such file or no permission");
  DcmFileFormat file;
  OFCondition status = file.loadFile(path.c_str());
  MEDTL_CHECK(status.good(), "cannot read DICOM file '", path, "': ", status.text(),
              " (not DICOM, or truncated?)");
  DcmDataset* ds = file.getDataset();
  DicomImage out;
  const DcmXfer xfer(ds->getOriginalXfer());
  out.transfer_syntax = xfer.getXferName();

  DcmElement* pixel_element = nullptr;
  MEDTL_CHECK(ds->findAndGetElement(DCM_PixelData, pixel_element).good() && pixel_element != nullptr,
              "DICOM file '", path, "' has no Pixel Data (7FE0,0010): it is not an image (a report, a structure set?)");
  auto* pixel_data = dynamic_cast<DcmPixelData*>(pixel_element);
  MEDTL_CHECK(pixel_data != nullptr, "DICOM file '", path, "': Pixel Data has an unexpected type");

  out.rows = get_u16(ds, DCM_Rows, 0);
  out.columns = get_u16(ds, DCM_Columns, 0);
  out.bits_allocated = get_u16(ds, DCM_BitsAllocated, 0);
  out.bits_stored = get_u16(ds, DCM_BitsStored, static_cast<uint16_t>(out.bits_allocated));
  const int high_bit = get_u16(ds, DCM_HighBit, static_cast<uint16_t>(out.bits_stored - 1));
  out.is_signed = get_u16(ds, DCM_PixelRepresentation, 0) == 1;
  const int samples = get_u16(ds, DCM_SamplesPerPixel, 1);
  const int planar = get_u16(ds, DCM_PlanarConfiguration, 0);
  Sint32 frames = 1;
  if (ds->findAndGetSint32(DCM_NumberOfFrames, frames).bad() || frames < 1) frames = 1;
  out.frames = frames;
  OFString photometric;
  ds->findAndGetOFString(DCM_PhotometricInterpretation, photometric);
  out.photometric = photometric.c_str();
  out.rescale_slope = get_f64(ds, DCM_RescaleSlope, 1.0);
  out.rescale_intercept = get_f64(ds, DCM_RescaleIntercept, 0.0);
  Float64 wc = 0, ww = 0;
  if (ds->findAndGetFloat64(DCM_WindowCenter, wc).good() && ds->findAndGetFloat64(DCM_WindowWidth, ww).good()) {
    out.window_center = wc;
    out.window_width = ww;
    out.has_window = true;
  }

  MEDTL_CHECK(out.rows > 0 && out.columns > 0, "DICOM file '", path, "': Rows x Columns is ", out.rows, "x",
              out.columns);
  MEDTL_CHECK(out.bits_allocated == 1 || out.bits_allocated == 8 || out.bits_allocated == 16 ||
                  out.bits_allocated == 32,
              "DICOM file '", path, "': Bits Allocated ", out.bits_allocated, " is not supported (1, 8, 16, 32 are)");
  MEDTL_CHECK(out.bits_stored >= 1 && out.bits_stored <= out.bits_allocated && high_bit >= out.bits_stored - 1 &&
                  high_bit < out.bits_allocated,
              "DICOM file '", path, "': inconsistent Bits Stored ", out.bits_stored, " / High Bit ", high_bit,
              " / Bits Allocated ", out.bits_allocated);
  MEDTL_CHECK(options.frame >= 0 && options.frame < out.frames, "DICOM file '", path, "': frame ", options.frame,
              " requested, the file has ", out.frames);
  const bool mono = out.photometric == "MONOCHROME1" || out.photometric == "MONOCHROME2";
  MEDTL_CHECK((mono && samples == 1) || samples == 3, "DICOM file '", path, "': Photometric Interpretation '",
              out.photometric, "' with ", samples, " samples per pixel is not supported (MONOCHROME1/2, RGB, YBR_FULL are)");
  if (xfer.isEncapsulated()) {
    const std::string name = out.transfer_syntax;
    const bool known_undecodable = name.find("2000") != std::string::npos || name.find("MPEG") != std::string::npos ||
                                   name.find("HEVC") != std::string::npos || name.find("High-Throughput") != std::string::npos;
    MEDTL_CHECK(!known_undecodable, "DICOM file '", path, "': transfer syntax '", name,
                "' cannot be decoded here (DCMTK decodes RLE, JPEG and JPEG-LS, not JPEG 2000 or video); convert "
                "the file to an uncompressed transfer syntax first, e.g. with gdcmconv --raw");
  }

  // Uncompressed colour must be full-resolution RGB or YBR_FULL (codecs convert their own output).
  MEDTL_CHECK(mono || xfer.isEncapsulated() || out.photometric == "RGB" || out.photometric == "YBR_FULL",
              "DICOM file '", path, "': uncompressed colour as '", out.photometric,
              "' is not supported (RGB and YBR_FULL are; chroma-subsampled YBR_FULL_422 is not)");

  Uint32 frame_size = 0;
  status = pixel_data->getUncompressedFrameSize(ds, frame_size);
  MEDTL_CHECK(status.good() && frame_size > 0, "DICOM file '", path, "': cannot size a frame: ", status.text());
  std::vector<unsigned char> buffer(frame_size + (frame_size & 1u));
  Uint32 start_fragment = 0;
  OFString colour_model;
  status = pixel_data->getUncompressedFrame(ds, static_cast<Uint32>(options.frame), start_fragment, buffer.data(),
                                            static_cast<Uint32>(buffer.size()), colour_model);
  MEDTL_CHECK(status.good(), "DICOM file '", path, "': cannot decode frame ", options.frame, " (", out.transfer_syntax,
              "): ", status.text(), "; is the file complete?");
  const int64_t plane = out.rows * out.columns;
  const int64_t bit_count = plane * samples * out.bits_allocated;
  MEDTL_CHECK(static_cast<int64_t>(frame_size) * 8 >= bit_count, "DICOM file '", path, "': frame holds ", frame_size,
              " bytes, ", (bit_count + 7) / 8, " expected; the file is truncated");

  const SampleReader read{buffer.data(), out.bits_allocated, out.bits_stored, high_bit + 1 - out.bits_stored,
                          out.is_signed};
  if (mono) {
    Tensor pixels = empty({1, out.rows, out.columns});
    float* p = pixels.data<float>();
    const double slope = options.apply_rescale ? out.rescale_slope : 1.0;
    const double intercept = options.apply_rescale ? out.rescale_intercept : 0.0;
    const bool invert = options.invert_monochrome1 && out.photometric == "MONOCHROME1";
    // The representable stored range; inversion maps lo <-> hi.
    const int64_t lo = out.is_signed ? -(int64_t(1) << (out.bits_stored - 1)) : 0;
    const int64_t hi = out.is_signed ? (int64_t(1) << (out.bits_stored - 1)) - 1 : (int64_t(1) << out.bits_stored) - 1;
    for (int64_t i = 0; i < plane; ++i) {
      int64_t v = read(i);
      if (invert) v = lo + hi - v;
      p[i] = static_cast<float>(slope * static_cast<double>(v) + intercept);
    }
    out.pixels = pixels;
    return out;
  }
  // Colour: after decoding, the layout follows Planar Configuration for uncompressed data; the
  // JPEG/RLE codecs in DCMTK deliver the file's planar configuration too.
  std::string model = colour_model.empty() ? out.photometric : std::string(colour_model.c_str());
  MEDTL_CHECK(model == "RGB" || model == "YBR_FULL", "DICOM file '", path, "': colour model '", model,
              "' is not supported (RGB and YBR_FULL are)");
  Tensor pixels = empty({3, out.rows, out.columns});
  float* p = pixels.data<float>();
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t i = 0; i < plane; ++i) p[c * plane + i] = static_cast<float>(read(planar ? c * plane + i : i * 3 + c));
  if (model == "YBR_FULL") {
    // DICOM PS3.3 C.7.6.3.1.2 (JFIF): R = Y + 1.402 (Cr - mid), G = Y - 0.344136 (Cb - mid) - 0.714136 (Cr - mid),
    // B = Y + 1.772 (Cb - mid), rounded and clamped to the sample range.
    const double mid = std::ldexp(1.0, out.bits_stored - 1), top = std::ldexp(1.0, out.bits_stored) - 1;
    for (int64_t i = 0; i < plane; ++i) {
      const double y = p[i], cb = p[plane + i] - mid, cr = p[2 * plane + i] - mid;
      const double rgb[3] = {y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb};
      for (int c = 0; c < 3; ++c) p[c * plane + i] = static_cast<float>(std::min(top, std::max(0.0, std::round(rgb[c]))));
    }
  }
  out.pixels = pixels;
  return out;
}

}  // namespace medtl::data
