// Image + label-vector datasets and the layout readers of the classification tasks.
#include "data/classification.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <regex>
#include <set>

#include "data/decode.h"
#include "data/files.h"
#include "data/layout_util.h"

namespace medtl::data {

const char* uncertain_policy_name(UncertainPolicy policy) {
  switch (policy) {
    case UncertainPolicy::Ones: return "U-Ones";
    case UncertainPolicy::Zeros: return "U-Zeros";
    case UncertainPolicy::LsrOnes: return "LSR-Ones U(0.55, 0.85)";
    case UncertainPolicy::LsrZeros: return "LSR-Zeros U(0, 0.3)";
  }
  return "?";
}

ImageLabelDataset::ImageLabelDataset(std::string name, TargetKind kind, std::vector<std::string> class_names,
                                     std::vector<LabelledImage> items, ImageOptions options,
                                     UncertainPolicy uncertain, std::shared_ptr<BadSampleLog> skipped)
    : name_(std::move(name)),
      kind_(kind),
      class_names_(std::move(class_names)),
      items_(std::move(items)),
      options_(options),
      uncertain_(uncertain) {
  if (skipped) skipped_ = std::move(skipped);
  MEDTL_CHECK(kind_ != TargetKind::Mask, "ImageLabelDataset '", name_, "': a mask dataset needs ImageMaskDataset");
  const size_t k = kind_ == TargetKind::Binary ? 1 : class_names_.size();
  for (const auto& item : items_)
    MEDTL_CHECK(item.label.size() == k, "dataset '", name_, "': '", item.path, "' has ", item.label.size(),
                " label values, ", k, " expected");
}

std::vector<float> ImageLabelDataset::label(int64_t i, const SampleKey& key) const {
  check_index(i);
  std::vector<float> label = items_[i].label;
  bool any_uncertain = false;
  for (float v : label) any_uncertain |= v == kUncertain;
  if (!any_uncertain) return label;
  // One uniform per output, drawn for every output so the value of output c does not depend on
  // which other outputs are uncertain.
  const std::vector<double> u =
      (uncertain_ == UncertainPolicy::LsrOnes || uncertain_ == UncertainPolicy::LsrZeros)
          ? keyed_uniforms(key, /*purpose=*/0x4c5352 /* "LSR" */, static_cast<int>(label.size()))
          : std::vector<double>(label.size(), 0.0);
  for (size_t c = 0; c < label.size(); ++c) {
    if (label[c] != kUncertain) continue;
    switch (uncertain_) {
      case UncertainPolicy::Ones: label[c] = 1.0f; break;
      case UncertainPolicy::Zeros: label[c] = 0.0f; break;
      case UncertainPolicy::LsrOnes: label[c] = static_cast<float>(0.55 + 0.30 * u[c]); break;
      case UncertainPolicy::LsrZeros: label[c] = static_cast<float>(0.30 * u[c]); break;
    }
  }
  return label;
}

Sample ImageLabelDataset::get(int64_t i, const SampleKey& key) const {
  check_index(i);
  const LabelledImage& item = items_[i];
  Sample s;
  s.index = i;
  s.source = item.path;
  s.image = load_image(item.path, options_.channels).pixels;
  const std::vector<float> values = label(i, key);
  s.label = from_vector<float>(values, {static_cast<int64_t>(values.size())});
  s.class_index = item.class_index;
  return s;
}

std::string ImageLabelDataset::source(int64_t i) const {
  check_index(i);
  return items_[i].path;
}

// ---- Folder per class. ----

std::shared_ptr<ImageLabelDataset> folder_per_class(const std::string& split_dir, ImageOptions options,
                                                    bool force_multiclass, std::string name) {
  if (name.empty()) name = file_name(split_dir);
  const std::vector<std::string> class_dirs = list_dirs(split_dir);
  MEDTL_CHECK(class_dirs.size() >= 2, "folder-per-class dataset '", split_dir, "': found ", class_dirs.size(),
              " class folder(s); expected one sub-folder per class (at least 2)");
  std::vector<std::string> classes;
  for (const auto& d : class_dirs) classes.push_back(file_name(d));
  const bool binary = classes.size() == 2 && !force_multiclass;
  auto skipped = std::make_shared<BadSampleLog>();
  std::vector<LabelledImage> items;
  for (size_t c = 0; c < class_dirs.size(); ++c) {
    const std::vector<std::string> files = list_files(class_dirs[c], image_extensions());
    MEDTL_CHECK(!files.empty(), "folder-per-class dataset '", split_dir, "': class folder '", class_dirs[c],
                "' has no image files (", join_strings(image_extensions(), " "), ")");
    for (const auto& f : files) {
      LabelledImage item;
      item.path = f;
      item.class_index = static_cast<int64_t>(c);
      if (binary) item.label = {static_cast<float>(c)};
      else { item.label.assign(classes.size(), 0.0f); item.label[c] = 1.0f; }
      items.push_back(std::move(item));
    }
  }
  return std::make_shared<ImageLabelDataset>(name, binary ? TargetKind::Binary : TargetKind::MultiClass, classes,
                                             std::move(items), options, UncertainPolicy::Ones, skipped);
}

// ---- ChestX-ray14. ----

const std::vector<std::string>& chestxray14_labels() {
  static const std::vector<std::string> labels = {
      "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration",       "Mass",     "Nodule",    "Pneumonia",
      "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia"};
  return labels;
}

namespace {

// Image name -> path for the NIH layouts: root/images/*.png and root/images_NNN/images/*.png.
std::map<std::string, std::string> index_chestxray14_images(const std::string& root) {
  std::map<std::string, std::string> index;
  std::vector<std::string> dirs;
  if (is_directory(path_join(root, "images"))) dirs.push_back(path_join(root, "images"));
  for (const auto& d : list_dirs(root))
    if (file_name(d).rfind("images_", 0) == 0) {
      const std::string inner = path_join(d, "images");
      dirs.push_back(is_directory(inner) ? inner : d);
    }
  for (const auto& d : dirs)
    for (const auto& f : list_files(d, {".png"})) index.emplace(file_name(f), f);
  return index;
}

// Data_Entry_2017.csv: image name -> 14 labels. Unknown finding names throw.
std::map<std::string, std::vector<float>> read_data_entry(const std::string& csv_path) {
  const CsvTable csv = read_csv(csv_path);
  const int image_col = csv.column("Image Index"), finding_col = csv.column("Finding Labels");
  const auto& names = chestxray14_labels();
  std::map<std::string, std::vector<float>> labels;
  for (size_t r = 0; r < csv.rows.size(); ++r) {
    std::vector<float> v(names.size(), 0.0f);
    const std::string findings = trim(csv.rows[r][finding_col]);
    size_t start = 0;
    while (start <= findings.size()) {
      const size_t bar = std::min(findings.find('|', start), findings.size());
      const std::string f = trim(findings.substr(start, bar - start));
      start = bar + 1;
      if (f.empty() || f == "No Finding") continue;
      const auto it = std::find(names.begin(), names.end(), f);
      MEDTL_CHECK(it != names.end(), "ChestX-ray14 '", csv_path, "' row ", r + 2, " (", csv.rows[r][image_col],
                  "): unknown finding '", f, "'; known: No Finding, ", join_strings(names, ", "));
      v[it - names.begin()] = 1.0f;
    }
    labels[trim(csv.rows[r][image_col])] = v;
  }
  return labels;
}

}  // namespace

std::shared_ptr<ImageLabelDataset> chestxray14(const std::string& root, const std::string& split_list,
                                               ImageOptions options, std::string name) {
  if (name.empty()) name = "chestxray14/" + file_stem(split_list);
  std::string csv_path = path_join(root, "Data_Entry_2017.csv");
  if (!path_exists(csv_path) && path_exists(path_join(root, "Data_Entry_2017_v2020.csv")))
    csv_path = path_join(root, "Data_Entry_2017_v2020.csv");
  const bool have_csv = path_exists(csv_path);
  const std::map<std::string, std::vector<float>> csv_labels =
      have_csv ? read_data_entry(csv_path) : std::map<std::string, std::vector<float>>{};
  const std::map<std::string, std::string> images = index_chestxray14_images(root);
  const std::vector<std::string> lines = read_lines(split_list);
  MEDTL_CHECK(!lines.empty(), "ChestX-ray14 split list '", split_list, "' is empty");
  auto skipped = std::make_shared<BadSampleLog>();
  BadEntry bad{options.on_bad, skipped.get()};
  std::vector<LabelledImage> items;
  const size_t k = chestxray14_labels().size();
  for (size_t n = 0; n < lines.size(); ++n) {
    const std::vector<std::string> tokens = split_whitespace(lines[n]);
    const std::string image = file_name(tokens[0]);
    const std::string where = split_list + " line " + std::to_string(n + 1) + " (" + image + ")";
    LabelledImage item;
    if (tokens.size() == 1) {
      const auto it = csv_labels.find(image);
      if (!have_csv) MEDTL_CHECK(false, "ChestX-ray14: '", split_list, "' lists names only, and ", csv_path,
                                 " (the labels) is missing");
      if (it == csv_labels.end()) { bad(where, "not in " + csv_path + ": unknown label"); continue; }
      item.label = it->second;
    } else if (tokens.size() == k + 1) {
      bool ok = true;
      for (size_t c = 0; c < k; ++c) {
        if (tokens[c + 1] != "0" && tokens[c + 1] != "1") { ok = false; break; }
        item.label.push_back(tokens[c + 1] == "1" ? 1.0f : 0.0f);
      }
      if (!ok) { bad(where, "labels must be 0 or 1"); continue; }
      if (have_csv) {
        const auto it = csv_labels.find(image);
        if (it == csv_labels.end()) { bad(where, "not in " + csv_path); continue; }
        if (it->second != item.label) { bad(where, "labels differ from " + csv_path); continue; }
      }
    } else {
      bad(where, "expected '<image>' or '<image> <14 labels>', got " + std::to_string(tokens.size()) + " fields");
      continue;
    }
    const auto found = images.find(image);
    if (found == images.end()) {
      bad(where, "image file not found under " + root + "/images*/");
      continue;
    }
    item.path = found->second;
    items.push_back(std::move(item));
  }
  MEDTL_CHECK(!items.empty(), "ChestX-ray14 split '", split_list, "': no usable entries (", skipped->count(),
              " bad); empty split");
  return std::make_shared<ImageLabelDataset>(name, TargetKind::MultiLabel, chestxray14_labels(), std::move(items),
                                             options, UncertainPolicy::Ones, skipped);
}

// ---- CheXpert. ----

const std::vector<std::string>& chexpert_labels() {
  static const std::vector<std::string> labels = {
      "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion",
      "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
      "Pleural Other", "Fracture", "Support Devices"};
  return labels;
}

const std::vector<int>& chexpert_eval_indices() {
  static const std::vector<int> indices = {8, 2, 6, 5, 10};  // Atelectasis, Cardiomegaly, Consolidation, Edema, Pleural Effusion
  return indices;
}

std::shared_ptr<ImageLabelDataset> chexpert(const std::string& csv_path, UncertainPolicy uncertain,
                                            ImageOptions options, const std::string& image_root,
                                            bool frontal_only, std::string name) {
  if (name.empty()) name = "chexpert/" + file_stem(csv_path);
  const CsvTable csv = read_csv(csv_path);
  const auto& labels = chexpert_labels();
  MEDTL_CHECK(csv.header.size() >= 5 + labels.size(), "CheXpert '", csv_path, "': ", csv.header.size(),
              " columns; expected Path, Sex, Age, Frontal/Lateral, AP/PA and the 14 observations");
  for (size_t c = 0; c < labels.size(); ++c)
    MEDTL_CHECK(csv.header[5 + c] == labels[c], "CheXpert '", csv_path, "': column ", 5 + c, " is '", csv.header[5 + c],
                "', expected '", labels[c], "' (the official column order)");
  const std::string root = image_root.empty()
                               ? std::filesystem::path(csv_path).parent_path().parent_path().string()
                               : image_root;
  const int frontal_col = csv.column("Frontal/Lateral");
  auto skipped = std::make_shared<BadSampleLog>();
  BadEntry bad{options.on_bad, skipped.get()};
  std::vector<LabelledImage> items;
  for (size_t r = 0; r < csv.rows.size(); ++r) {
    const auto& row = csv.rows[r];
    if (frontal_only && trim(row[frontal_col]) != "Frontal") continue;
    const std::string where = csv_path + " row " + std::to_string(r + 2) + " (" + row[0] + ")";
    LabelledImage item;
    item.path = path_join(root, trim(row[0]));
    bool ok = true;
    for (size_t c = 0; c < labels.size() && ok; ++c) {
      const std::string v = trim(row[5 + c]);
      if (v.empty() || v == "0" || v == "0.0") item.label.push_back(0.0f);
      else if (v == "1" || v == "1.0") item.label.push_back(1.0f);
      else if (v == "-1" || v == "-1.0") item.label.push_back(kUncertain);
      else { bad(where, "unknown label '" + v + "' for '" + labels[c] + "' (expected 1.0, 0.0, -1.0 or blank)"); ok = false; }
    }
    if (!ok) continue;
    if (options.check_files && !path_exists(item.path)) { bad(item.path, "image file not found (" + where + ")"); continue; }
    items.push_back(std::move(item));
  }
  MEDTL_CHECK(!items.empty(), "CheXpert '", csv_path, "': no usable rows (", skipped->count(), " bad); empty split");
  return std::make_shared<ImageLabelDataset>(name, TargetKind::MultiLabel, labels, std::move(items), options,
                                             uncertain, skipped);
}

// ---- Shenzhen. ----

std::shared_ptr<ImageLabelDataset> shenzhen(const std::string& image_dir, const std::string& split_list,
                                            ImageOptions options, std::string name) {
  if (name.empty()) name = split_list.empty() ? "shenzhen" : "shenzhen/" + file_stem(split_list);
  static const std::regex pattern(R"(^CHNCXR_\d+_(\d+)\.(png|jpg|jpeg)$)", std::regex::icase);
  auto skipped = std::make_shared<BadSampleLog>();
  BadEntry bad{options.on_bad, skipped.get()};
  std::vector<std::pair<std::string, std::string>> wanted;  // (path, label on the list line or "")
  if (split_list.empty()) {
    for (const auto& f : list_files(image_dir, {".png", ".jpg", ".jpeg"})) wanted.emplace_back(f, "");
  } else {
    for (const auto& line : read_lines(split_list)) {
      const auto tokens = split_whitespace(line);
      wanted.emplace_back(path_join(image_dir, file_name(tokens[0])), tokens.size() > 1 ? tokens[1] : "");
    }
  }
  std::vector<LabelledImage> items;
  for (const auto& [path, listed] : wanted) {
    std::smatch m;
    const std::string base = file_name(path);
    if (!std::regex_match(base, m, pattern)) { bad(path, "file name is not CHNCXR_<n>_<label>.png"); continue; }
    const std::string digit = m[1].str();
    if (digit != "0" && digit != "1") { bad(path, "unknown label '" + digit + "' in the file name (0 or 1)"); continue; }
    if (!listed.empty() && listed != digit) {
      bad(path, "label " + listed + " in " + split_list + " disagrees with the file name's " + digit);
      continue;
    }
    if (options.check_files && !path_exists(path)) { bad(path, "image file not found"); continue; }
    LabelledImage item;
    item.path = path;
    item.class_index = digit == "1" ? 1 : 0;
    item.label = {static_cast<float>(item.class_index)};
    items.push_back(std::move(item));
  }
  MEDTL_CHECK(!items.empty(), "Shenzhen '", split_list.empty() ? image_dir : split_list, "': no usable images (",
              skipped->count(), " bad); empty split");
  return std::make_shared<ImageLabelDataset>(name, TargetKind::Binary, std::vector<std::string>{"normal", "tuberculosis"},
                                             std::move(items), options, UncertainPolicy::Ones, skipped);
}

}  // namespace medtl::data
