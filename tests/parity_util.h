// What the PyTorch parity tests share: the Philox weights both sides draw, the fixture file's
// tensors, and the error measures the tolerances are stated in.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <utility>

#include "models/weights.h"
#include "nn/module.h"
#include "tensor/ops/copy.h"

namespace medtl::testing {

// The uniform range every tensor is drawn from; mirrors fill_range() in
// tools/fixtures/make_resnet50_parity.py (which make_unet_parity.py imports).
inline std::pair<double, double> parity_fill_range(const std::string& name, const Shape& shape) {
  auto ends_with = [&](const std::string& s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  if (ends_with("running_var")) return {0.5, 1.5};
  if (ends_with("running_mean") || ends_with("bias")) return {-0.1, 0.1};
  if (shape.size() == 1) return {0.5, 1.5};
  const double fan_in = static_cast<double>(shape_numel(shape) / shape[0]);
  const double bound = std::sqrt(6.0 / fan_in);
  return {-bound, bound};
}

// Overwrites every float tensor of `model`'s state_dict, in order, with a float32 Philox draw of
// (seed, stream 0, 1, ...), converted to the tensor's dtype: what the fixture scripts did in PyTorch
// before model.to(dtype).
inline void fill_from_philox(nn::Module& model, uint64_t seed) {
  uint64_t stream = 0;
  for (auto& [name, t] : model.state_dict()) {
    if (t.dtype() == DType::Int64) continue;  // num_batches_tracked
    const auto [low, high] = parity_fill_range(name, t.shape());
    ops::copy_(t, uniform_keyed(t.shape(), seed, stream++, low, high, DType::Float32));
  }
}

// The tensors of a fixture file, read once per file; a missing name is an error naming the file.
inline const Tensor& fixture_tensor(const std::string& path, const std::string& name) {
  static auto* files = new std::map<std::string, std::map<std::string, Tensor>>();
  auto file = files->find(path);
  if (file == files->end()) {
    std::map<std::string, Tensor> tensors;
    for (auto& [n, t] : models::read_hdf5_tensors(path)) tensors[n] = t;
    file = files->emplace(path, std::move(tensors)).first;
  }
  const auto it = file->second.find(name);
  if (it == file->second.end()) throw Error("fixture " + path + " has no dataset '" + name + "'");
  return it->second;
}

// max |a - b| / max |b|: the relative error the parity tolerances are stated in.
inline double relative_error(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  const auto va = a.to_vector<double>(), vb = b.to_vector<double>();
  double diff = 0.0, scale = 1e-300;
  for (size_t i = 0; i < va.size() && i < vb.size(); ++i) {
    diff = std::max(diff, std::abs(va[i] - vb[i]));
    scale = std::max(scale, std::abs(vb[i]));
  }
  return diff / scale;
}

inline double l2_norm(const Tensor& t) {
  double sq = 0.0;
  for (double v : t.to_vector<double>()) sq += v * v;
  return std::sqrt(sq);
}

}  // namespace medtl::testing
