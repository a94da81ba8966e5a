// Weight files: a model's state_dict in HDF5 (one dataset per tensor, named by its PyTorch key)
// plus root attributes that say which architecture and input preprocessing the weights expect.
// The format is documented in docs/weights.md; tools/convert_*.py write the same format.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "nn/module.h"

namespace medtl::models {

// The root attributes of a weight file (everything except the tensors).
struct WeightFileInfo {
  std::string architecture;          // "resnet50", "unet-resnet50", ...
  std::string variant;               // "torchvision" (v1.5, BN eps 1e-5) | "keras" (v1, BN eps 1e-3)
  int64_t num_classes = 0;           // rows of the classifier in the file; 0 = no classifier
  std::string channel_order = "RGB"; // "RGB" | "BGR": channel order the first conv expects
  std::array<double, 3> mean = {0.0, 0.0, 0.0};  // per channel, in channel_order, on value_scale
  std::array<double, 3> std = {1.0, 1.0, 1.0};   // per channel, in channel_order, on value_scale
  double value_scale = 1.0;          // pixels are in [0, value_scale] before (x - mean) / std
  double bn_eps = 1e-5;              // BatchNorm epsilon the weights were trained with
  std::string source;                // free text: where the weights came from
  std::string class_names_file;      // optional: file with the class names ("" = none)

  // torchvision's ImageNet convention: RGB, [0, 1], mean (0.485, 0.456, 0.406),
  // std (0.229, 0.224, 0.225), BN eps 1e-5.
  static WeightFileInfo torchvision(const std::string& architecture, int64_t num_classes,
                                    const std::string& source);
};

// Writes every tensor of module.state_dict() plus `info` to `path`: float tensors as float32
// datasets, integer tensors (num_batches_tracked) as int64. Atomic: writes `path.tmp`, then
// renames it over `path`, so a crash never leaves a half-written file under the real name.
void save_weights(const std::string& path, const nn::Module& module, const WeightFileInfo& info);

// The root attributes. Throws medtl::Error if the file is missing, not HDF5, or not ours.
WeightFileInfo read_weight_info(const std::string& path);

// Every dataset in the file as a CPU tensor keyed by its dotted name ("layer1.0.conv1.weight"),
// in the order the file was written (name order for files that do not track creation order).
nn::NamedTensors read_weight_tensors(const std::string& path);
// The same for any HDF5 file (no format attributes required): test fixtures, reference outputs.
nn::NamedTensors read_hdf5_tensors(const std::string& path);

// Strict: the file must hold exactly the module's keys with the same shapes, else nothing is
// loaded and the error lists every missing, unexpected and shape-mismatched name.
// Transfer: loads every tensor whose name and shape match and reports the rest; the caller
// re-initialises what was not loaded (usually the classifier head).
enum class LoadMode { Strict, Transfer };

struct LoadReport {
  std::vector<std::string> loaded;            // module keys filled from the file
  std::vector<std::string> missing;           // module keys the file lacks
  std::vector<std::string> unexpected;        // file keys the module lacks
  std::vector<std::string> shape_mismatched;  // "name: file (2048, 1000) vs module (5, 2048)"
  std::vector<std::string> skipped;           // keys (either side) matched by skip_prefixes
  std::string summary() const;                // one paragraph for logs
};

// Copies the file's tensors INTO the module's existing tensors (converting dtype, e.g. for a
// float64 model). Keys starting with any of `skip_prefixes` are neither loaded nor counted as
// missing/unexpected; they are listed in `skipped`. In Transfer mode it is still an error if no
// tensor at all matched (that is always a naming mistake, not a transfer).
LoadReport load_weights(const std::string& path, nn::Module& module, LoadMode mode,
                        const std::vector<std::string>& skip_prefixes = {});

// Where tools/fetch_weights.sh puts downloaded and converted weights: $MEDTL_CACHE if set, else
// $HOME/.cache/medtl. The Keras ImageNet ResNet-50 is <dir>/resnet50_keras_imagenet.h5.
std::string weights_cache_dir();

// The HDF5 dataset path of a state_dict key: "layer1.0.conv1.weight" -> "/layer1/0/conv1/weight".
std::string dataset_path_for_key(const std::string& key);

// ---- Generic named-tensor files (checkpoints, run state; experiments/checkpoint.h). ----
// Same dataset layout as a weight file (dotted keys as groups, creation order tracked), but every
// tensor keeps its dtype exactly (float32, float64 or int64; any other dtype is an error), so
// reading it back gives the same bits; and the root attributes are whatever the caller passes.

// Scalar root attributes by kind: UTF-8 strings, int64, uint64 (seeds, stream counters: every
// bit kept) and float64.
struct Hdf5Attributes {
  std::map<std::string, std::string> strings;
  std::map<std::string, int64_t> ints;
  std::map<std::string, uint64_t> uints;
  std::map<std::string, double> doubles;
};

// Writes `tensors` in order plus `attrs` to `path`. Atomic and durable: writes `path.tmp`, flushes
// it to disk (fsync), renames it over `path`, and fsyncs the directory; a crash at any point leaves
// either the old file or the new one under `path`, never a mix. No object records a modification
// time, so the same tensors and attributes give a byte-identical file.
void write_hdf5_file(const std::string& path, const nn::NamedTensors& tensors, const Hdf5Attributes& attrs);

// Every root attribute of an HDF5 file. Scalar (one-element) strings, integers and floats only;
// a vector attribute (a weight file's "mean") is an error naming it. Signed integers land in
// `ints`, unsigned ones in `uints`.
Hdf5Attributes read_hdf5_attributes(const std::string& path);

}  // namespace medtl::models
