// Learning-rate schedulers that set an Optimizer's lr: ReduceLROnPlateau (torch.optim semantics),
// the paper's per-epoch cosine schedule, and StepLR. Each exports and imports its state as named
// plain numbers, for checkpoints.
//
// A scheduler keeps a reference to its optimizer: the optimizer must outlive it.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "nn/optim.h"

namespace medtl::nn {

// Named numbers: what a scheduler needs to continue exactly where it was ("best", "last_epoch", ...).
using ScalarState = std::vector<std::pair<std::string, double>>;

// torch.optim.lr_scheduler.ReduceLROnPlateau. step(metric) once per epoch:
//   better = min/rel: metric < best (1 - threshold); min/abs: metric < best - threshold;
//            max/rel: metric > best (1 + threshold); max/abs: metric > best + threshold.
//   better -> best = metric, num_bad_epochs = 0; else num_bad_epochs += 1 (NaN is never better).
//   in cooldown (cooldown_counter > 0) -> cooldown_counter -= 1, num_bad_epochs = 0.
//   num_bad_epochs > patience -> new = max(lr factor, min_lr), applied only if lr - new > eps;
//                                cooldown_counter = cooldown, num_bad_epochs = 0.
// So with patience 5 the lr drops at the 6th consecutive epoch without improvement.
class ReduceLROnPlateau {
 public:
  enum class Mode { Min, Max };
  enum class ThresholdMode { Rel, Abs };
  explicit ReduceLROnPlateau(Optimizer& optimizer, Mode mode = Mode::Min, double factor = 0.1, int64_t patience = 10,
                             double threshold = 1e-4, ThresholdMode threshold_mode = ThresholdMode::Rel,
                             int64_t cooldown = 0, double min_lr = 0.0, double eps = 1e-8);
  void step(double metric);
  bool is_better(double a, double best) const;

  double best() const { return best_; }
  int64_t num_bad_epochs() const { return num_bad_epochs_; }
  int64_t cooldown_counter() const { return cooldown_counter_; }
  int64_t last_epoch() const { return last_epoch_; }
  bool in_cooldown() const { return cooldown_counter_ > 0; }
  double lr() const { return optimizer_.lr(); }

  // "best", "num_bad_epochs", "cooldown_counter", "last_epoch" (the settings are the
  // constructor's business). The optimizer's lr travels with the optimizer's own state.
  ScalarState export_state() const;
  void load_state(const ScalarState& state);

 private:
  Optimizer& optimizer_;
  Mode mode_;
  double factor_;
  int64_t patience_;
  double threshold_;
  ThresholdMode threshold_mode_;
  int64_t cooldown_;
  double min_lr_, eps_;
  double best_;
  int64_t num_bad_epochs_ = 0, cooldown_counter_ = 0, last_epoch_ = 0;
};

// The paper's segmentation schedule (V1 code's cosine_anneal_schedule): after epoch e (0-based),
// lr = 0.5 lr0 (1 + cos(pi (e mod E) / E)). So epochs 0 and 1 both train at lr0. lr0 is the
// optimizer's lr at construction. step() with no argument uses e = last_epoch + 1 (0 first).
class CosineEpoch {
 public:
  CosineEpoch(Optimizer& optimizer, int64_t total_epochs);
  void step();
  void step(int64_t epoch);
  static double lr_at(double lr0, int64_t epoch, int64_t total_epochs);  // the formula above

  double base_lr() const { return base_lr_; }
  int64_t last_epoch() const { return last_epoch_; }
  double lr() const { return optimizer_.lr(); }
  ScalarState export_state() const;  // "base_lr", "last_epoch"
  void load_state(const ScalarState& state);

 private:
  Optimizer& optimizer_;
  int64_t total_epochs_;
  double base_lr_;
  int64_t last_epoch_ = -1;
};

// torch.optim.lr_scheduler.StepLR: lr is multiplied by gamma at every step_size-th step()
// (at last_epoch = step_size, 2 step_size, ...), so epoch e trains at lr0 gamma^(e / step_size).
// Construction counts as PyTorch's initial step (last_epoch 0, lr untouched).
class StepLR {
 public:
  StepLR(Optimizer& optimizer, int64_t step_size, double gamma = 0.1);
  void step();

  int64_t last_epoch() const { return last_epoch_; }
  double base_lr() const { return base_lr_; }
  double lr() const { return optimizer_.lr(); }
  ScalarState export_state() const;  // "base_lr", "last_epoch"
  void load_state(const ScalarState& state);

 private:
  Optimizer& optimizer_;
  int64_t step_size_;
  double gamma_;
  double base_lr_;
  int64_t last_epoch_ = 0;
};

}  // namespace medtl::nn
