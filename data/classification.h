// Classification datasets that read one image file per sample: a list of (file, label vector)
// built by a layout reader, and the layout readers for the paper's classification tasks and the
// real sample data: folder per class (NIH1000), ChestX-ray14 (Data_Entry_2017.csv + split list,
// or the paper's label lists), CheXpert (train.csv / valid.csv with an uncertain-label policy)
// and Shenzhen (label in the file name). MedMNIST (.npz) is in data/medmnist.h.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/image.h"

namespace medtl::data {

// How a dataset reads its images and reacts to bad entries.
struct ImageOptions {
  // The paper reads every image with PIL convert('RGB'): gray replicated to 3 channels.
  ChannelPolicy channels = ChannelPolicy::RGB;
  // Throw: a missing file or unknown label stops construction with an error naming it.
  // Skip: the entry is left out and listed in dataset->skipped().
  OnBadSample on_bad = OnBadSample::Throw;
  // Check at construction that every listed file exists (one stat per file).
  bool check_files = true;
};

// CheXpert's uncertain label (-1) as a training target, per the CheXpert paper's policies.
enum class UncertainPolicy {
  Ones,      // U-Ones: 1
  Zeros,     // U-Zeros: 0
  LsrOnes,   // LSR-Ones (the benchmark paper): U(0.55, 0.85), redrawn per (seed, epoch, index)
  LsrZeros,  // LSR-Zeros: U(0, 0.3), redrawn per (seed, epoch, index)
};
const char* uncertain_policy_name(UncertainPolicy policy);
// Label values: 0, 1, or kUncertain (resolved by the policy in get()).
constexpr float kUncertain = -1.0f;

struct LabelledImage {
  std::string path;
  std::vector<float> label;  // K values in {0, 1, kUncertain}
  int64_t class_index = -1;  // Binary / MultiClass; -1 for MultiLabel
};

class ImageLabelDataset : public Dataset {
 public:
  using Dataset::get;  // get(i) as well as get(i, key)
  // Entries are taken as given (the layout readers check files and labels). For Binary, K = 1;
  // for MultiClass each label is one-hot.
  ImageLabelDataset(std::string name, TargetKind kind, std::vector<std::string> class_names,
                    std::vector<LabelledImage> items, ImageOptions options,
                    UncertainPolicy uncertain = UncertainPolicy::Ones,
                    std::shared_ptr<BadSampleLog> skipped = nullptr);

  int64_t size() const override { return static_cast<int64_t>(items_.size()); }
  Sample get(int64_t i, const SampleKey& key) const override;
  TargetKind target_kind() const override { return kind_; }
  std::vector<std::string> class_names() const override { return class_names_; }
  std::string source(int64_t i) const override;
  std::string name() const override { return name_; }

  const std::vector<LabelledImage>& items() const { return items_; }
  UncertainPolicy uncertain_policy() const { return uncertain_; }
  // The label vector get(i, key) returns, without decoding the image.
  std::vector<float> label(int64_t i, const SampleKey& key) const;

 private:
  std::string name_;
  TargetKind kind_;
  std::vector<std::string> class_names_;
  std::vector<LabelledImage> items_;
  ImageOptions options_;
  UncertainPolicy uncertain_;
};

// ---- Folder per class: <split_dir>/<class>/<image>. ----
// Classes are the sub-folders in name order ("0_normal", "1_abnormal"). Two classes give a Binary
// dataset (label 1 = the second folder) unless `force_multiclass`; more give MultiClass. Image
// files: .png .jpg .jpeg .bmp .gif .tif .tiff .dcm. An empty class folder or split throws.
std::shared_ptr<ImageLabelDataset> folder_per_class(const std::string& split_dir, ImageOptions options = {},
                                                    bool force_multiclass = false, std::string name = "");

// ---- NIH ChestX-ray14. ----
// The 14 findings in the benchmark paper's output order (Atelectasis ... Hernia).
const std::vector<std::string>& chestxray14_labels();
// root: the NIH download, with Data_Entry_2017.csv (or Data_Entry_2017_v2020.csv) and the images
// in root/images/ or root/images_001/images/ ... root/images_012/images/.
// split_list: a file of image names, one per line: NIH's train_val_list.txt / test_list.txt
// (labels then come from Data_Entry_2017.csv, "No Finding" = all zeros, a finding outside the 14
// is an error), or the paper's Xray14_{train,val,test}_official.txt, "<name> <14 labels 0/1>"
// (labels from the line; compared with the CSV when the CSV is there).
std::shared_ptr<ImageLabelDataset> chestxray14(const std::string& root, const std::string& split_list,
                                               ImageOptions options = {}, std::string name = "");

// ---- Stanford CheXpert. ----
// The 14 observations in the CSV's (and the paper's training) order; the paper evaluates 5 of
// them: chexpert_eval_indices() = Atelectasis, Cardiomegaly, Consolidation, Edema, Pleural Effusion.
const std::vector<std::string>& chexpert_labels();
const std::vector<int>& chexpert_eval_indices();
// csv: train.csv or valid.csv ("Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,...": labels from
// column 5 on; 1.0 positive, 0.0 negative, -1.0 uncertain, blank = 0 as in the paper's loader).
// image_root: the folder the Path column is relative to: the parent of "CheXpert-v1.0-small/"
// (defaults to the CSV's folder's parent). frontal_only keeps "Frontal" rows.
std::shared_ptr<ImageLabelDataset> chexpert(const std::string& csv, UncertainPolicy uncertain,
                                            ImageOptions options = {}, const std::string& image_root = "",
                                            bool frontal_only = false, std::string name = "");

// ---- NIH Shenzhen TB chest X-rays. ----
// image_dir: ChinaSet_AllFiles/CXR_png with CHNCXR_<nnnn>_<label>.png (label 0 normal, 1 TB).
// split_list (optional, else every image): lines "<file name> [label]" (the paper's
// ShenzenCXR_{train,valid,test}_data.txt); a label on the line must agree with the file name.
std::shared_ptr<ImageLabelDataset> shenzhen(const std::string& image_dir, const std::string& split_list = "",
                                            ImageOptions options = {}, std::string name = "");

}  // namespace medtl::data
