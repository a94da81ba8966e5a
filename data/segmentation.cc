// Image + mask datasets and the layout readers of the segmentation tasks.
#include "data/segmentation.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>

#include "data/decode.h"
#include "data/files.h"
#include "data/layout_util.h"

namespace medtl::data {

ImageMaskDataset::ImageMaskDataset(std::string name, std::vector<SegmentationItem> items, ImageOptions options,
                                   MaskRule rule, RleFormat rle_format, std::shared_ptr<BadSampleLog> skipped)
    : name_(std::move(name)), items_(std::move(items)), options_(options), rule_(std::move(rule)), rle_format_(rle_format) {
  if (skipped) skipped_ = std::move(skipped);
}

Sample ImageMaskDataset::get(int64_t i, const SampleKey&) const {
  check_index(i);
  const SegmentationItem& item = items_[i];
  Sample s;
  s.index = i;
  s.source = source(i);
  s.image = load_image(item.image, options_.channels).pixels;
  const int64_t h = s.image.size(1), w = s.image.size(2);
  Tensor mask = zeros({1, h, w});
  float* m = mask.data<float>();
  for (const auto& file : item.masks) {
    const Tensor values = load_image(file, ChannelPolicy::Gray).pixels;
    MEDTL_CHECK(values.size(1) == h && values.size(2) == w, "mask '", file, "' is ", values.size(2), "x",
                values.size(1), " (WxH) but its image '", item.image, "' is ", w, "x", h,
                "; masks must match their image's size");
    const float* v = values.data<float>();
    for (int64_t p = 0; p < h * w; ++p) {
      const bool on = rule_.invert ? v[p] <= rule_.threshold : v[p] > rule_.threshold;
      if (on) m[p] = 1.0f;
    }
  }
  for (size_t k = 0; k < item.rles.size(); ++k)
    rle_paint(item.rles[k], mask, rle_format_, "RLE " + std::to_string(k) + " of '" + item.id + "' (image '" + item.image + "')");
  s.mask = mask;
  return s;
}

std::string ImageMaskDataset::source(int64_t i) const {
  check_index(i);
  const SegmentationItem& item = items_[i];
  std::string out = item.image;
  if (item.masks.size() == 1) out += ";" + item.masks[0];
  else if (!item.masks.empty()) out += ";" + std::to_string(item.masks.size()) + " masks in " +
                                       std::filesystem::path(item.masks[0]).parent_path().string();
  return out;
}

// ---- Generic folder pair. ----

std::shared_ptr<ImageMaskDataset> paired_folders(const std::string& image_dir, const std::string& mask_dir,
                                                 MaskRule rule, ImageOptions options, const std::string& mask_suffix,
                                                 std::string name) {
  if (name.empty()) name = file_name(image_dir);
  MEDTL_CHECK(is_directory(mask_dir), "mask folder '", mask_dir, "' does not exist");
  auto skipped = std::make_shared<BadSampleLog>();
  BadEntry bad{options.on_bad, skipped.get()};
  std::vector<SegmentationItem> items;
  for (const auto& image : list_files(image_dir, image_extensions())) {
    const std::string mask = path_join(mask_dir, mask_suffix.empty() ? file_name(image) : file_stem(image) + mask_suffix);
    if (!path_exists(mask)) { bad(image, "no mask '" + mask + "'"); continue; }
    items.push_back({image, {mask}, {}, file_stem(image)});
  }
  MEDTL_CHECK(!items.empty(), "image/mask folders '", image_dir, "' + '", mask_dir, "': no image with a mask; empty split");
  return std::make_shared<ImageMaskDataset>(name, std::move(items), options, rule, RleFormat::siim(), skipped);
}

// ---- ISBI 2012. ----

namespace {
// Numeric order for names like "0.png", "10.png", "2.png": by number, then by name.
bool numeric_less(const std::string& a, const std::string& b) {
  const std::string sa = file_stem(a), sb = file_stem(b);
  const bool na = !sa.empty() && std::all_of(sa.begin(), sa.end(), ::isdigit);
  const bool nb = !sb.empty() && std::all_of(sb.begin(), sb.end(), ::isdigit);
  if (na && nb && sa.size() != sb.size()) return sa.size() < sb.size();
  return sa < sb;
}
}  // namespace

std::shared_ptr<ImageMaskDataset> isbi2012(const std::string& root, ImageOptions options, bool membrane_foreground) {
  const std::string image_dir = path_join(root, "train/image"), label_dir = path_join(root, "train/label");
  MaskRule rule;
  rule.threshold = 127;  // labels are 0 / 255
  rule.invert = membrane_foreground;
  rule.foreground = membrane_foreground ? "membrane" : "cell interior";
  auto dataset = paired_folders(image_dir, label_dir, rule, options, "", "isbi2012/train");
  std::vector<SegmentationItem> items = dataset->items();
  std::stable_sort(items.begin(), items.end(),
                   [](const SegmentationItem& a, const SegmentationItem& b) { return numeric_less(a.image, b.image); });
  auto skipped = std::make_shared<BadSampleLog>();
  for (const auto& e : dataset->skipped().entries()) skipped->add(e.source, e.problem);
  return std::make_shared<ImageMaskDataset>("isbi2012/train", std::move(items), options, rule, RleFormat::siim(), skipped);
}

// ---- Montgomery. ----

std::shared_ptr<ImageMaskDataset> montgomery(const std::string& root, ImageOptions options) {
  const std::string image_dir = path_join(root, "CXR_png");
  const std::string left = path_join(root, "ManualMask/leftMask"), right = path_join(root, "ManualMask/rightMask");
  MEDTL_CHECK(is_directory(left) && is_directory(right), "Montgomery '", root,
              "': expected ManualMask/leftMask and ManualMask/rightMask folders");
  auto skipped = std::make_shared<BadSampleLog>();
  BadEntry bad{options.on_bad, skipped.get()};
  std::vector<SegmentationItem> items;
  for (const auto& image : list_files(image_dir, {".png"})) {
    const std::string l = path_join(left, file_name(image)), r = path_join(right, file_name(image));
    if (!path_exists(l)) { bad(image, "no left-lung mask '" + l + "'"); continue; }
    if (!path_exists(r)) { bad(image, "no right-lung mask '" + r + "'"); continue; }
    items.push_back({image, {l, r}, {}, file_stem(image)});
  }
  MEDTL_CHECK(!items.empty(), "Montgomery '", root, "': no image with both lung masks; empty split");
  MaskRule rule;  // the paper: mask > 0 -> 1
  rule.foreground = "lung";
  return std::make_shared<ImageMaskDataset>("montgomery", std::move(items), options, rule, RleFormat::siim(), skipped);
}

// ---- DRIVE. ----

std::shared_ptr<ImageMaskDataset> drive(const std::string& split_dir, ImageOptions options) {
  const std::string image_dir = path_join(split_dir, "images");
  std::string label_dir = path_join(split_dir, "1st_manual");
  if (!is_directory(label_dir)) label_dir = path_join(split_dir, "labels");
  MEDTL_CHECK(is_directory(label_dir), "DRIVE '", split_dir, "': no 1st_manual/ or labels/ folder with the vessel "
              "annotations (the official test set of some downloads lacks them)");
  auto skipped = std::make_shared<BadSampleLog>();
  BadEntry bad{options.on_bad, skipped.get()};
  std::vector<SegmentationItem> items;
  for (const auto& image : list_files(image_dir, image_extensions())) {
    const std::string stem = file_stem(image);
    size_t digits = 0;
    while (digits < stem.size() && std::isdigit(static_cast<unsigned char>(stem[digits]))) ++digits;
    if (digits == 0) { bad(image, "file name does not start with the image id (e.g. 21_training.tif)"); continue; }
    const std::string id = stem.substr(0, digits);
    std::string mask;
    for (const char* ext : {".gif", ".png", ".tif", ".jpg"}) {
      const std::string candidate = path_join(label_dir, id + "_manual1" + ext);
      if (path_exists(candidate)) { mask = candidate; break; }
    }
    if (mask.empty()) { bad(image, "no annotation " + label_dir + "/" + id + "_manual1.gif"); continue; }
    items.push_back({image, {mask}, {}, id});
  }
  MEDTL_CHECK(!items.empty(), "DRIVE '", split_dir, "': no image with an annotation; empty split");
  MaskRule rule;
  rule.threshold = 127;  // the paper's code thresholds the resized mask at 127
  rule.foreground = "vessel";
  return std::make_shared<ImageMaskDataset>("drive/" + file_name(split_dir), std::move(items), options, rule,
                                            RleFormat::siim(), skipped);
}

// ---- DSB 2018. ----

std::shared_ptr<ImageMaskDataset> dsb2018(const std::string& stage_dir, ImageOptions options) {
  auto skipped = std::make_shared<BadSampleLog>();
  BadEntry bad{options.on_bad, skipped.get()};
  std::vector<SegmentationItem> items;
  for (const auto& dir : list_dirs(stage_dir)) {
    const std::string id = file_name(dir);
    const std::string image = path_join(dir, "images/" + id + ".png");
    if (!path_exists(image)) { bad(dir, "no image images/" + id + ".png"); continue; }
    const std::string mask_dir = path_join(dir, "masks");
    if (!is_directory(mask_dir)) { bad(image, "no masks/ folder (a test-stage image without labels?)"); continue; }
    std::vector<std::string> masks = list_files(mask_dir, {".png"});
    if (masks.empty()) { bad(image, "masks/ folder is empty"); continue; }
    items.push_back({image, std::move(masks), {}, id});
  }
  MEDTL_CHECK(!items.empty(), "DSB 2018 '", stage_dir, "': no <id>/images/<id>.png with masks; empty split");
  MaskRule rule;  // masks are 0 / 255, one nucleus each
  rule.foreground = "nucleus";
  return std::make_shared<ImageMaskDataset>("dsb2018/" + file_name(stage_dir), std::move(items), options, rule,
                                            RleFormat::siim(), skipped);
}

// ---- SIIM-ACR. ----

std::shared_ptr<ImageMaskDataset> siim_acr(const std::string& dicom_dir, const std::string& rle_csv,
                                           ImageOptions options, RleFormat format) {
  std::map<std::string, std::string> dicoms;
  for (const auto& f : list_files_recursive(dicom_dir, {".dcm"})) dicoms.emplace(file_stem(f), f);
  const CsvTable csv = read_csv(rle_csv);
  const int id_col = csv.column("ImageId"), rle_col = csv.column("EncodedPixels");
  std::vector<std::string> order;
  std::map<std::string, std::vector<std::string>> runs;
  for (const auto& row : csv.rows) {
    const std::string id = trim(row[id_col]);
    if (id.empty()) continue;
    if (!runs.count(id)) order.push_back(id);
    std::vector<std::string>& list = runs[id];
    const std::string rle = trim(row[rle_col]);
    if (!rle.empty() && rle != "-1") list.push_back(rle);
  }
  auto skipped = std::make_shared<BadSampleLog>();
  BadEntry bad{options.on_bad, skipped.get()};
  std::vector<SegmentationItem> items;
  for (const auto& id : order) {
    const auto it = dicoms.find(id);
    if (it == dicoms.end()) { bad(id + " (" + rle_csv + ")", "no DICOM file " + id + ".dcm below " + dicom_dir); continue; }
    items.push_back({it->second, {}, runs[id], id});
  }
  MEDTL_CHECK(!items.empty(), "SIIM-ACR '", rle_csv, "': no listed image has a DICOM file below '", dicom_dir,
              "'; empty split");
  MaskRule rule;
  rule.foreground = "pneumothorax";
  return std::make_shared<ImageMaskDataset>("siim_acr", std::move(items), options, rule, format, skipped);
}

}  // namespace medtl::data
