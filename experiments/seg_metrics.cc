// Dice and IoU from exact integer counts of thresholded pixels.
#include "experiments/seg_metrics.h"

#include "tensor/dispatch.h"

namespace medtl::experiments {

double dice_score(const MaskCounts& c) {
  const int64_t sum = c.predicted + c.target;
  return sum == 0 ? 1.0 : 2.0 * static_cast<double>(c.intersection) / static_cast<double>(sum);
}

double iou_score(const MaskCounts& c) {
  const int64_t uni = c.predicted + c.target - c.intersection;
  return uni == 0 ? 1.0 : static_cast<double>(c.intersection) / static_cast<double>(uni);
}

void SegmentationMetrics::add(const Tensor& probs, const Tensor& targets) {
  MEDTL_CHECK(probs.defined() && targets.defined(), "SegmentationMetrics::add: predictions and targets must be defined");
  MEDTL_CHECK(probs.shape() == targets.shape() && probs.dim() >= 1, "SegmentationMetrics::add: predictions ",
              shape_str(probs.shape()), " and targets ", shape_str(targets.shape()),
              " must have the same shape (N, ...)");
  const int64_t n = probs.size(0), pixels = n > 0 ? probs.numel() / n : 0;
  const Tensor p = probs.contiguous(), t = targets.to(probs.dtype()).contiguous();
  dispatch_float(p.dtype(), "SegmentationMetrics::add", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T threshold = static_cast<T>(threshold_);
    for (int64_t i = 0; i < n; ++i) {
      const T* pp = p.data<T>() + i * pixels;
      const T* pt = t.data<T>() + i * pixels;
      MaskCounts c;
      for (int64_t k = 0; k < pixels; ++k) {
        const bool a = pp[k] > threshold, b = pt[k] > threshold;
        c.intersection += a && b;
        c.predicted += a;
        c.target += b;
      }
      per_image_.push_back(c);
    }
  });
}

MaskCounts SegmentationMetrics::total() const {
  MaskCounts sum;
  for (const MaskCounts& c : per_image_) {
    sum.intersection += c.intersection;
    sum.predicted += c.predicted;
    sum.target += c.target;
  }
  return sum;
}

double SegmentationMetrics::mean_dice() const {
  MEDTL_CHECK(!per_image_.empty(), "SegmentationMetrics::mean_dice: no image was added");
  double sum = 0.0;
  for (const MaskCounts& c : per_image_) sum += dice_score(c);
  return sum / static_cast<double>(per_image_.size());
}

double SegmentationMetrics::mean_iou() const {
  MEDTL_CHECK(!per_image_.empty(), "SegmentationMetrics::mean_iou: no image was added");
  double sum = 0.0;
  for (const MaskCounts& c : per_image_) sum += iou_score(c);
  return sum / static_cast<double>(per_image_.size());
}

}  // namespace medtl::experiments
