// Classification fine-tuning (and supervised pre-training) as the paper's §4.1 engine: ResNet-50 +
// a new Linear head drawn from N(0, 0.01), sigmoid outputs with BCE, Adam, ReduceLROnPlateau on the
// validation loss, early stopping, the best-validation-loss weights tested with ten-crop averaging,
// mean AUC over the outputs.
//
// Shapes: train/val batches (N, 3, S, S) -> logits (N, K) -> sigmoid -> BCE against labels (N, K);
// test batches (N, 10, 3, S, S) -> (10 N, 3, S, S) -> sigmoid (10 N, K) -> mean over crops (N, K).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "experiments/benchmark_config.h"
#include "experiments/benchmark_data.h"
#include "experiments/stats.h"
#include "experiments/train_common.h"
#include "models/resnet.h"

namespace medtl::experiments::bench {

struct ClassifierJob {
  Protocol protocol;
  SplitData data;
  ModelInit init;
  uint64_t seed = 0;                   // run seed: backbone init (random), head, data order, augmentation
  std::vector<int64_t> eval_outputs;   // outputs the AUC averages (empty = all)
  bool test = true;                    // evaluate the test split after training
  Device device = Device::cpu();       // where the model trains (batches are moved there)
};

struct ClassifierResult {
  LoopResult loop;
  stats::MeanAuc auc;                       // test split (when job.test)
  std::shared_ptr<models::ResNet50> model;  // best-validation weights, eval mode
};

// Builds the model (random init from the seed, or the weight file's backbone loaded strictly with
// its fc skipped; then the paper's head) -- the variant must match the file's.
std::shared_ptr<models::ResNet50> make_classifier(const ModelInit& init, int64_t outputs, uint64_t seed);

ClassifierResult train_classifier(const ClassifierJob& job, const LoopSettings& settings, const ProgressFn& progress);

}  // namespace medtl::experiments::bench
