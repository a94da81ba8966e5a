// A short, fully specified ResNet-50 training run on synthetic data: what verify_reproducible and
// the reproducibility tests train, checkpoint, resume and hash.
//
// The config is a small key = value file (experiments/configs/verify_tiny.cfg is the example):
//
//   model           resnet50 (the only model for now)
//   variant         torchvision | keras                          (default torchvision)
//   num_classes     outputs of the multi-label head, BCE loss    (default 4)
//   image_size      square input side, at least 32                (default 32)
//   batch           images per step                               (default 4)
//   steps           optimizer steps of the whole run              (default 4)
//   steps_per_epoch batches per epoch; the synthetic dataset holds steps_per_epoch * batch
//                   images, visited in a new order every epoch    (default 2)
//   seed            model init, data, shuffling, augmentation, dropout (default 0)
//   lr              learning rate                                 (default 0.001)
//   optimizer       sgd | adam | adamw                            (default adam)
//   momentum        SGD momentum                                  (default 0.9)
//   weight_decay                                                  (default 0)
//   scheduler       none | cosine (the paper's per-epoch cosine) | step (StepLR 1 epoch, gamma 0.5)
//                                                                 (default cosine)
//   dropout         p of an input Dropout before the network, 0 = none (default 0)
//
// '#' starts a comment; blank lines are ignored; an unknown key or a bad value is an error naming
// the line. canonical_text() (every key, fixed order, defaults filled in) is what a run hashes and
// stores, so comments and key order do not change a run's identity.
//
// Everything random is a pure function of the seed and a position: image i of the dataset is
// Philox-keyed by (seed, i); the visiting order of epoch e by (seed, e); each batch's horizontal
// flips take the next stream of the "augment" Generator; Dropout masks take the Dropout's next
// stream. So (epoch, step_in_epoch, the Generator and Dropout streams) is the whole loader and RNG
// state, and a checkpoint holding them resumes the exact same batches.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "experiments/checkpoint.h"
#include "experiments/manifest.h"
#include "nn/module.h"
#include "nn/optim.h"
#include "nn/scheduler.h"

namespace medtl::experiments {

struct ReproConfig {
  std::string model = "resnet50";
  std::string variant = "torchvision";
  int64_t num_classes = 4;
  int64_t image_size = 32;
  int64_t batch = 4;
  int64_t steps = 4;
  int64_t steps_per_epoch = 2;
  uint64_t seed = 0;
  double lr = 1e-3;
  std::string optimizer = "adam";
  double momentum = 0.9;
  double weight_decay = 0.0;
  std::string scheduler = "cosine";
  double dropout = 0.0;

  int64_t epochs() const { return (steps + steps_per_epoch - 1) / steps_per_epoch; }
  std::string canonical_text() const;  // "key = value\n" for every key, in the order above
};

// Parses config text; `origin` names it in errors ("verify_tiny.cfg").
ReproConfig parse_repro_config(const std::string& text, const std::string& origin);
ReproConfig load_repro_config(const std::string& path);

class ReproRun {
 public:
  explicit ReproRun(const ReproConfig& config);
  ~ReproRun();

  // Trains until `global_step` reaches `until` (at most config.steps); returns steps trained.
  int64_t train_until(int64_t until);
  int64_t train_all() { return train_until(config_.steps); }

  void save(const std::string& path) const;  // a checkpoint of the whole state
  // Restores a checkpoint; its config must equal this run's (canonical text), else an error
  // (check_checkpoint_config, which resume calls first, before anything is changed).
  void resume(const std::string& path);
  static void check_checkpoint_config(const std::string& path, const ReproConfig& config);

  const ReproConfig& config() const { return config_; }
  nn::Module& model() { return *model_; }
  nn::Optimizer& optimizer() { return *optimizer_; }
  int64_t global_step() const { return global_step_; }
  const std::vector<double>& step_losses() const { return step_losses_; }
  std::vector<double> epoch_losses() const;  // mean step loss of every epoch begun, in order

  // The environment plus this run's config, seeds, losses and hashes.
  RunManifest manifest(const std::string& program) const;

 private:
  Tensor batch_images(int64_t epoch, int64_t step_in_epoch, Tensor* targets);
  CheckpointState checkpoint_state() const;
  TrainingObjects objects() const;

  ReproConfig config_;
  std::shared_ptr<nn::Module> model_;
  std::unique_ptr<nn::Optimizer> optimizer_;
  std::unique_ptr<nn::CosineEpoch> cosine_;
  std::unique_ptr<nn::StepLR> step_lr_;
  std::unique_ptr<SchedulerRef> scheduler_;
  Generator augment_;
  int64_t epoch_ = 0, step_in_epoch_ = 0, global_step_ = 0;
  std::vector<double> step_losses_;
};

}  // namespace medtl::experiments
