// Preprocessing, prediction and mask files for U-Net segmentation.
#include "experiments/segmenter.h"

#include <stb/stb_image_write.h>

#include <cstdlib>
#include <vector>

#include "autograd/graph.h"
#include "data/image.h"
#include "tensor/ops/copy.h"

namespace medtl::experiments {

data::NormalizeSpec normalize_spec(const models::WeightFileInfo& info, double file_max) {
  MEDTL_CHECK(info.channel_order == "RGB" || info.channel_order == "BGR", "weight file channel_order '",
              info.channel_order, "' is neither RGB nor BGR");
  data::NormalizeSpec spec;
  spec.mean.assign(info.mean.begin(), info.mean.end());
  spec.std.assign(info.std.begin(), info.std.end());
  spec.scale = info.value_scale / file_max;
  spec.reverse_channels = info.channel_order == "BGR";
  return spec;
}

Tensor preprocess_segmentation_image(const std::string& path, const models::WeightFileInfo& info, int64_t size) {
  MEDTL_CHECK(size >= 0, "preprocess_segmentation_image: size must be >= 0 (0 keeps the image's size), got ", size);
  const data::DecodedImage decoded = data::decode_image(path, data::ChannelPolicy::RGB);
  Tensor image = decoded.pixels;  // (3, H, W) on 0..255 or 0..65535
  if (size > 0) image = data::resize_bilinear(image, size, size);
  return data::Normalize::normalize(image, normalize_spec(info, decoded.bits_per_channel == 16 ? 65535.0 : 255.0));
}

Tensor predict_logits(models::UNetResNet50& model, const Tensor& batch, int64_t chunk) {
  MEDTL_CHECK(chunk > 0, "predict_logits: chunk must be positive, got ", chunk);
  MEDTL_CHECK(batch.defined() && batch.dim() == 4, "predict_logits: expected a batch (N, 3, H, W), got ",
              batch.defined() ? shape_str(batch.shape()) : "an undefined tensor");
  ag::NoGradGuard no_grad;
  model.eval();
  const int64_t n = batch.size(0);
  Tensor out;
  for (int64_t start = 0; start < n; start += chunk) {
    const int64_t count = std::min(chunk, n - start);
    const Tensor logits = model.forward(batch.narrow(0, start, count).to(model.device()));  // back below
    if (!out.defined()) out = empty({n, logits.size(1), logits.size(2), logits.size(3)}, logits.dtype());
    ops::copy_(out.narrow(0, start, count), logits);
  }
  if (!out.defined()) out = empty({0, model.classes(), batch.size(2), batch.size(3)});
  return out;
}

void write_mask_png(const std::string& path, const Tensor& probs, double threshold) {
  MEDTL_CHECK(probs.defined() && probs.dim() == 2, "write_mask_png: expected probabilities (H, W), got ",
              probs.defined() ? shape_str(probs.shape()) : "an undefined tensor");
  const int64_t h = probs.size(0), w = probs.size(1);
  MEDTL_CHECK(h > 0 && w > 0, "write_mask_png: '", path, "': the mask is empty ", shape_str(probs.shape()));
  const std::vector<double> values = probs.to_vector<double>();
  std::vector<unsigned char> pixels(values.size());
  for (size_t i = 0; i < values.size(); ++i) pixels[i] = values[i] > threshold ? 255 : 0;
  MEDTL_CHECK(stbi_write_png(path.c_str(), static_cast<int>(w), static_cast<int>(h), 1, pixels.data(),
                             static_cast<int>(w)) != 0,
              "write_mask_png: cannot write '", path, "' (does its folder exist and is it writable?)");
}

std::string user_path(const std::string& path) {
  const char* cwd = std::getenv("BUILD_WORKING_DIRECTORY");
  if (path.empty() || path[0] == '/' || cwd == nullptr || cwd[0] == '\0') return path;
  return std::string(cwd) + "/" + path;
}

}  // namespace medtl::experiments
