// The shared epoch loop: early stopping, best weights, divergence checks, checkpoint and resume.
#include "experiments/train_common.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <limits>

#include "autograd/graph.h"
#include "tensor/error.h"
#include "tensor/ops/copy.h"
#include "tensor/parallel.h"

namespace medtl::experiments::bench {
namespace {

namespace fs = std::filesystem;

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The model and its best copy as one module, so one checkpoint file holds both ("model.*", "best.*").
class ModelAndBest : public nn::Module {
 public:
  ModelAndBest(std::shared_ptr<nn::Module> model, std::shared_ptr<nn::Module> best) {
    register_module("model", std::move(model));
    register_module("best", std::move(best));
  }
  Tensor forward(const Tensor&) override { throw Error("ModelAndBest is a checkpoint container, not a network"); }
  std::string type_name() const override { return "ModelAndBest"; }
};

// The loop's own state, as checkpoint series.
struct LoopState {
  int64_t next_epoch = 0;
  double best_val = std::numeric_limits<double>::infinity();
  int64_t best_epoch = -1, bad_epochs = 0;
  double seconds = 0.0;
  std::vector<double> train_losses, val_losses, lrs;
};

CheckpointState to_checkpoint(const LoopState& s, const std::string& identity) {
  CheckpointState c;
  c.config = identity;
  c.epoch = s.next_epoch;
  c.series = {{"loop", {s.best_val, static_cast<double>(s.best_epoch), static_cast<double>(s.bad_epochs), s.seconds}},
              {"train_losses", s.train_losses},
              {"val_losses", s.val_losses},
              {"lrs", s.lrs}};
  return c;
}

LoopState from_checkpoint(const CheckpointState& c) {
  LoopState s;
  s.next_epoch = c.epoch;
  for (const auto& [name, values] : c.series) {
    if (name == "loop" && values.size() == 4) {
      s.best_val = values[0], s.best_epoch = static_cast<int64_t>(values[1]);
      s.bad_epochs = static_cast<int64_t>(values[2]), s.seconds = values[3];
    } else if (name == "train_losses") {
      s.train_losses = values;
    } else if (name == "val_losses") {
      s.val_losses = values;
    } else if (name == "lrs") {
      s.lrs = values;
    }
  }
  return s;
}

}  // namespace

void copy_weights(const nn::Module& from, nn::Module& to) {
  const nn::NamedTensors src = from.state_dict(), dst = to.state_dict();
  MEDTL_CHECK(src.size() == dst.size(), "copy_weights: ", src.size(), " tensors into ", dst.size());
  for (size_t i = 0; i < src.size(); ++i) {
    MEDTL_CHECK(src[i].first == dst[i].first, "copy_weights: key '", src[i].first, "' vs '", dst[i].first, "'");
    ops::copy_(dst[i].second, src[i].second);
  }
}

WeightsCopy::WeightsCopy(const nn::Module& model) {
  for (const auto& [key, t] : model.state_dict()) register_buffer(key, t.clone());
}

Tensor WeightsCopy::forward(const Tensor&) { throw Error("WeightsCopy holds weights; it is not a network"); }

void check_loss(double loss, double max_loss, const std::string& where) {
  if (std::isfinite(loss) && loss <= max_loss) return;
  throw TrainingDiverged(str_cat(where, ": loss = ", loss,
                                 std::isfinite(loss) ? str_cat(" > max_loss ", max_loss) : std::string(" (non-finite)"),
                                 ": the run diverged (lower the learning rate, or raise max_loss if this is expected)"));
}

data::Batch to_device(const data::Batch& batch, Device device) {
  if (device.is_cpu()) return batch;
  data::Batch out = batch;
  out.images = batch.images.to(device);
  if (batch.labels.defined()) out.labels = batch.labels.to(device);
  if (batch.masks.defined()) out.masks = batch.masks.to(device);
  return out;
}

data::LoaderOptions loader_options(int64_t batch, bool shuffle, uint64_t seed, int64_t workers, bool drop_last) {
  data::LoaderOptions o;
  o.batch_size = batch;
  o.shuffle = shuffle;
  o.seed = seed;
  o.num_workers = static_cast<int>(workers);
  o.drop_last = drop_last;
  return o;
}

LoopResult run_training_loop(EpochTask& task, const LoopSettings& settings, const ProgressFn& progress) {
  auto model = task.model();
  auto best = task.best();
  auto pair = std::make_shared<ModelAndBest>(model, best);
  const TrainingObjects objects{pair.get(), &task.optimizer(), &task.scheduler()};
  LoopState s;
  LoopResult result;
  const std::string& ckpt = settings.checkpoint_path;
  if (!ckpt.empty()) {
    std::error_code ec;
    fs::remove(ckpt + ".tmp", ec);  // a save interrupted by a kill
    if (fs::exists(ckpt, ec)) {
      try {
        const auto attrs = models::read_hdf5_attributes(ckpt);
        const auto it = attrs.strings.find("config");
        if (it != attrs.strings.end() && it->second == settings.identity) {
          s = from_checkpoint(load_checkpoint(ckpt, objects));
          result.resumed_from = s.next_epoch;
          result.resumed_seconds = s.seconds;
          if (progress) progress({ProgressEvent::Kind::Phase, s.next_epoch, settings.max_epochs, 0, 0, 0, 0, 0, false,
                                  str_cat("resumed at epoch ", s.next_epoch + 1)});
        } else {
          std::cerr << "note: ignoring checkpoint " << ckpt << " (written for another config)\n";
        }
      } catch (const std::exception& e) {
        std::cerr << "note: ignoring unreadable checkpoint " << ckpt << ": " << e.what() << "\n";
      }
    }
  }
  double last_save = now_seconds();
  bool stopped = false;
  result.stop_reason = "max_epochs";
  if (s.bad_epochs >= settings.patience) stopped = true, result.stop_reason = "early stopping";
  for (int64_t epoch = s.next_epoch; epoch < settings.max_epochs && !stopped; ++epoch) {
    const double t0 = now_seconds();
    double running = 0.0;
    model->train();
    const double train_loss = task.train_epoch(epoch, [&](int64_t done, int64_t batches, double loss) {
      if (epoch * batches + done == settings.debug_nan_at_step) loss = std::nan("");  // test hook
      check_loss(loss, settings.max_loss, str_cat("epoch ", epoch + 1, " batch ", done));
      running += loss;
      if (progress)
        progress({ProgressEvent::Kind::Batch, epoch, settings.max_epochs, done, batches, running / done, 0, 0, false, ""});
    });
    model->eval();
    const double val = task.val_loss(epoch);
    if (!std::isfinite(val))
      throw TrainingDiverged(str_cat("epoch ", epoch + 1, ": validation loss = ", val, " (non-finite): the run diverged"));
    const double lr = task.optimizer().lr();
    task.scheduler_step(val);
    const bool improved = val < s.best_val;  // the paper: val_loss < best_val_loss
    if (improved) {
      s.best_val = val, s.best_epoch = epoch, s.bad_epochs = 0;
      copy_weights(*model, *best);
    } else {
      ++s.bad_epochs;
    }
    s.train_losses.push_back(train_loss), s.val_losses.push_back(val), s.lrs.push_back(lr);
    s.next_epoch = epoch + 1;
    s.seconds += now_seconds() - t0;
    if (progress)
      progress({ProgressEvent::Kind::EpochEnd, epoch, settings.max_epochs, 0, 0, train_loss, val, lr, improved, ""});
    if (s.bad_epochs >= settings.patience) {
      stopped = true;
      result.stop_reason = str_cat("early stopping (", s.bad_epochs, " epochs without improvement)");
    }
    if (!ckpt.empty() && !stopped && epoch + 1 < settings.max_epochs &&
        now_seconds() - last_save >= settings.checkpoint_seconds) {
      save_checkpoint(ckpt, objects, to_checkpoint(s, settings.identity));
      last_save = now_seconds();
    }
  }
  MEDTL_CHECK(s.best_epoch >= 0, "training ended without a single validated epoch");
  copy_weights(*best, *model);
  model->eval();
  result.epochs = s.next_epoch;
  result.best_epoch = s.best_epoch;
  result.best_val = s.best_val;
  result.train_losses = s.train_losses, result.val_losses = s.val_losses, result.lrs = s.lrs;
  result.seconds = s.seconds;
  return result;
}

double train_one_epoch(data::Loader& train, int64_t epoch, int64_t train_size, nn::Optimizer& optimizer,
                       const std::function<Tensor(const data::Batch&)>& batch_loss,
                       const std::function<void(int64_t, int64_t, double)>& on_batch) {
  train.start_epoch(static_cast<uint64_t>(epoch));
  data::Batch batch;
  int64_t done = 0;
  double sum = 0.0;
  while (train.next(batch)) {
    const Tensor loss = batch_loss(batch);
    ag::backward(loss);
    optimizer.step();
    optimizer.zero_grad();
    const double value = loss.item();
    sum += value;
    on_batch(++done, train.num_batches(), value);
  }
  MEDTL_CHECK(done > 0, "the training split has no complete batch (", train_size, " samples)");
  return sum / static_cast<double>(done);
}

}  // namespace medtl::experiments::bench
