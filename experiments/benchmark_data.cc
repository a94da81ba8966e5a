// Benchmark datasets: config data specs -> train/val/test splits, subsets, memory cache, hints.
#include "experiments/benchmark_data.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <mutex>
#include <sstream>

#include "data/classification.h"
#include "data/medmnist.h"
#include "data/segmentation.h"
#include "data/splits.h"
#include "tensor/error.h"

namespace medtl::experiments::bench {
namespace {

namespace fs = std::filesystem;

// Decodes every sample once and serves copies of the decoded tensors (transforms replace, never
// modify, a sample's tensors, so sharing them is safe). Only for datasets without per-sample
// randomness (not CheXpert's LSR labels) and small enough to hold in memory.
class CachedDataset : public data::Dataset {
 public:
  using Dataset::get;
  explicit CachedDataset(std::shared_ptr<const data::Dataset> base) : base_(std::move(base)) {
    samples_.reserve(static_cast<size_t>(base_->size()));
    for (int64_t i = 0; i < base_->size(); ++i) samples_.push_back(base_->get(i));
  }
  int64_t size() const override { return base_->size(); }
  data::Sample get(int64_t i, const data::SampleKey&) const override {
    check_index(i);
    data::Sample s = samples_[static_cast<size_t>(i)];  // clones: a transform can never alter the cache
    s.image = s.image.clone();
    if (s.mask.defined()) s.mask = s.mask.clone();
    if (s.label.defined()) s.label = s.label.clone();
    return s;
  }
  data::TargetKind target_kind() const override { return base_->target_kind(); }
  std::vector<std::string> class_names() const override { return base_->class_names(); }
  std::string source(int64_t i) const override { return base_->source(i); }
  std::string name() const override { return base_->name(); }

 private:
  std::shared_ptr<const data::Dataset> base_;
  std::vector<data::Sample> samples_;
};

std::string join_path(const std::string& root, const std::string& rel) {
  if (rel.empty() || rel[0] == '/') return rel;
  return root + "/" + rel;
}

// The download page of each kind (shown when data is missing).
std::string default_hint(const std::string& kind) {
  static const std::map<std::string, std::string> hints = {
      {"folder", "a folder per split holding one sub-folder per class; the NIH ChestX-ray14 subset ships in "
                 "../shared/data/nih-chestxray14-1000-64px (see ../shared/README.md)"},
      {"medmnist", "MedMNIST v2 .npz files: https://medmnist.com (zenodo.org/records/10519652); PneumoniaMNIST and "
                   "RetinaMNIST ship in ../shared/data (see ../shared/README.md)"},
      {"isbi2012", "ISBI 2012 EM segmentation, as in github.com/zhixuhao/unet data/membrane; ships in "
                   "../shared/data/isbi2012-em-membrane"},
      {"isbi2012-membrane", "ISBI 2012 EM segmentation, as in github.com/zhixuhao/unet data/membrane; ships in "
                            "../shared/data/isbi2012-em-membrane"},
      {"dsb2018", "Data Science Bowl 2018 stage1_train (BBBC038, https://bbbc.broadinstitute.org/BBBC038); a "
                  "200-image subset ships in ../shared/data/dsb2018-nuclei-stage1-train-subset"},
      {"paired", "your own <split>/images and <split>/masks folders (the paper's LXS/PXS layout: a mask has its "
                 "image's file name)"},
      {"drive", "DRIVE retinal vessels: https://drive.grand-challenge.org (the paper used the SA-UNet copy, "
                "github.com/clguo/SA-UNet)"},
      {"montgomery", "Montgomery County CXR set: https://openi.nlm.nih.gov/faq (NLM Tuberculosis Chest X-ray sets)"},
      {"chestxray14", "NIH ChestX-ray14: https://nihcc.app.box.com/v/ChestXray-NIHCC; the paper's split lists "
                      "Xray14_{train,val,test}_official.txt: github.com/MR-HosseinzadehTaher/BenchmarkTransferLearning "
                      "(Version1/dataset)"},
      {"chexpert", "Stanford CheXpert(-small): https://stanfordmlgroup.github.io/competitions/chexpert/"},
      {"shenzhen", "NIH Shenzhen TB CXR set: https://openi.nlm.nih.gov/faq; split lists ShenzenCXR_*_data.txt from "
                   "github.com/MR-HosseinzadehTaher/BenchmarkTransferLearning (Version1/dataset)"}};
  const auto it = hints.find(kind);
  return it == hints.end() ? "" : it->second;
}

// The files a spec needs (expanded): its paths, plus split folders / lists where they are files.
std::vector<std::string> required_paths(const DataSpec& spec, const Paths& paths) {
  std::vector<std::string> out;
  for (const auto& p : spec.paths) out.push_back(paths.expand(p));
  const std::string root = out.empty() ? "" : out[0];
  if (spec.kind == "folder" || spec.kind == "paired" || spec.kind == "drive")
    for (const auto& s : spec.splits) out.push_back(join_path(root, paths.expand(s)));
  if (spec.kind == "chestxray14" || spec.kind == "chexpert" || spec.kind == "shenzhen")
    for (const auto& s : spec.splits) out.push_back(join_path(root, paths.expand(s)));
  return out;
}

// "a-b" -> indices a..b (inclusive).
std::vector<int64_t> parse_range(const std::string& text, int64_t n, const std::string& what) {
  const size_t dash = text.find('-');
  MEDTL_CHECK(dash != std::string::npos, what, ": expected a slice range 'first-last', got '", text, "'");
  const int64_t a = parse_int(text.substr(0, dash), what, 0), b = parse_int(text.substr(dash + 1), what, 0);
  MEDTL_CHECK(a <= b && b < n, what, ": range ", text, " is outside 0-", n - 1);
  std::vector<int64_t> out;
  for (int64_t i = a; i <= b; ++i) out.push_back(i);
  return out;
}

using DatasetPtr = std::shared_ptr<const data::Dataset>;

// The three raw splits of a spec.
std::vector<DatasetPtr> build_splits(const DataSpec& spec, const Paths& paths) {
  const std::string root = paths.expand(spec.paths.at(0));
  std::vector<std::string> s;
  for (const auto& x : spec.splits) s.push_back(paths.expand(x));
  const std::string what = "data '" + spec.canonical() + "'";
  data::ImageOptions options;  // RGB, like PIL convert('RGB'); errors name the file
  std::vector<DatasetPtr> out;
  auto ratios = [&]() {
    std::vector<double> r;
    for (const auto& x : s) r.push_back(parse_double(x, what + " split ratio"));
    return r;
  };
  const uint64_t split_seed = derive_seed(0, "split " + spec.canonical());
  if (spec.kind == "folder") {
    for (const auto& x : s) out.push_back(data::folder_per_class(join_path(root, x), options));
  } else if (spec.kind == "medmnist") {
    for (const auto& x : s) out.push_back(std::make_shared<data::MedMnistDataset>(root, x, data::MedMnistOptions{options}));
  } else if (spec.kind == "isbi2012" || spec.kind == "isbi2012-membrane") {
    // isbi2012: foreground = cell interior (the U-Net repo's label / 255); -membrane: the thin
    // membranes, the harder class (about a fifth of the pixels), on which initialisations differ more.
    DatasetPtr all = data::isbi2012(root, options, /*membrane_foreground=*/spec.kind == "isbi2012-membrane");
    for (size_t i = 0; i < 3; ++i)
      out.push_back(std::make_shared<data::Subset>(all, parse_range(s[i], all->size(), what),
                                                   "isbi2012/" + std::string(i == 0 ? "train" : i == 1 ? "val" : "test")));
  } else if (spec.kind == "dsb2018" || spec.kind == "montgomery") {
    DatasetPtr all = spec.kind == "dsb2018" ? DatasetPtr(data::dsb2018(root, options)) : data::montgomery(root, options);
    for (auto& part : data::split_by_ratio(all, ratios(), split_seed, {"train", "val", "test"})) out.push_back(part);
  } else if (spec.kind == "paired") {
    for (const auto& x : s)
      out.push_back(data::paired_folders(join_path(root, x) + "/images", join_path(root, x) + "/masks",
                                         data::MaskRule{}, options));
  } else if (spec.kind == "drive") {
    for (const auto& x : s) out.push_back(data::drive(join_path(root, x), options));
  } else if (spec.kind == "chestxray14") {
    for (const auto& x : s) out.push_back(data::chestxray14(root, join_path(root, x), options));
  } else if (spec.kind == "chexpert") {
    for (const auto& x : s)
      out.push_back(data::chexpert(join_path(root, x), data::UncertainPolicy::LsrOnes, options, root));
  } else if (spec.kind == "shenzhen") {
    for (const auto& x : s) out.push_back(data::shenzhen(root, join_path(root, x), options));
  } else {
    throw Error(str_cat(what, ": unknown kind '", spec.kind, "'"));
  }
  return out;
}

// Holds decoded samples in memory when the split is small (< 1.5 GB as float32) and deterministic.
DatasetPtr maybe_cache(DatasetPtr dataset, const std::string& kind) {
  if (kind == "chexpert" || dataset->size() == 0) return dataset;
  const data::Sample first = dataset->get(0);
  int64_t bytes = first.image.numel() * 4 + (first.mask.defined() ? first.mask.numel() * 4 : 0);
  if (bytes * dataset->size() > (int64_t{3} << 29)) return dataset;
  return std::make_shared<CachedDataset>(dataset);
}

}  // namespace

std::string SplitData::describe() const {
  return str_cat(train->name(), ": train ", train->size(), ", val ", val->size(), ", test ", test->size(), " (",
                 data::target_kind_name(kind), ", ", outputs, " output", outputs == 1 ? "" : "s", ")");
}

std::string missing_data_message(const DataSpec& spec, const Paths& paths) {
  std::vector<std::string> missing;
  for (const auto& p : required_paths(spec, paths)) {
    std::error_code ec;
    if (!fs::exists(p, ec)) missing.push_back(p);
  }
  if (missing.empty()) return "";
  std::ostringstream msg;
  msg << "dataset '" << spec.canonical() << "' is missing:";
  for (const auto& m : missing) msg << "\n  not found: " << m;
  const std::string hint = spec.where.empty() ? default_hint(spec.kind) : spec.where;
  msg << "\nGet it from: " << hint << "\nData root in use: " << paths.data
      << " (set it with --data-root=DIR or the MEDTL_DATA environment variable)";
  return msg.str();
}

DatasetPtr limit_dataset(DatasetPtr dataset, int64_t limit, const std::string& purpose) {
  if (limit <= 0 || limit >= dataset->size()) return dataset;
  std::vector<int64_t> order = data::seeded_permutation(dataset->size(), derive_seed(0, "limit " + purpose));
  order.resize(static_cast<size_t>(limit));
  std::sort(order.begin(), order.end());
  return std::make_shared<data::Subset>(dataset, order, str_cat(dataset->name(), "[", limit, "]"));
}

SplitData load_split_data(const DataSpec& spec, const Paths& paths, const Protocol& protocol) {
  const std::string missing = missing_data_message(spec, paths);
  MEDTL_CHECK(missing.empty(), missing);
  static std::mutex mutex;
  static std::map<std::string, std::vector<DatasetPtr>> memo;  // spec -> cached raw splits
  std::vector<DatasetPtr> raw;
  {
    std::lock_guard<std::mutex> lock(mutex);
    const std::string key = spec.canonical() + " @ " + paths.data;
    auto it = memo.find(key);
    if (it == memo.end()) {
      std::vector<DatasetPtr> built = build_splits(spec, paths);
      for (auto& d : built) d = maybe_cache(d, spec.kind);
      it = memo.emplace(key, built).first;
    }
    raw = it->second;
  }
  SplitData out;
  const int64_t limits[3] = {protocol.train_limit, protocol.val_limit, protocol.test_limit};
  const char* names[3] = {"train", "val", "test"};
  DatasetPtr parts[3];
  for (int i = 0; i < 3; ++i) parts[i] = limit_dataset(raw[i], limits[i], spec.canonical() + " " + names[i]);
  out.train = parts[0], out.val = parts[1], out.test = parts[2];
  out.kind = out.train->target_kind();
  out.class_names = out.train->class_names();
  if (out.kind == data::TargetKind::Binary && out.class_names.size() == 2)  // one output: the positive class
    out.class_names = {out.class_names[1]};
  out.outputs = out.kind == data::TargetKind::Mask ? 1
                : out.kind == data::TargetKind::Binary ? 1
                                                       : static_cast<int64_t>(out.class_names.size());
  out.identity = str_cat(spec.canonical(), " | limits ", limits[0], "/", limits[1], "/", limits[2]);
  return out;
}

bool same_dataset(const DataSpec& a, const DataSpec& b) { return a.kind == b.kind && a.paths == b.paths; }

}  // namespace medtl::experiments::bench
