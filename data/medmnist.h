// MedMNIST v2 (.npz with train/val/test arrays): pneumoniamnist, retinamnist and the rest of the
// collection. The split's arrays are read once into memory; get() copies one image out.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "data/classification.h"
#include "data/dataset.h"

namespace medtl::data {

struct MedMnistOptions {
  // MedMNIST images are 1-channel (gray) or 3-channel (RGB); the policy applies as for files.
  ImageOptions image;
  // Number of classes for a single-label file; 0 = from the MedMNIST table by file name
  // (pneumoniamnist 2, retinamnist 5, pathmnist 9, dermamnist 7, ...). Labels outside
  // [0, num_classes) are bad entries (error, or skipped under OnBadSample::Skip).
  int num_classes = 0;
  // Two classes give a Binary dataset (one output) unless this is set.
  bool force_multiclass = false;
};

class MedMnistDataset : public Dataset {
 public:
  using Dataset::get;  // get(i) as well as get(i, key)
  // split: "train", "val" or "test" (arrays <split>_images and <split>_labels).
  MedMnistDataset(const std::string& npz_path, const std::string& split, MedMnistOptions options = {});

  int64_t size() const override { return static_cast<int64_t>(rows_.size()); }
  Sample get(int64_t i, const SampleKey& key) const override;
  TargetKind target_kind() const override { return kind_; }
  std::vector<std::string> class_names() const override { return class_names_; }
  std::string source(int64_t i) const override;
  std::string name() const override { return name_; }

  // Class counts over this split (Binary: {negatives, positives}; MultiLabel: positives per output).
  std::vector<int64_t> class_counts() const;

 private:
  std::string path_, split_, name_;
  TargetKind kind_ = TargetKind::MultiClass;
  std::vector<std::string> class_names_;
  MedMnistOptions options_;
  Tensor images_;                  // uint8 (N, H, W) or (N, H, W, C), as stored
  Tensor labels_;                  // float32 (N, L), as stored
  std::vector<int64_t> rows_;      // usable rows of the arrays (all, unless some were skipped)
};

}  // namespace medtl::data
