// Loading a classifier from a weight file, preprocessing images for it, top-k predictions.
#include "experiments/classifier.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <sstream>

#include "data/image.h"

namespace medtl::experiments {

CropMode parse_crop_mode(const std::string& name) {
  if (name == "square") return CropMode::CenterSquare;
  if (name == "resize256") return CropMode::Resize256;
  MEDTL_CHECK(false, "unknown crop mode '", name, "' (expected 'square' or 'resize256')");
  return CropMode::CenterSquare;
}

std::vector<std::string> read_class_names(const std::string& path) {
  std::ifstream in(path);
  MEDTL_CHECK(in.good(), "cannot open class names file '", path, "'");
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  // Both layouts are sequences of quoted strings; in the object form every other string is a key.
  std::vector<std::string> strings;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '"') continue;
    std::string s;
    for (++i; i < text.size() && text[i] != '"'; ++i) {
      if (text[i] == '\\' && i + 1 < text.size()) ++i;
      s += text[i];
    }
    strings.push_back(s);
  }
  const bool object = text.find('{') != std::string::npos && text.find('{') < text.find('"');
  if (!object) return strings;
  MEDTL_CHECK(strings.size() % 2 == 0, "class names file '", path, "': malformed JSON object");
  std::vector<std::string> names(strings.size() / 2);
  for (size_t i = 0; i + 1 < strings.size(); i += 2) {
    const size_t index = std::stoul(strings[i]);
    MEDTL_CHECK(index < names.size(), "class names file '", path, "': index ", index, " out of range");
    names[index] = strings[i + 1];
  }
  return names;
}

Classifier load_classifier(const std::string& weights_path) {
  Classifier c;
  c.info = models::read_weight_info(weights_path);
  MEDTL_CHECK(c.info.architecture == "resnet50", "'", weights_path, "' holds a '", c.info.architecture,
              "' model; classify needs a resnet50 weight file with a classifier");
  MEDTL_CHECK(c.info.num_classes > 0, "'", weights_path, "' has no classifier (num_classes = 0): it is a backbone for ",
              "fine-tuning; classify needs a file with its fc layer (e.g. from tools/fetch_weights.sh)");
  Generator gen(0);  // every tensor is overwritten by the strict load
  c.model = std::make_shared<models::ResNet50>(models::parse_variant(c.info.variant), c.info.num_classes, gen);
  models::load_weights(weights_path, *c.model, models::LoadMode::Strict);
  c.model->eval();
  if (!c.info.class_names_file.empty()) {
    std::string names_path = c.info.class_names_file;
    if (names_path[0] != '/') {  // relative to the weight file's folder
      const size_t slash = weights_path.rfind('/');
      if (slash != std::string::npos) names_path = weights_path.substr(0, slash + 1) + names_path;
    }
    c.class_names = read_class_names(names_path);
  }
  return c;
}

Tensor preprocess_image(const std::string& path, const models::WeightFileInfo& info, CropMode mode) {
  const data::DecodedImage decoded = data::decode_image(path, data::ChannelPolicy::RGB);
  Tensor image = decoded.pixels;  // (3, H, W) on 0..255 or 0..65535
  if (mode == CropMode::CenterSquare) {
    image = data::resize_bilinear(data::center_square(image), 224, 224);
  } else {
    const int64_t h = image.size(1), w = image.size(2);
    const int64_t new_h = h <= w ? 256 : static_cast<int64_t>(256.0 * h / w);
    const int64_t new_w = h <= w ? static_cast<int64_t>(256.0 * w / h) : 256;
    image = data::center_crop(data::resize_bilinear(image, new_h, new_w), 224, 224);
  }
  const double file_max = decoded.bits_per_channel == 16 ? 65535.0 : 255.0;
  MEDTL_CHECK(info.channel_order == "RGB" || info.channel_order == "BGR", "weight file channel_order '",
              info.channel_order, "' is neither RGB nor BGR");
  const bool bgr = info.channel_order == "BGR";
  Tensor out = empty({3, 224, 224});
  const float* src = image.data<float>();
  float* dst = out.data<float>();
  for (int64_t c = 0; c < 3; ++c) {
    const int64_t from = bgr ? 2 - c : c;
    const double scale = info.value_scale / file_max;
    for (int64_t i = 0; i < 224 * 224; ++i)
      dst[c * 224 * 224 + i] = static_cast<float>((src[from * 224 * 224 + i] * scale - info.mean[c]) / info.std[c]);
  }
  return out;
}

std::vector<Prediction> top_k(const Tensor& logits, int64_t k, const std::vector<std::string>& class_names) {
  const std::vector<double> values = logits.to_vector<double>();
  const double peak = *std::max_element(values.begin(), values.end());
  double total = 0.0;
  for (double v : values) total += std::exp(v - peak);
  std::vector<int64_t> order(values.size());
  std::iota(order.begin(), order.end(), 0);
  k = std::min<int64_t>(k, static_cast<int64_t>(values.size()));
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t a, int64_t b) {
    return values[a] > values[b] || (values[a] == values[b] && a < b);
  });
  std::vector<Prediction> out;
  for (int64_t i = 0; i < k; ++i) {
    const int64_t index = order[i];
    const std::string name = index < static_cast<int64_t>(class_names.size()) ? class_names[index] : "";
    out.push_back({index, name, std::exp(values[index] - peak) / total});
  }
  return out;
}

}  // namespace medtl::experiments
