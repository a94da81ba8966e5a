// Training checkpoints: everything a run needs to continue bit for bit, in one HDF5 file.
//
// Why here (experiments/) and not in nn/: a checkpoint gathers things from every layer -- the
// model and its Dropout streams, optimizer and scheduler (nn/), random generators (tensor/), the
// data loader's position (data/) and the run's config (experiments/) -- and the HDF5 I/O lives in
// models/weights.h. nn/ may know none of models/, data/ or configs; experiments/ sits above all.
//
// What a file holds (format "medtl-checkpoint", version 1; every tensor in its exact dtype, so
// loading restores the same bits; see docs/reproducibility.md):
//   datasets  model.<state_dict key>        parameters and buffers (BatchNorm running stats,
//                                           num_batches_tracked)
//             optimizer.<export_state key>  "optimizer.lr", "optimizer.state.<i>.exp_avg", ...
//             series.<name>                 float64 histories (e.g. per-epoch losses)
//   root attributes
//             format, format_version, config (the run's config text), config_sha256
//             epoch, step_in_epoch, global_step           the loader's position
//             optimizer (its name), scheduler (its type, or "none"), scheduler.<key> (its state)
//             rng.<name>.seed, rng.<name>.next_stream      named Generators
//             dropout.<module path>.seed, .stream          every nn::Dropout inside the model
//             deterministic, conv_chunk                    how the bits were computed (informational)
// No timestamps and no thread count: the same training state gives a byte-identical file.
// Saving is atomic (a temporary file, fsync, rename): a crash leaves the previous checkpoint.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "nn/module.h"
#include "nn/optim.h"
#include "nn/scheduler.h"
#include "tensor/philox.h"

namespace medtl::experiments {

// The run's position and bookkeeping: what is not inside the model, optimizer or scheduler.
struct CheckpointState {
  std::string config;         // the run's config text (compared on resume by the caller)
  int64_t epoch = 0;          // the epoch in progress, 0-based
  int64_t step_in_epoch = 0;  // batches of `epoch` already trained: the loader resumes with this one
  int64_t global_step = 0;    // optimizer steps since the run began
  std::vector<std::pair<std::string, Generator>> generators;         // named RNG positions
  std::vector<std::pair<std::string, std::vector<double>>> series;  // e.g. {"epoch_losses", {...}}
};

// Any scheduler (they share no base class): its type name and its state export/import.
struct SchedulerRef {
  std::string type;  // "CosineEpoch", "StepLR", "ReduceLROnPlateau"
  std::function<nn::ScalarState()> export_state;
  std::function<void(const nn::ScalarState&)> load_state;
};
template <typename Scheduler>
SchedulerRef scheduler_ref(Scheduler& scheduler, std::string type) {
  return {std::move(type), [&scheduler] { return scheduler.export_state(); },
          [&scheduler](const nn::ScalarState& s) { scheduler.load_state(s); }};
}

// The live objects a checkpoint is saved from and loaded into. optimizer and scheduler may be null.
struct TrainingObjects {
  nn::Module* model = nullptr;
  nn::Optimizer* optimizer = nullptr;
  const SchedulerRef* scheduler = nullptr;
};

// Writes a checkpoint of `objects` and `state` to `path` (atomically).
void save_checkpoint(const std::string& path, const TrainingObjects& objects, const CheckpointState& state);

// Restores a checkpoint into `objects` (model tensors by exact key, shape and dtype; optimizer and
// scheduler state; every Dropout's stream) and returns the rest. Strict: a missing or extra model
// tensor, a different optimizer or scheduler type, or any shape or dtype difference is an error
// listing what differs, and then nothing has been changed.
CheckpointState load_checkpoint(const std::string& path, const TrainingObjects& objects);

// Every nn::Dropout inside `model`, by dotted module path ("" for the model itself).
std::vector<std::pair<std::string, nn::Module*>> dropout_modules(nn::Module& model);

}  // namespace medtl::experiments
