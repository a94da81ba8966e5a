// Segmentation metrics as the paper's code prints them (protocol §4.2): Dice and IoU of masks
// thresholded at 0.5, both GLOBAL (all pixels of all images pooled) and the per-image MEAN, where
// an image whose prediction and mask are both empty scores 1.
//
// These are evaluation code, not training code: no gradients, exact integer pixel counts, so they
// live with the experiments rather than in nn/ (whose losses must be differentiable).
#pragma once

#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace medtl::experiments {

// Pixel counts of one image (or of a pooled set) after thresholding.
struct MaskCounts {
  int64_t intersection = 0;  // predicted and target
  int64_t predicted = 0;     // predicted foreground
  int64_t target = 0;        // target foreground
};
// 2 |P ∩ T| / (|P| + |T|); 1 when both are empty (the paper's dice(..., empty_score=1.0)).
double dice_score(const MaskCounts& c);
// |P ∩ T| / |P ∪ T|; 1 when both are empty.
double iou_score(const MaskCounts& c);

// Accumulates over batches.
class SegmentationMetrics {
 public:
  // A pixel is foreground when its value is > threshold (strictly, as the paper's `im > 0.5`), for
  // predictions and targets alike. Pass probabilities (sigmoid of the logits).
  explicit SegmentationMetrics(double threshold = 0.5) : threshold_(threshold) {}

  // probs, targets: (N, ...) same shape, float32 or float64 (any strides); image n is index n of
  // dim 0, everything else is its pixels (and channels).
  void add(const Tensor& probs, const Tensor& targets);

  int64_t images() const { return static_cast<int64_t>(per_image_.size()); }
  const std::vector<MaskCounts>& per_image() const { return per_image_; }
  MaskCounts total() const;  // pooled over every image

  double global_dice() const { return dice_score(total()); }
  double global_iou() const { return iou_score(total()); }
  double mean_dice() const;  // mean over images of dice_score; an error before any image was added
  double mean_iou() const;

 private:
  double threshold_;
  std::vector<MaskCounts> per_image_;
};

}  // namespace medtl::experiments
