// MedMNIST .npz splits as a Dataset.
#include "data/medmnist.h"

#include <cmath>
#include <cstring>
#include <map>

#include "data/files.h"
#include "data/image.h"
#include "data/layout_util.h"
#include "data/npz.h"

namespace medtl::data {
namespace {

struct MedMnistInfo {
  int classes;
  std::vector<std::string> names;  // empty: "0".."K-1"
};

// The MedMNIST v2 INFO table (medmnist/info.py): single-label tasks and their class counts.
// chestmnist (14 labels) is multi-label and is recognised from its label array's shape.
const std::map<std::string, MedMnistInfo>& medmnist_table() {
  static const std::map<std::string, MedMnistInfo> table = {
      {"pneumoniamnist", {2, {"normal", "pneumonia"}}},
      {"retinamnist", {5, {"grade 0", "grade 1", "grade 2", "grade 3", "grade 4"}}},
      {"pathmnist", {9, {}}},
      {"dermamnist", {7, {}}},
      {"octmnist", {4, {"choroidal neovascularization", "diabetic macular edema", "drusen", "normal"}}},
      {"breastmnist", {2, {"malignant", "normal, benign"}}},
      {"bloodmnist", {8, {}}},
      {"tissuemnist", {8, {}}},
      {"organamnist", {11, {}}},
      {"organcmnist", {11, {}}},
      {"organsmnist", {11, {}}},
  };
  return table;
}

}  // namespace

MedMnistDataset::MedMnistDataset(const std::string& npz_path, const std::string& split, MedMnistOptions options)
    : path_(npz_path), split_(split), options_(options) {
  MEDTL_CHECK(split == "train" || split == "val" || split == "test", "MedMNIST '", npz_path, "': split '", split,
              "' unknown; use train, val or test");
  name_ = file_stem(npz_path) + "/" + split;
  images_ = read_npz_array(npz_path, split + "_images");
  const Tensor raw_labels = read_npz_array(npz_path, split + "_labels");
  MEDTL_CHECK(images_.dtype() == DType::UInt8 && (images_.dim() == 3 || (images_.dim() == 4 && (images_.size(3) == 1 || images_.size(3) == 3))),
              "MedMNIST '", npz_path, "': ", split, "_images is ", images_.str(), "; expected uint8 (N, H, W) or (N, H, W, 3)");
  const int64_t n = images_.size(0);
  MEDTL_CHECK(n > 0, "MedMNIST '", npz_path, "': split '", split, "' is empty");
  labels_ = raw_labels.to(DType::Float32).reshape({raw_labels.size(0), -1}).contiguous();
  MEDTL_CHECK(labels_.size(0) == n, "MedMNIST '", npz_path, "': ", n, " images but ", labels_.size(0), " labels in '",
              split, "'");
  const int64_t width = labels_.size(1);
  const std::string stem = lower(file_stem(npz_path));
  int classes = options.num_classes;
  std::vector<std::string> names;
  if (width > 1) {
    kind_ = TargetKind::MultiLabel;
    classes = static_cast<int>(width);
  } else {
    const auto it = medmnist_table().find(stem);
    if (classes == 0) {
      MEDTL_CHECK(it != medmnist_table().end(), "MedMNIST '", npz_path, "': file name '", stem,
                  "' is not a known MedMNIST task; pass MedMnistOptions::num_classes");
      classes = it->second.classes;
    }
    if (it != medmnist_table().end() && static_cast<int>(it->second.names.size()) == classes) names = it->second.names;
    kind_ = classes == 2 && !options.force_multiclass ? TargetKind::Binary : TargetKind::MultiClass;
  }
  if (names.empty())
    for (int c = 0; c < classes; ++c) names.push_back(std::to_string(c));
  class_names_ = names;
  BadEntry bad{options.image.on_bad, skipped_.get()};
  const float* l = labels_.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    bool ok = true;
    for (int64_t j = 0; j < width && ok; ++j) {
      const float v = l[i * width + j];
      const bool valid = kind_ == TargetKind::MultiLabel ? (v == 0.0f || v == 1.0f)
                                                         : (v >= 0 && v < classes && v == std::floor(v));
      if (!valid) {
        bad(npz_path + ":" + split + "_labels[" + std::to_string(i) + "]",
            "unknown label " + std::to_string(v) + " (expected " +
                (kind_ == TargetKind::MultiLabel ? std::string("0 or 1") : "0.." + std::to_string(classes - 1)) + ")");
        ok = false;
      }
    }
    if (ok) rows_.push_back(i);
  }
  MEDTL_CHECK(!rows_.empty(), "MedMNIST '", npz_path, "': split '", split, "' has no usable rows");
}

Sample MedMnistDataset::get(int64_t i, const SampleKey&) const {
  check_index(i);
  const int64_t row = rows_[i];
  const Tensor image = images_.select(0, row);  // (H, W) or (H, W, C)
  const Tensor chw = image.dim() == 2 ? image.unsqueeze(0) : image.permute({2, 0, 1});
  Sample s;
  s.index = i;
  s.source = source(i);
  s.image = apply_channel_policy(chw.to(DType::Float32), options_.image.channels, 8, s.source);
  const int64_t width = labels_.size(1);
  const float* l = labels_.data<float>() + row * width;
  if (kind_ == TargetKind::MultiLabel) {
    s.label = from_vector<float>(std::vector<float>(l, l + width), {width});
  } else {
    s.class_index = static_cast<int64_t>(l[0]);
    if (kind_ == TargetKind::Binary) {
      s.label = from_vector<float>({static_cast<float>(s.class_index)}, {1});
    } else {
      std::vector<float> onehot(class_names_.size(), 0.0f);
      onehot[s.class_index] = 1.0f;
      s.label = from_vector<float>(onehot, {static_cast<int64_t>(onehot.size())});
    }
  }
  return s;
}

std::string MedMnistDataset::source(int64_t i) const {
  check_index(i);
  return path_ + ":" + split_ + "[" + std::to_string(rows_[i]) + "]";
}

std::vector<int64_t> MedMnistDataset::class_counts() const {
  const int64_t width = labels_.size(1);
  std::vector<int64_t> counts(kind_ == TargetKind::MultiLabel ? width : class_names_.size(), 0);
  const float* l = labels_.data<float>();
  for (int64_t row : rows_) {
    if (kind_ == TargetKind::MultiLabel) {
      for (int64_t j = 0; j < width; ++j) counts[j] += l[row * width + j] != 0.0f;
    } else {
      ++counts[static_cast<int64_t>(l[row * width])];
    }
  }
  return counts;
}

}  // namespace medtl::data
