// SampleRng, Pipeline and torchvision's transforms (resize, crops, flip, rotation, normalisation).
#include "data/transforms.h"

#include <cmath>
#include <cstring>

#include "tensor/philox.h"

namespace medtl::data {
namespace {

constexpr uint64_t kAugmentDomain = 0x61756775u;  // "augu"
constexpr double kTwoPi = 6.283185307179586476925286766559;

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t purpose_key(uint64_t seed, uint64_t domain) { return splitmix64(seed ^ splitmix64(domain)); }

// Stacks equally shaped tensors along a new first dim.
Tensor stack(const std::vector<Tensor>& parts) {
  Shape shape = parts.front().shape();
  shape.insert(shape.begin(), static_cast<int64_t>(parts.size()));
  Tensor out = empty(shape);
  const int64_t n = parts.front().numel();
  for (size_t i = 0; i < parts.size(); ++i) {
    const Tensor p = parts[i].to(DType::Float32).contiguous();
    std::memcpy(out.data<float>() + i * n, p.data<float>(), sizeof(float) * n);
  }
  return out;
}

std::string size_str(int64_t h, int64_t w) { return str_cat(h, "x", w); }

void check_mask_matches(const ImageMask& x, const char* op) {
  if (!x.mask.defined()) return;
  MEDTL_CHECK(x.image.dim() == 3 && x.mask.dim() == 3 && x.image.size(1) == x.mask.size(1) &&
                  x.image.size(2) == x.mask.size(2),
              op, ": the mask ", shape_str(x.mask.shape()), " does not match the image ", shape_str(x.image.shape()),
              " (expected (1, H, W) with the image's H and W)");
}

}  // namespace

// ---- SampleRng. ----

SampleRng::SampleRng(uint64_t seed, uint64_t epoch, int64_t index) {
  MEDTL_CHECK(index >= 0 && index < (int64_t(1) << 40), "SampleRng: sample index ", index, " is outside [0, 2^40)");
  MEDTL_CHECK(epoch < (uint64_t(1) << 24), "SampleRng: epoch ", epoch, " is outside [0, 2^24)");
  key_ = purpose_key(seed, kAugmentDomain);
  stream_ = (epoch << 40) | static_cast<uint64_t>(index);
}

SampleRng SampleRng::for_purpose(uint64_t seed, uint64_t domain, uint64_t stream) {
  MEDTL_CHECK(domain != kAugmentDomain, "SampleRng::for_purpose: domain ", domain, " is reserved for augmentation");
  return SampleRng(purpose_key(seed, domain), stream);
}

double SampleRng::uniform() {
  const PhiloxBlock r = philox_random(key_, stream_, counter_++);
  return uints_to_unit_double(r[0], r[1]);
}

double SampleRng::uniform(double low, double high) {
  const double value = low + (high - low) * uniform();
  return value < high || !(low < high) ? value : std::nextafter(high, low);
}

double SampleRng::normal() {
  const PhiloxBlock r = philox_random(key_, stream_, counter_++);
  const double u1 = 1.0 - uints_to_unit_double(r[0], r[1]);  // (0, 1]: log is finite
  const double u2 = uints_to_unit_double(r[2], r[3]);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(kTwoPi * u2);
}

int64_t SampleRng::integer(int64_t low, int64_t high) {
  MEDTL_CHECK(low < high, "SampleRng::integer: empty range [", low, ", ", high, ")");
  const PhiloxBlock r = philox_random(key_, stream_, counter_++);
  const uint64_t bits = (static_cast<uint64_t>(r[0]) << 32) | r[1];
  const uint64_t n = static_cast<uint64_t>(high - low);
  // Multiply-shift: floor(bits * n / 2^64), bias below n / 2^64.
  return low + static_cast<int64_t>((static_cast<unsigned __int128>(bits) * n) >> 64);
}

// ---- Pipeline. ----

Pipeline& Pipeline::add(TransformPtr step) {
  MEDTL_CHECK(step != nullptr, "Pipeline::add: null transform");
  steps_.push_back(std::move(step));
  return *this;
}

void Pipeline::apply(ImageMask& x, SampleRng& rng) const {
  for (const TransformPtr& step : steps_) step->apply(x, rng);
}

std::string Pipeline::describe() const {
  std::string out = "Pipeline[";
  for (size_t i = 0; i < steps_.size(); ++i) out += (i ? ", " : "") + steps_[i]->describe();
  return out + "]";
}

// ---- Deterministic geometry. ----

Resize::Resize(int64_t h, int64_t w, Interp image_interp, Interp mask_interp)
    : h_(h), w_(w), image_interp_(image_interp), mask_interp_(mask_interp) {
  MEDTL_CHECK(h > 0 && w > 0, "Resize: size must be positive, got ", size_str(h, w));
  MEDTL_CHECK(mask_interp == Interp::Nearest || mask_interp == Interp::NearestCenter,
              "Resize: a mask must be resized with a nearest rule, got ", interp_name(mask_interp));
}

void Resize::apply(ImageMask& x, SampleRng&) const {
  check_mask_matches(x, "Resize");
  x.image = resize(x.image, h_, w_, image_interp_);
  if (x.mask.defined()) x.mask = resize(x.mask, h_, w_, mask_interp_);
}

std::string Resize::describe() const {
  return str_cat("Resize(", size_str(h_, w_), ", ", interp_name(image_interp_), ", mask ", interp_name(mask_interp_), ")");
}

void CenterCrop::apply(ImageMask& x, SampleRng&) const {
  check_mask_matches(x, "CenterCrop");
  x.image = center_crop_tv(x.image, h_, w_);
  if (x.mask.defined()) x.mask = center_crop_tv(x.mask, h_, w_);
}

std::string CenterCrop::describe() const { return "CenterCrop(" + size_str(h_, w_) + ")"; }

std::vector<Tensor> ten_crop(const Tensor& image, int64_t h, int64_t w) {
  MEDTL_CHECK(image.dim() == 3, "TenCrop: expected (C, H, W), got shape ", shape_str(image.shape()));
  const int64_t H = image.size(1), W = image.size(2);
  MEDTL_CHECK(h <= H && w <= W, "TenCrop: crop ", size_str(h, w), " is larger than the image ", size_str(H, W));
  std::vector<Tensor> crops;
  for (const Tensor& source : {image, hflip(image)}) {
    crops.push_back(crop(source, 0, 0, h, w));
    crops.push_back(crop(source, 0, W - w, h, w));
    crops.push_back(crop(source, H - h, 0, h, w));
    crops.push_back(crop(source, H - h, W - w, h, w));
    crops.push_back(center_crop_tv(source, h, w));
  }
  return crops;
}

void TenCrop::apply(ImageMask& x, SampleRng&) const {
  check_mask_matches(x, "TenCrop");
  x.image = stack(ten_crop(x.image, h_, w_));
  if (x.mask.defined()) x.mask = stack(ten_crop(x.mask, h_, w_));
}

std::string TenCrop::describe() const { return "TenCrop(" + size_str(h_, w_) + ")"; }

// ---- Random transforms. ----

RandomResizedCrop::RandomResizedCrop(int64_t h, int64_t w, std::pair<double, double> scale,
                                     std::pair<double, double> ratio, Interp image_interp, Interp mask_interp)
    : h_(h), w_(w), scale_(scale), ratio_(ratio), image_interp_(image_interp), mask_interp_(mask_interp) {
  MEDTL_CHECK(h > 0 && w > 0, "RandomResizedCrop: size must be positive, got ", size_str(h, w));
  MEDTL_CHECK(0 < scale.first && scale.first <= scale.second, "RandomResizedCrop: scale must satisfy 0 < lo <= hi, got (",
              scale.first, ", ", scale.second, ")");
  MEDTL_CHECK(0 < ratio.first && ratio.first <= ratio.second, "RandomResizedCrop: ratio must satisfy 0 < lo <= hi, got (",
              ratio.first, ", ", ratio.second, ")");
  MEDTL_CHECK(mask_interp == Interp::Nearest || mask_interp == Interp::NearestCenter,
              "RandomResizedCrop: a mask must be resized with a nearest rule, got ", interp_name(mask_interp));
}

CropBox RandomResizedCrop::sample_box(int64_t height, int64_t width, SampleRng& rng) const {
  const double area = static_cast<double>(height) * width;
  const double log_lo = std::log(ratio_.first), log_hi = std::log(ratio_.second);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * rng.uniform(scale_.first, scale_.second);
    const double aspect = std::exp(rng.uniform(log_lo, log_hi));
    const int64_t w = round_half_even(std::sqrt(target_area * aspect));
    const int64_t h = round_half_even(std::sqrt(target_area / aspect));
    if (0 < w && w <= width && 0 < h && h <= height) {
      const int64_t top = rng.integer(0, height - h + 1);
      const int64_t left = rng.integer(0, width - w + 1);
      return {top, left, h, w};
    }
  }
  // Fallback: the whole image, trimmed to the nearest allowed aspect ratio, centred.
  const double in_ratio = static_cast<double>(width) / height;
  int64_t w = width, h = height;
  if (in_ratio < ratio_.first) {
    h = round_half_even(w / ratio_.first);
  } else if (in_ratio > ratio_.second) {
    w = round_half_even(h * ratio_.second);
  }
  return {(height - h) / 2, (width - w) / 2, h, w};
}

void RandomResizedCrop::apply(ImageMask& x, SampleRng& rng) const {
  check_mask_matches(x, "RandomResizedCrop");
  MEDTL_CHECK(x.image.dim() == 3, "RandomResizedCrop: expected (C, H, W), got ", shape_str(x.image.shape()));
  const CropBox box = sample_box(x.image.size(1), x.image.size(2), rng);
  x.image = resize(crop(x.image, box.top, box.left, box.h, box.w), h_, w_, image_interp_);
  if (x.mask.defined()) x.mask = resize(crop(x.mask, box.top, box.left, box.h, box.w), h_, w_, mask_interp_);
}

std::string RandomResizedCrop::describe() const {
  return str_cat("RandomResizedCrop(", size_str(h_, w_), ", scale (", scale_.first, ", ", scale_.second, "), ratio (",
                 ratio_.first, ", ", ratio_.second, "))");
}

void RandomHorizontalFlip::apply(ImageMask& x, SampleRng& rng) const {
  if (!(rng.uniform() < p_)) return;
  x.image = hflip(x.image);
  if (x.mask.defined()) x.mask = hflip(x.mask);
}

std::string RandomHorizontalFlip::describe() const { return str_cat("RandomHorizontalFlip(p ", p_, ")"); }

RandomRotation::RandomRotation(double degrees, Interp image_interp, float fill)
    : degrees_(degrees), image_interp_(image_interp), fill_(fill) {
  MEDTL_CHECK(degrees >= 0, "RandomRotation: degrees must be >= 0, got ", degrees);
  MEDTL_CHECK(image_interp == Interp::NearestCenter || image_interp == Interp::Linear,
              "RandomRotation: interpolation must be NearestCenter or Linear, got ", interp_name(image_interp));
}

void RandomRotation::apply(ImageMask& x, SampleRng& rng) const {
  check_mask_matches(x, "RandomRotation");
  const double angle = rng.uniform(-degrees_, degrees_);
  x.image = rotate(x.image, angle, image_interp_, fill_);
  if (x.mask.defined()) x.mask = rotate(x.mask, angle, Interp::NearestCenter, 0.0f);
}

std::string RandomRotation::describe() const {
  return str_cat("RandomRotation(+-", degrees_, ", ", interp_name(image_interp_), ", fill ", fill_, ")");
}

// ---- Values. ----

NormalizeSpec NormalizeSpec::imagenet() { return {{0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}, 1.0 / 255.0, false}; }
NormalizeSpec NormalizeSpec::chestxray() { return {{0.5056}, {0.252}, 1.0 / 255.0, false}; }
NormalizeSpec NormalizeSpec::caffe() { return {{103.939, 116.779, 123.68}, {1.0}, 1.0, true}; }

std::string NormalizeSpec::describe() const {
  std::string out = "mean (";
  for (size_t i = 0; i < mean.size(); ++i) out += str_cat(i ? ", " : "", mean[i]);
  out += "), std (";
  for (size_t i = 0; i < std.size(); ++i) out += str_cat(i ? ", " : "", std[i]);
  return out + str_cat("), scale ", scale, reverse_channels ? ", RGB->BGR" : "");
}

Normalize::Normalize(NormalizeSpec spec) : spec_(std::move(spec)) {
  MEDTL_CHECK(!spec_.mean.empty() && !spec_.std.empty(), "Normalize: mean and std must not be empty");
  for (double s : spec_.std) MEDTL_CHECK(s != 0.0, "Normalize: a std of 0 would divide by zero (", spec_.describe(), ")");
}

Tensor Normalize::normalize(const Tensor& image, const NormalizeSpec& spec) {
  MEDTL_CHECK(image.dim() >= 3, "Normalize: expected (..., C, H, W), got shape ", shape_str(image.shape()));
  const Tensor src = image.to(DType::Float32).contiguous();
  const int64_t c = src.size(-3), plane = src.size(-2) * src.size(-1), outer = src.numel() / (c * plane);
  auto pick = [&](const std::vector<double>& v, const char* what, int64_t ch) {
    MEDTL_CHECK(v.size() == 1 || static_cast<int64_t>(v.size()) == c, "Normalize: ", v.size(), " ", what,
                " values for an image with ", c, " channels (give 1 or ", c, ")");
    return v.size() == 1 ? v[0] : v[ch];
  };
  Tensor out = empty(src.shape());
  const float* s = src.data<float>();
  float* o = out.data<float>();
  for (int64_t n = 0; n < outer; ++n)
    for (int64_t ch = 0; ch < c; ++ch) {
      const int64_t from = spec.reverse_channels ? c - 1 - ch : ch;
      const double mean = pick(spec.mean, "mean", ch), inv_std = 1.0 / pick(spec.std, "std", ch);
      const float* in = s + (n * c + from) * plane;
      float* res = o + (n * c + ch) * plane;
      for (int64_t i = 0; i < plane; ++i) res[i] = static_cast<float>((in[i] * spec.scale - mean) * inv_std);
    }
  return out;
}

void Normalize::apply(ImageMask& x, SampleRng&) const { x.image = normalize(x.image, spec_); }

std::string Normalize::describe() const { return "Normalize(" + spec_.describe() + ")"; }

void ScaleValues::apply(ImageMask& x, SampleRng&) const {
  const Tensor src = x.image.to(DType::Float32).contiguous();
  Tensor out = empty(src.shape());
  const float* s = src.data<float>();
  float* o = out.data<float>();
  for (int64_t i = 0; i < src.numel(); ++i) o[i] = static_cast<float>(s[i] * factor_);
  x.image = out;
}

std::string ScaleValues::describe() const { return str_cat("ScaleValues(", factor_, ")"); }

void GrayToRgb::apply(ImageMask& x, SampleRng&) const {
  MEDTL_CHECK(x.image.dim() >= 3, "GrayToRgb: expected (..., C, H, W), got shape ", shape_str(x.image.shape()));
  const int64_t c = x.image.size(-3);
  if (c == 3) return;
  MEDTL_CHECK(c == 1, "GrayToRgb: the image has ", c, " channels; only 1 (replicated) or 3 (kept) are accepted");
  const Tensor src = x.image.to(DType::Float32).contiguous();
  Shape shape = src.shape();
  shape[shape.size() - 3] = 3;
  Tensor out = empty(shape);
  const int64_t plane = src.size(-2) * src.size(-1), outer = src.numel() / plane;
  for (int64_t n = 0; n < outer; ++n)
    for (int64_t c = 0; c < 3; ++c)
      std::memcpy(out.data<float>() + (n * 3 + c) * plane, src.data<float>() + n * plane, sizeof(float) * plane);
  x.image = out;
}

// ---- The paper's pipelines. ----

std::shared_ptr<Pipeline> paper_classification_train(NormalizeSpec spec, int64_t size) {
  auto p = std::make_shared<Pipeline>();
  p->emplace<RandomResizedCrop>(size, size);
  p->emplace<RandomHorizontalFlip>(0.5);
  p->emplace<RandomRotation>(7.0, Interp::NearestCenter, 0.0f);
  p->emplace<GrayToRgb>();
  p->emplace<Normalize>(std::move(spec));
  return p;
}

std::shared_ptr<Pipeline> paper_classification_val(NormalizeSpec spec, int64_t resize, int64_t size) {
  auto p = std::make_shared<Pipeline>();
  p->emplace<Resize>(resize, resize);
  p->emplace<CenterCrop>(size, size);
  p->emplace<GrayToRgb>();
  p->emplace<Normalize>(std::move(spec));
  return p;
}

std::shared_ptr<Pipeline> paper_classification_test(NormalizeSpec spec, int64_t resize, int64_t size) {
  auto p = std::make_shared<Pipeline>();
  p->emplace<Resize>(resize, resize);
  p->emplace<TenCrop>(size, size);
  p->emplace<GrayToRgb>();
  p->emplace<Normalize>(std::move(spec));
  return p;
}

}  // namespace medtl::data
