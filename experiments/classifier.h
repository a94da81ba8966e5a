// Image classification with a pretrained ResNet-50 weight file: the model, the input
// preprocessing the file's attributes describe, and top-k predictions. Used by the classify
// command and by the tests that check real ImageNet predictions.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "models/resnet.h"
#include "models/weights.h"

namespace medtl::experiments {

// How an image becomes a 224x224 input.
enum class CropMode {
  CenterSquare,  // largest centred square, resized to 224 (the check in pretrained-weights.md)
  Resize256,     // shorter side to 256 keeping the aspect ratio, centre crop 224 (torchvision eval)
};
CropMode parse_crop_mode(const std::string& name);  // "square" | "resize256"

struct Classifier {
  std::shared_ptr<models::ResNet50> model;  // in eval mode
  models::WeightFileInfo info;
  std::vector<std::string> class_names;      // empty when the file names none
};

// Builds the ResNet-50 the file describes (variant, classes) and loads it strictly. Errors name
// the file and what is wrong with it.
Classifier load_classifier(const std::string& weights_path);

// Decodes an image file and turns it into the network input the weights expect:
// RGB (or BGR), scaled to [0, value_scale], (x - mean) / std. Result: (3, 224, 224) float32.
Tensor preprocess_image(const std::string& path, const models::WeightFileInfo& info, CropMode mode);

struct Prediction {
  int64_t index;
  std::string name;
  double probability;
};
// logits: (num_classes,) -> the k most probable classes under softmax, most probable first.
std::vector<Prediction> top_k(const Tensor& logits, int64_t k, const std::vector<std::string>& class_names);

// Reads a JSON object {"0": "tench", ...} or array ["tench", ...] of class names.
std::vector<std::string> read_class_names(const std::string& path);

}  // namespace medtl::experiments
