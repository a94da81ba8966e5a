// Segmentation datasets: an image and a binary mask (1, H, W) made from one or more mask files
// (merged by union) and/or run-length encodings, and the layout readers: ISBI 2012 EM membranes,
// Montgomery lungs (left + right masks), DRIVE vessels (<id>_manual1.gif), DSB 2018 nuclei (one
// PNG per nucleus), SIIM-ACR pneumothorax (DICOM + RLE CSV), and a generic image/mask folder pair.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "data/classification.h"
#include "data/dataset.h"
#include "data/rle.h"

namespace medtl::data {

struct SegmentationItem {
  std::string image;                // image file (any load_image format)
  std::vector<std::string> masks;   // mask files, merged by union (may be empty: an all-zero mask)
  std::vector<std::string> rles;    // run-length encodings, merged by union ("-1" or "" = empty)
  std::string id;                   // the sample's name (file stem, SIIM ImageId, DSB id)
};

// Mask file -> {0, 1}: a pixel is foreground when its value (channel 0 after converting to gray)
// is > threshold; with `invert`, when it is <= threshold.
struct MaskRule {
  double threshold = 0.0;
  bool invert = false;
  std::string foreground = "foreground";  // the class name class_names() reports
};

class ImageMaskDataset : public Dataset {
 public:
  using Dataset::get;  // get(i) as well as get(i, key)
  ImageMaskDataset(std::string name, std::vector<SegmentationItem> items, ImageOptions options, MaskRule rule,
                   RleFormat rle_format = RleFormat::siim(), std::shared_ptr<BadSampleLog> skipped = nullptr);

  int64_t size() const override { return static_cast<int64_t>(items_.size()); }
  // Throws, naming the files, when a mask's size differs from the image's.
  Sample get(int64_t i, const SampleKey& key) const override;
  TargetKind target_kind() const override { return TargetKind::Mask; }
  std::vector<std::string> class_names() const override { return {"background", rule_.foreground}; }
  std::string source(int64_t i) const override;
  std::string name() const override { return name_; }
  const std::vector<SegmentationItem>& items() const { return items_; }

 private:
  std::string name_;
  std::vector<SegmentationItem> items_;
  ImageOptions options_;
  MaskRule rule_;
  RleFormat rle_format_;
};

// ---- Generic: image folder + mask folder with the same file names (the paper's LXS/PXS layout:
// "the mask file has the same name as the image"). mask_suffix, when given, replaces the image's
// extension: "a.png" -> "a" + mask_suffix. Images without a mask are bad entries.
std::shared_ptr<ImageMaskDataset> paired_folders(const std::string& image_dir, const std::string& mask_dir,
                                                 MaskRule rule, ImageOptions options = {},
                                                 const std::string& mask_suffix = "", std::string name = "");

// ---- ISBI 2012 EM (the U-Net repo layout): <root>/train/image/<n>.png, <root>/train/label/<n>.png.
// Labels are 255 = cell interior, 0 = membrane. Foreground (mask 1) is the CELL INTERIOR by default,
// the value U-Net trains on (label / 255); membrane_foreground = true makes the membrane class 1.
// Samples are ordered by slice number (0, 1, ..., 29), not by file name.
std::shared_ptr<ImageMaskDataset> isbi2012(const std::string& root, ImageOptions options = {},
                                           bool membrane_foreground = false);

// ---- Montgomery County CXR: <root>/CXR_png/MCUCXR_<n>_<label>.png and
// <root>/ManualMask/{leftMask,rightMask}/<same name>: the two lungs merged into one mask.
std::shared_ptr<ImageMaskDataset> montgomery(const std::string& root, ImageOptions options = {});

// ---- DRIVE: <split_dir>/images/<id>_<split>.tif (or .png/.jpg) with the vessel annotation
// <split_dir>/1st_manual/<id>_manual1.gif (official layout) or <split_dir>/labels/<id>_manual1.{gif,png}
// (the SA-UNet copy the paper used). Mask threshold 127, as the paper's code.
std::shared_ptr<ImageMaskDataset> drive(const std::string& split_dir, ImageOptions options = {});

// ---- Data Science Bowl 2018: <stage_dir>/<id>/images/<id>.png and <stage_dir>/<id>/masks/*.png
// (one nucleus each), merged into one binary mask. Images are RGBA; the alpha is dropped.
std::shared_ptr<ImageMaskDataset> dsb2018(const std::string& stage_dir, ImageOptions options = {});

// ---- SIIM-ACR pneumothorax (Kaggle): DICOM files anywhere below dicom_dir (<ImageId>.dcm, in the
// Kaggle tree <study>/<series>/<ImageId>.dcm) and rle_csv (train-rle.csv: "ImageId,EncodedPixels",
// "-1" = no pneumothorax, several rows per image = several regions, merged). Only images listed in
// the CSV are used; a listed image without a DICOM file is a bad entry. `format` says how the runs
// are written (RleFormat::siim(): the competition's relative encoding, column-major).
std::shared_ptr<ImageMaskDataset> siim_acr(const std::string& dicom_dir, const std::string& rle_csv,
                                           ImageOptions options = {}, RleFormat format = RleFormat::siim());

}  // namespace medtl::data
