// Transforms on an image (C, H, W), alone or with its mask (1, H, W) under the same geometry, the
// per-sample random generator they draw from, and the pipeline that chains them. This file holds
// torchvision's transforms (the paper's classification pipeline); data/augment.h holds
// albumentations' (the segmentation pipeline); the kernels are in data/transforms_resample.h.
//
// Randomness: a transform draws only from the SampleRng it is handed, which the loader keys by
// (seed, epoch, dataset index). So a sample's augmentation is a function of that key alone: the
// same for any number of workers, any batch size, and on every rerun.
//
// Images stay float32 on the scale they were decoded at (0..255 for 8-bit files) until Normalize.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "data/transforms_resample.h"
#include "tensor/tensor.h"

namespace medtl::data {

// ---- Per-sample random numbers. ----

// Random numbers for one sample: Philox blocks philox_random(key, stream, counter) with
// key = a hash of (seed, purpose), stream = epoch * 2^40 + sample index, and a counter that
// advances by one block per draw. Cheap to construct; not shared between threads.
class SampleRng {
 public:
  // The generator for sample `index` (its dataset index) in `epoch`. index < 2^40, epoch < 2^24.
  SampleRng(uint64_t seed, uint64_t epoch, int64_t index);
  // A generator for another purpose (e.g. the loader's shuffle): domain separates the key so
  // its numbers never coincide with an augmentation stream.
  static SampleRng for_purpose(uint64_t seed, uint64_t domain, uint64_t stream);

  double uniform();                          // [0, 1), 53 random bits
  double uniform(double low, double high);   // [low, high)
  double normal();                           // standard normal (Box-Muller on one block)
  int64_t integer(int64_t low, int64_t high);  // uniform in [low, high), like torch.randint
  bool bernoulli(double p) { return uniform() < p; }

  uint64_t draws() const { return counter_; }

 private:
  SampleRng(uint64_t key, uint64_t stream) : key_(key), stream_(stream) {}
  uint64_t key_ = 0, stream_ = 0, counter_ = 0;
};

// ---- The transform interface. ----

// An image and, for segmentation, its mask (undefined otherwise). Transforms replace the tensors.
struct ImageMask {
  Tensor image;  // float32 (C, H, W); after TenCrop (10, C, H, W)
  Tensor mask;   // float32 (1, H, W), or undefined
};

// Transforms are immutable after construction and shared by all loader workers: apply() must be
// thread-safe and draw randomness only from `rng`.
class Transform {
 public:
  virtual ~Transform() = default;
  virtual void apply(ImageMask& x, SampleRng& rng) const = 0;
  virtual std::string describe() const = 0;
};
using TransformPtr = std::shared_ptr<const Transform>;

// Transforms applied in order (torchvision's Compose).
class Pipeline : public Transform {
 public:
  Pipeline() = default;
  explicit Pipeline(std::vector<TransformPtr> steps) : steps_(std::move(steps)) {}
  Pipeline& add(TransformPtr step);
  template <typename T, typename... Args>
  Pipeline& emplace(Args&&... args) { return add(std::make_shared<T>(std::forward<Args>(args)...)); }

  void apply(ImageMask& x, SampleRng& rng) const override;
  ImageMask operator()(ImageMask x, SampleRng& rng) const { apply(x, rng); return x; }
  std::string describe() const override;  // "Pipeline[Resize(256x256), CenterCrop(224x224)]"
  const std::vector<TransformPtr>& steps() const { return steps_; }

 private:
  std::vector<TransformPtr> steps_;
};

// ---- Deterministic geometry. ----

// Resize to (h, w): torchvision Resize((h, w)) with the defaults (antialiased bilinear image,
// PIL-nearest mask). The paper's segmentation preprocessing is Resize(224, 224, Nearest, Nearest)
// (cv2.INTER_NEAREST for both).
class Resize : public Transform {
 public:
  Resize(int64_t h, int64_t w, Interp image_interp = Interp::Antialias, Interp mask_interp = Interp::NearestCenter);
  void apply(ImageMask& x, SampleRng& rng) const override;
  std::string describe() const override;

 private:
  int64_t h_, w_;
  Interp image_interp_, mask_interp_;
};

// The centred (h, w) window; offsets round((H - h) / 2) with Python's rounding, as torchvision.
class CenterCrop : public Transform {
 public:
  CenterCrop(int64_t h, int64_t w) : h_(h), w_(w) {}
  void apply(ImageMask& x, SampleRng& rng) const override;
  std::string describe() const override;

 private:
  int64_t h_, w_;
};

// The ten crops of torchvision's TenCrop(size), stacked: (C, H, W) -> (10, C, h, w), in the
// order top-left, top-right, bottom-left, bottom-right, centre, then the same five of the
// horizontally flipped image. A mask becomes (10, 1, h, w).
std::vector<Tensor> ten_crop(const Tensor& image, int64_t h, int64_t w);
class TenCrop : public Transform {
 public:
  TenCrop(int64_t h, int64_t w) : h_(h), w_(w) {}
  void apply(ImageMask& x, SampleRng& rng) const override;
  std::string describe() const override;

 private:
  int64_t h_, w_;
};

// ---- torchvision's random transforms. ----

// A crop window in pixels.
struct CropBox {
  int64_t top = 0, left = 0, h = 0, w = 0;
};

// RandomResizedCrop(size, scale, ratio): torchvision's get_params (10 attempts at an area
// fraction in `scale` and a log-uniform aspect ratio in `ratio`, then the centred fallback),
// then crop and resize to (h, w).
class RandomResizedCrop : public Transform {
 public:
  RandomResizedCrop(int64_t h, int64_t w, std::pair<double, double> scale = {0.08, 1.0},
                    std::pair<double, double> ratio = {3.0 / 4.0, 4.0 / 3.0}, Interp image_interp = Interp::Antialias,
                    Interp mask_interp = Interp::NearestCenter);
  // The window for an image of height x width (torchvision's RandomResizedCrop.get_params).
  CropBox sample_box(int64_t height, int64_t width, SampleRng& rng) const;
  void apply(ImageMask& x, SampleRng& rng) const override;
  std::string describe() const override;

 private:
  int64_t h_, w_;
  std::pair<double, double> scale_, ratio_;
  Interp image_interp_, mask_interp_;
};

// Mirrors left-right with probability p (torchvision RandomHorizontalFlip).
class RandomHorizontalFlip : public Transform {
 public:
  explicit RandomHorizontalFlip(double p = 0.5) : p_(p) {}
  void apply(ImageMask& x, SampleRng& rng) const override;
  std::string describe() const override;

 private:
  double p_;
};

// torchvision RandomRotation(degrees): an angle uniform in [-degrees, degrees], PIL's rotate
// about the centre, no expansion, `fill` outside. torchvision's default interpolation (the one
// the paper's RandomRotation(7) used) is NEAREST, hence Interp::NearestCenter; pass Interp::Linear
// for bilinear. The mask is always rotated with nearest and filled with 0.
class RandomRotation : public Transform {
 public:
  explicit RandomRotation(double degrees, Interp image_interp = Interp::NearestCenter, float fill = 0.0f);
  void apply(ImageMask& x, SampleRng& rng) const override;
  std::string describe() const override;

 private:
  double degrees_;
  Interp image_interp_;
  float fill_;
};

// ---- Values. ----

// out[c] = (in[src(c)] * scale - mean[c]) / std[c] on (..., C, H, W), where src(c) = C - 1 - c
// when reverse_channels (RGB -> BGR) and c otherwise. One mean / std value applies to every
// channel. The caller fills these from the weights it will use (a weight file's attributes):
// data/ knows nothing of models.
struct NormalizeSpec {
  std::vector<double> mean{0.0};
  std::vector<double> std{1.0};
  double scale = 1.0;             // applied first: 1/255 maps 8-bit values to [0, 1]
  bool reverse_channels = false;  // RGB in, BGR out (Keras "caffe")

  // torchvision / the paper: [0, 255] -> [0, 1], mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225).
  static NormalizeSpec imagenet();
  // The paper's "chestx-ray" option: [0, 1], mean 0.5056, std 0.252 on every channel.
  static NormalizeSpec chestxray();
  // Keras applications' "caffe" preprocessing: 0..255 RGB -> BGR minus (103.939, 116.779, 123.68).
  static NormalizeSpec caffe();
  std::string describe() const;
};
class Normalize : public Transform {
 public:
  explicit Normalize(NormalizeSpec spec);
  void apply(ImageMask& x, SampleRng& rng) const override;
  std::string describe() const override;
  static Tensor normalize(const Tensor& image, const NormalizeSpec& spec);

 private:
  NormalizeSpec spec_;
};

// Multiplies the image by a constant (ToTensor's / 255, albumentations' ToFloat(max_value)).
class ScaleValues : public Transform {
 public:
  explicit ScaleValues(double factor) : factor_(factor) {}
  void apply(ImageMask& x, SampleRng& rng) const override;
  std::string describe() const override;

 private:
  double factor_;
};

// One channel replicated to three (PIL convert('RGB') of a gray image); three channels pass
// through; any other count is an error naming it.
class GrayToRgb : public Transform {
 public:
  void apply(ImageMask& x, SampleRng& rng) const override;
  std::string describe() const override { return "GrayToRgb"; }
};

// ---- The paper's classification pipelines (paper-protocol.md 4.1), on decoded 0..255 images. ----
// Channel replication comes just before Normalize: every earlier step treats channels alike,
// so the result is the same as converting first, for a third of the work on gray images.

// Train: RandomResizedCrop(size) + RandomHorizontalFlip + RandomRotation(7) + GrayToRgb + Normalize.
std::shared_ptr<Pipeline> paper_classification_train(NormalizeSpec spec, int64_t size = 224);
// Valid: Resize((resize, resize)) + CenterCrop(size) + GrayToRgb + Normalize.
std::shared_ptr<Pipeline> paper_classification_val(NormalizeSpec spec, int64_t resize = 256, int64_t size = 224);
// Test: Resize((resize, resize)) + TenCrop(size) + GrayToRgb + Normalize -> (10, 3, size, size).
std::shared_ptr<Pipeline> paper_classification_test(NormalizeSpec spec, int64_t resize = 256, int64_t size = 224);

}  // namespace medtl::data
