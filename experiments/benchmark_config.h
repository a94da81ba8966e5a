// The benchmark's experiment description: an INI-style config file (format in docs/benchmark.md and
// at the top of experiments/configs/default.ini), parsed into sources, targets and the training
// protocols, validated, and reduced to canonical texts whose SHA-256 identify pre-training stages
// and fine-tuning runs (so a result is reused only by a run with exactly the same config).
//
//   [experiment]          name, runs, seed, variant, baseline, deterministic, conv_chunk, device, ...
//   [classification]      protocol defaults of every classification target (paper §4.1, scaled)
//   [segmentation]        protocol defaults of every segmentation target (paper §4.2, scaled)
//   [pretraining]         protocol defaults of every pre-training stage (falls back to [classification])
//   [source NAME]         init = random | weights | pretrain  (+ from, data, ... for pretrain)
//   [target NAME]         task = classification | segmentation, data, metric, protocol overrides
//
// Values may use ${data} (the data root), ${weights} (models::weights_cache_dir()) and ${workspace};
// they are expanded when used, and hashed unexpanded, so the same experiment on another machine
// (another data root) has the same identity.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace medtl::experiments::bench {

// Key/value pairs of one section, in file order (later duplicates are errors at parse time).
struct Section {
  std::string kind;  // "experiment", "classification", "segmentation", "pretraining", "source", "target"
  std::string name;  // the NAME of [source NAME] / [target NAME]; empty otherwise
  std::vector<std::pair<std::string, std::string>> entries;
  std::map<std::string, int> lines;  // key -> line number, for messages
  int line = 0;
  const std::string* find(const std::string& key) const;
};

// Variables that ${...} expands to.
struct Paths {
  std::string data;       // data root (--data-root, $MEDTL_DATA, or <workspace>/../shared/data)
  std::string weights;    // weights folder (--weights-dir, $MEDTL_CACHE, ~/.cache/medtl)
  std::string workspace;  // $BUILD_WORKSPACE_DIRECTORY or the working directory
  std::string expand(const std::string& value) const;  // unknown ${name} is an error naming it
};

// Where a dataset lies and how it is split: "data = <kind> <path> [<path2>]", "splits = a b c".
struct DataSpec {
  std::string kind;                 // folder | medmnist | isbi2012[-membrane] | dsb2018 | paired | drive | montgomery |
                                    // chestxray14 | chexpert | shenzhen
  std::vector<std::string> paths;   // unexpanded
  std::vector<std::string> splits;  // three entries: train, val, test (meaning depends on kind)
  std::string where;                // "get = ..." text: where to download it (optional; kinds have defaults)
  std::string canonical() const;    // "kind path... | split split split"
};

// The training protocol of one stage or target after defaults were applied (see default.ini for
// every key's meaning and the paper's value).
struct Protocol {
  std::string task;          // "classification" | "segmentation"
  int64_t image_size = 224;  // network input side (crop size for classification)
  int64_t resize = 256;      // classification val/test: resize to this square before the crop(s)
  int64_t batch = 32;
  int64_t eval_batch = 32;
  double lr = 2e-4;
  int64_t max_epochs = 1000;
  int64_t patience = 11;     // early stop after this many epochs in a row without val-loss improvement
  int64_t lr_patience = 5;   // ReduceLROnPlateau(patience) (classification)
  double lr_factor = 0.5;    // ReduceLROnPlateau(factor)
  int64_t cosine_epochs = 0; // segmentation: E of the per-epoch cosine (0 = max_epochs)
  bool ten_crop = true;      // classification test: average the sigmoid over TenCrop (else centre crop)
  std::string augment = "paper";  // paper | none
  bool augment_val = true;   // segmentation: the paper augments the validation set too
  std::string loss = "dice"; // segmentation: dice | bce | bce_dice (classification is always BCE)
  std::string resize_interp = "nearest";  // segmentation resize of the image: nearest (paper) | antialias
  int64_t train_limit = 0, val_limit = 0, test_limit = 0;  // 0 = the whole split, else a fixed subset
  double max_loss = 1e3;     // a training loss above this (or non-finite) ends the run as diverged
  int64_t workers = 1;       // loader threads
  int64_t debug_nan_at_step = -1;  // test hook: the loss of this global step is replaced by NaN
  std::string canonical() const;
};

struct SourceSpec {
  std::string name;
  std::string init;        // "random" | "weights" | "pretrain"
  std::string preprocess;  // random init: caffe | imagenet | chestxray (the input normalisation)
  std::string weights;     // init = weights: the HDF5 file (unexpanded)
  std::string from;        // init = pretrain: the source it starts from
  DataSpec data;           // init = pretrain: what it is trained on
  Protocol protocol;       // init = pretrain: how
};

struct TargetSpec {
  std::string name;
  DataSpec data;
  Protocol protocol;
  std::string metric;                // "auc" | "dice"
  std::vector<int64_t> eval_outputs; // classification: outputs averaged by the AUC (empty = all)
  // The report columns this target produces: {"auc"} or {"dice_global", "dice_mean"}.
  std::vector<std::string> metric_columns() const;
};

struct ExperimentConfig {
  std::string name = "benchmark";
  std::string description;
  int64_t runs = 3;
  uint64_t seed = 0;
  std::string variant = "keras";  // ResNet-50 layout of every model: keras | torchvision
  std::string baseline = "ImageNet";
  bool deterministic = true;
  int64_t conv_chunk = 8;
  std::string device = "cpu";        // where models train: cpu | cuda | cuda:N (a --config=cuda build)
  double checkpoint_seconds = 60.0;  // a running job saves a resumable checkpoint this often
  std::vector<SourceSpec> sources;   // config order = report row order
  std::vector<TargetSpec> targets;   // config order = report column order
  std::string text;                  // the config text as read (after --set overrides)

  const SourceSpec& source(const std::string& name) const;  // error lists the names
  const TargetSpec& target(const std::string& name) const;
  // The canonical text of everything a result depends on in common (seed, variant, numerics).
  std::string common_canonical() const;
};

// Parses a config text; `origin` names it in messages. `overrides` are "section.key=value" items
// ("classification.max_epochs=2", "target NIH.batch=8") applied on top of the file (a key may be
// new). Every problem is a medtl::Error naming the line and key; unknown keys are errors.
ExperimentConfig parse_config(const std::string& text, const std::string& origin,
                              const std::vector<std::string>& overrides = {});
ExperimentConfig load_config(const std::string& path, const std::vector<std::string>& overrides = {});
// Splits "a=1;b=2" into items (the --set flag's syntax).
std::vector<std::string> split_overrides(const std::string& text);

// The seed of fine-tuning run r of the experiment (the same for every cell, so cells of run r see
// the same data order), and a seed for another named purpose derived from a seed.
uint64_t run_seed(uint64_t experiment_seed, int64_t run);
uint64_t derive_seed(uint64_t seed, const std::string& purpose);

// Parses "true/false/1/0", integers and numbers with an error naming `what`.
bool parse_bool(const std::string& value, const std::string& what);
int64_t parse_int(const std::string& value, const std::string& what, int64_t min);
double parse_double(const std::string& value, const std::string& what);
std::vector<std::string> split_words(const std::string& text);

}  // namespace medtl::experiments::bench
