// Segmentation with a U-Net weight file: the input preprocessing the file's attributes describe,
// eval-mode prediction, and predicted masks as PNG files. Used by the segment command and the
// ISBI fine-tuning program.
#pragma once

#include <string>

#include "data/transforms.h"
#include "models/unet.h"

namespace medtl::experiments {

// The normalisation a weight file's attributes describe, for images decoded on 0..file_max
// (255 for 8-bit files): channels reordered to channel_order, scaled to [0, value_scale],
// then (x - mean) / std per channel.
data::NormalizeSpec normalize_spec(const models::WeightFileInfo& info, double file_max = 255.0);

// An image file as network input: decoded as 3 channels (gray replicated, alpha dropped),
// resized to (size, size) with antialiased bilinear when size > 0 (size 0 keeps the file's
// size), normalised by normalize_spec. -> (3, H, W) float32.
Tensor preprocess_segmentation_image(const std::string& path, const models::WeightFileInfo& info, int64_t size = 0);

// Logits for a batch in eval mode without gradients, `chunk` images at a time (the model is put
// in eval mode and left there). Each chunk runs on the model's device; the logits come back to
// the CPU. batch: (N, 3, H, W) -> (N, classes, H, W).
Tensor predict_logits(models::UNetResNet50& model, const Tensor& batch, int64_t chunk = 4);

// Writes probs (H, W) as an 8-bit gray PNG: 255 where prob > threshold, else 0. Throws naming
// the path if it cannot be written.
void write_mask_png(const std::string& path, const Tensor& probs, double threshold = 0.5);

// A path the user typed, made absolute against the directory `bazel run` was started from
// (BUILD_WORKING_DIRECTORY); unchanged outside bazel run or when already absolute.
std::string user_path(const std::string& path);

}  // namespace medtl::experiments
