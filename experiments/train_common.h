// The epoch loop both fine-tuning engines share (train_classifier.h, train_segmenter.h): train one
// epoch, validation loss, scheduler step, early stopping on the validation loss with the
// best-validation weights kept, divergence checks, progress events, and resumable checkpoints
// (experiments/checkpoint.h) saved every `checkpoint_seconds` at an epoch boundary.
//
// Why resuming gives the same bits as never stopping: everything random in an epoch is keyed by
// (seed, epoch, sample index) -- the loader's order and every augmentation -- so the state at an
// epoch boundary is exactly what the checkpoint holds: model + best model (one file: the "model.*"
// and "best.*" keys of ModelAndBest), Adam's moments and step counts, the scheduler's numbers, and
// the loop's own (best val loss, epochs without improvement, histories).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/loader.h"
#include "experiments/checkpoint.h"
#include "models/weights.h"
#include "nn/module.h"
#include "nn/optim.h"

namespace medtl::experiments::bench {

// A run whose loss became NaN/inf or exceeded max_loss. The grid records it as that run's failure
// and goes on with the next run.
class TrainingDiverged : public std::runtime_error {
 public:
  explicit TrainingDiverged(const std::string& what) : std::runtime_error(what) {}
};

// What the progress bar is told.
struct ProgressEvent {
  enum class Kind { Batch, EpochEnd, Phase };
  Kind kind = Kind::Batch;
  int64_t epoch = 0, max_epochs = 0;  // epoch is 0-based
  int64_t batch = 0, batches = 0;     // Batch: batches done in this epoch
  double loss = 0.0;                  // Batch: running mean train loss of the epoch
  double val_loss = 0.0, lr = 0.0;    // EpochEnd
  bool improved = false;              // EpochEnd
  std::string phase;                  // Phase: "resumed at epoch 3", "testing", ...
};
using ProgressFn = std::function<void(const ProgressEvent&)>;

struct LoopSettings {
  int64_t max_epochs = 1;
  int64_t patience = 1;           // stop after this many epochs in a row without improvement
  double max_loss = 20.0;         // a batch loss above it (or non-finite) ends the run: TrainingDiverged
  int64_t debug_nan_at_step = -1; // test hook: the loss of global step epoch * batches + batch is taken as NaN
  std::string checkpoint_path;    // "" = no checkpoints (and no resume)
  double checkpoint_seconds = 60; // save at the first epoch end after this many seconds since the last save
  std::string identity;           // the run's canonical config; a checkpoint of another identity is ignored
};

// What an engine gives the loop. best() has model()'s state_dict keys (usually a WeightsCopy of
// it); it receives a copy of model()'s weights whenever the validation loss improves.
class EpochTask {
 public:
  virtual ~EpochTask() = default;
  virtual std::shared_ptr<nn::Module> model() = 0;
  virtual std::shared_ptr<nn::Module> best() = 0;
  virtual nn::Optimizer& optimizer() = 0;
  virtual const SchedulerRef& scheduler() = 0;
  // Trains epoch `epoch` (model in train mode); calls on_batch(batches done, this batch's loss)
  // after every optimizer step (it may throw TrainingDiverged). Returns the epoch's mean loss.
  virtual double train_epoch(int64_t epoch, const std::function<void(int64_t, int64_t, double)>& on_batch) = 0;
  virtual double val_loss(int64_t epoch) = 0;  // model in eval mode, no gradients
  virtual void scheduler_step(double val_loss) = 0;  // after each epoch
};

// The body of EpochTask::train_epoch for both engines: one pass over `train` in its order for
// `epoch`; per batch, loss = batch_loss(batch), backward, optimizer step, zero_grad, then
// on_batch(batches done, batches in all, loss). Returns the mean batch loss; an epoch without a
// complete batch is an error naming the split's `train_size`.
double train_one_epoch(data::Loader& train, int64_t epoch, int64_t train_size, nn::Optimizer& optimizer,
                       const std::function<Tensor(const data::Batch&)>& batch_loss,
                       const std::function<void(int64_t, int64_t, double)>& on_batch);

struct LoopResult {
  int64_t epochs = 0;       // epochs trained in all (including before a resume)
  int64_t best_epoch = -1;  // 0-based epoch whose weights were kept
  double best_val = 0.0;
  std::vector<double> train_losses, val_losses, lrs;  // per epoch
  std::string stop_reason;  // "early stopping (patience 3)" | "max_epochs"
  double seconds = 0.0;     // training wall time, summed over resumed pieces
  int64_t resumed_from = -1;  // epoch a checkpoint resumed at, or -1
  double resumed_seconds = 0.0;  // training time the checkpoint had accumulated before this process
};

// Runs the loop and leaves the best weights in task.model() (eval mode). Resumes from
// settings.checkpoint_path when it holds a checkpoint of the same identity. The checkpoint is left
// in place (the caller deletes it once the run's result is stored).
LoopResult run_training_loop(EpochTask& task, const LoopSettings& settings, const ProgressFn& progress);

// Copies every state_dict tensor of `from` into `to` (same keys in the same order).
void copy_weights(const nn::Module& from, nn::Module& to);

// A copy of a model's state_dict held as buffers under the same dotted keys: the "best weights"
// store of an engine (no second network has to be built, which would draw its random init).
class WeightsCopy : public nn::Module {
 public:
  explicit WeightsCopy(const nn::Module& model);  // clones every tensor
  Tensor forward(const Tensor& x) override;        // an error: this holds weights, it computes nothing
  std::string type_name() const override { return "WeightsCopy"; }
};

// True when a loss is acceptable (finite and <= max_loss); else throws TrainingDiverged saying where.
void check_loss(double loss, double max_loss, const std::string& where);

// The batch's tensors on `device` (the loader makes them on the CPU); itself on the CPU.
data::Batch to_device(const data::Batch& batch, Device device);

// Loader options of the benchmark: batch, shuffle, seed, workers (0 on a 1-thread run).
data::LoaderOptions loader_options(int64_t batch, bool shuffle, uint64_t seed, int64_t workers, bool drop_last);

// How a model's weights start: random (variant) or a weight file, and the input normalisation.
struct ModelInit {
  std::string variant = "keras";  // keras | torchvision
  std::string weights_path;       // "" = random init
  models::WeightFileInfo info;    // preprocessing (and, for files, what the file says it is)
};

}  // namespace medtl::experiments::bench
