// Segmentation fine-tuning as the paper's §4.2 engine: the U-Net (ResNet-50 encoder from the
// source's weights, fresh decoder), soft Dice loss over the whole batch, Adam with the per-epoch
// cosine schedule, early stopping on the validation loss, the best-validation weights tested with
// Dice at 0.5 (global over all test pixels, and the per-image mean).
//
// Shapes: images (N, 3, S, S) -> logits (N, 1, S, S) -> sigmoid -> loss / metrics against masks
// (N, 1, S, S) in {0, 1}.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "data/transforms.h"
#include "experiments/benchmark_config.h"
#include "experiments/benchmark_data.h"
#include "experiments/train_common.h"
#include "models/unet.h"

namespace medtl::experiments::bench {

struct SegmenterJob {
  Protocol protocol;
  SplitData data;
  ModelInit init;
  uint64_t seed = 0;  // encoder init (random), decoder init, data order, augmentation
  Device device = Device::cpu();  // where the model trains (batches are moved there)
};

struct SegmenterResult {
  LoopResult loop;
  double dice_global = 0.0;  // all test pixels pooled, threshold 0.5
  double dice_mean = 0.0;    // mean over test images (empty vs empty = 1)
  std::shared_ptr<models::UNetResNet50> model;  // best-validation weights, eval mode
};

SegmenterResult train_segmenter(const SegmenterJob& job, const LoopSettings& settings, const ProgressFn& progress);

// The paper's albumentations augmentation (data::paper_segmentation_augmentation) with its
// pixel-sized parameters scaled to a size x size image (f = size / 224): elastic sigma x f,
// alpha x f^2 (the smoothed field's magnitude falls as 1/sigma), alpha_affine x f, and the
// RandomSizedCrop lower bound 156 x f. At size 224 it is the paper's pipeline exactly.
std::shared_ptr<data::Pipeline> scaled_segmentation_augmentation(int64_t size);

}  // namespace medtl::experiments::bench
