// The benchmark's datasets: a config's "data = <kind> <path>" + "splits = ..." turned into
// train/val/test Datasets (data/), with fixed-size subsets (train_limit, ...), an in-memory cache of
// decoded samples for the small sets, and a message saying where to get a dataset that is missing.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "experiments/benchmark_config.h"

namespace medtl::experiments::bench {

struct SplitData {
  std::shared_ptr<const data::Dataset> train, val, test;
  data::TargetKind kind = data::TargetKind::Binary;
  int64_t outputs = 1;                   // classification: K network outputs; segmentation: 1
  std::vector<std::string> class_names;  // the dataset's output names
  std::string identity;                  // canonical text of the data and limits (part of run hashes)
  std::string describe() const;          // "nih: train 600, val 200, test 200 (Binary, 1 output)"
};

// Empty when every file and folder `spec` needs exists; else a message naming what is missing and
// where to get it (the kind's download page or the config's 'get = ...').
std::string missing_data_message(const DataSpec& spec, const Paths& paths);

// Builds the three splits (memoised per process by spec + limits, so the runs of a grid decode a
// small dataset once). Throws missing_data_message's text when something is missing, and
// medtl::Error naming the file for unreadable data.
SplitData load_split_data(const DataSpec& spec, const Paths& paths, const Protocol& protocol);

// The first `limit` samples of a permutation keyed by (purpose) alone -- the same subset for every
// run and source; the whole dataset when limit is 0 or >= its size.
std::shared_ptr<const data::Dataset> limit_dataset(std::shared_ptr<const data::Dataset> dataset, int64_t limit,
                                                   const std::string& purpose);

// True when two data specs read the same dataset (same kind and paths): a source is not evaluated
// on the data it was pre-trained on.
bool same_dataset(const DataSpec& a, const DataSpec& b);

}  // namespace medtl::experiments::bench
