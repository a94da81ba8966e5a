// The dataset interface every dataset of data/ implements and the loader consumes: a Sample
// (image plus a label vector or a mask), the key that makes per-sample randomness reproducible,
// bad-sample bookkeeping, and index subsets (splits).
//
// Contract for implementations:
//  - get(i, key) is deterministic: the same (i, key) gives bit-identical tensors, on every call,
//    from every thread. Any randomness a dataset needs (CheXpert's LSR-Ones soft labels) is
//    drawn from philox_random keyed by (key.seed, key.epoch, key.index) -- never from a shared
//    generator, the clock or the thread.
//  - get is thread-safe: the loader calls it from several worker threads at once. Datasets
//    build their sample lists in the constructor and are read-only afterwards.
//  - The image is float32 (C, H, W) on the file's own scale (0..255 for 8-bit files, 0..65535
//    for 16-bit, Hounsfield / modality units for DICOM after rescale). No resize, no
//    normalisation: transforms (data/transforms*) do that.
//  - Problems (missing or corrupt file, mask size != image size, unknown label) throw
//    medtl::Error whose message names the file and the problem.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace medtl::data {

// Identifies one draw of one sample: the loader passes (its seed, the epoch, the dataset index).
// Everything random about sample `index` in `epoch` is a function of this key alone.
struct SampleKey {
  uint64_t seed = 0;
  uint64_t epoch = 0;
  int64_t index = 0;
};

// What the target of a dataset is.
enum class TargetKind {
  MultiClass,  // exactly one class per sample: label is one-hot (K,), class_index in [0, K)
  Binary,      // one output: label is (1,) in {0, 1}; class_index is 0 or 1
  MultiLabel,  // K independent outputs, possibly soft (CheXpert LSR): label (K,), class_index -1
  Mask,        // segmentation: mask (1, H, W) in {0, 1}, same H, W as the image; no label
};
const char* target_kind_name(TargetKind kind);

struct Sample {
  Tensor image;             // float32 (C, H, W), the file's own scale
  Tensor label;             // float32 (K,) (undefined for TargetKind::Mask)
  int64_t class_index = -1; // MultiClass / Binary: the class; otherwise -1
  Tensor mask;              // float32 (1, H, W), 1 = foreground (undefined unless TargetKind::Mask)
  int64_t index = -1;       // the index passed to get()
  std::string source;       // the file (or files, ';'-separated) the sample came from
};

// ---- Bad samples. ----

// What to do with a sample that cannot be read: stop with the error, or skip it and report it.
enum class OnBadSample { Throw, Skip };

struct BadSample {
  std::string source;   // the file
  std::string problem;  // what is wrong with it
};

// A thread-safe list of skipped samples, printed at the end of a run.
class BadSampleLog {
 public:
  void add(std::string source, std::string problem);
  int64_t count() const;
  std::vector<BadSample> entries() const;  // in the order added
  // "3 bad samples skipped:\n  <file>: <problem>\n..." or "no bad samples".
  std::string report() const;

 private:
  mutable std::mutex mutex_;
  std::vector<BadSample> entries_;
};

class Dataset {
 public:
  virtual ~Dataset() = default;

  virtual int64_t size() const = 0;
  // Sample `i` (0 <= i < size()) for this key. Deterministic and thread-safe (see above).
  virtual Sample get(int64_t i, const SampleKey& key) const = 0;
  // get(i, {seed 0, epoch 0, index i}): for datasets without randomness, and for tests. (A derived
  // class that overrides get(i, key) adds `using Dataset::get;` to keep this one visible.)
  Sample get(int64_t i) const { return get(i, SampleKey{0, 0, i}); }

  virtual TargetKind target_kind() const = 0;
  // The K output names, in output order (class folders, the 14 ChestX-ray14 findings, ...);
  // for Mask datasets, {"background", "<foreground name>"}.
  virtual std::vector<std::string> class_names() const = 0;
  // The file(s) sample i reads, without reading them: for error reports and skip lists.
  virtual std::string source(int64_t i) const = 0;
  // A short name for messages and reports, e.g. "nih1000/train".
  virtual std::string name() const = 0;

  // Samples left out while the dataset was built, under OnBadSample::Skip (missing files, unknown
  // labels, a mask file without its image, ...). Empty under OnBadSample::Throw, which throws.
  const BadSampleLog& skipped() const { return *skipped_; }

 protected:
  void check_index(int64_t i) const;  // throws naming the dataset, i and size()
  std::shared_ptr<BadSampleLog> skipped_ = std::make_shared<BadSampleLog>();
};

// `count` uniform numbers in [0, 1) that depend only on (key, purpose): for a dataset's own
// randomness (CheXpert LSR labels). `purpose` separates these numbers from the loader's and the
// transforms' streams for the same key. count <= 4096.
std::vector<double> keyed_uniforms(const SampleKey& key, uint64_t purpose, int count);

// ---- Subsets and splits. ----

// A view of another dataset through a list of indices (a split, or the good samples after a
// scan). get(i, key) returns base->get(indices[i], key) with sample.index = i: the key is passed
// through unchanged, so randomness follows the loader's index into *this* subset, as for any
// other dataset.
class Subset : public Dataset {
 public:
  using Dataset::get;  // get(i) as well as get(i, key)
  Subset(std::shared_ptr<const Dataset> base, std::vector<int64_t> indices, std::string name = "");
  int64_t size() const override { return static_cast<int64_t>(indices_.size()); }
  Sample get(int64_t i, const SampleKey& key) const override;
  TargetKind target_kind() const override { return base_->target_kind(); }
  std::vector<std::string> class_names() const override { return base_->class_names(); }
  std::string source(int64_t i) const override;
  std::string name() const override { return name_; }
  const std::vector<int64_t>& indices() const { return indices_; }
  const std::shared_ptr<const Dataset>& base() const { return base_; }

 private:
  std::shared_ptr<const Dataset> base_;
  std::vector<int64_t> indices_;
  std::string name_;
};

// Reads every sample once (get(i)); returns the dataset itself when all are good. With
// OnBadSample::Throw the first failure is rethrown; with Skip the bad ones are logged in `log`
// and a Subset of the good ones is returned. Throws if nothing good is left (an empty split).
std::shared_ptr<const Dataset> scan_dataset(std::shared_ptr<const Dataset> dataset, OnBadSample policy,
                                            BadSampleLog* log);

}  // namespace medtl::data
