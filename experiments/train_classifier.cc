// The classification engine: paper pipelines, BCE on sigmoid outputs, plateau schedule, ten-crop AUC.
#include "experiments/train_classifier.h"

#include <map>

#include "autograd/graph.h"
#include "autograd/ops.h"
#include "data/loader.h"
#include "data/transforms.h"
#include "experiments/segmenter.h"
#include "nn/loss.h"
#include "nn/scheduler.h"
#include "tensor/error.h"

namespace medtl::experiments::bench {
namespace {

using data::Batch;
using data::Loader;

class ClassifierTask : public EpochTask {
 public:
  ClassifierTask(const ClassifierJob& job) : job_(job) {
    const Protocol& p = job.protocol;
    K_ = job.data.outputs;
    model_ = make_classifier(job.init, K_, job.seed);
    model_->to(job.device);  // before the copies and the optimizer state, which follow its device
    best_ = std::make_shared<WeightsCopy>(*model_);
    optimizer_ = std::make_unique<nn::Adam>(model_->parameters(), p.lr);
    plateau_ = std::make_unique<nn::ReduceLROnPlateau>(*optimizer_, nn::ReduceLROnPlateau::Mode::Min, p.lr_factor,
                                                       p.lr_patience);
    scheduler_ = scheduler_ref(*plateau_, "ReduceLROnPlateau");
    const data::NormalizeSpec spec = normalize_spec(job.init.info, 255.0);
    data::TransformPtr train_tf;
    if (p.augment == "paper") {
      train_tf = data::paper_classification_train(spec, p.image_size);
    } else {
      train_tf = data::paper_classification_val(spec, p.resize, p.image_size);
    }
    const int64_t n = job.data.train->size();
    train_ = std::make_unique<Loader>(job.data.train, train_tf,
                                      loader_options(p.batch, true, derive_seed(job.seed, "loader"), p.workers,
                                                     n % p.batch == 1));
    val_ = std::make_unique<Loader>(job.data.val, data::paper_classification_val(spec, p.resize, p.image_size),
                                    loader_options(p.eval_batch, false, 0, p.workers, false));
    const int64_t test_batch = p.ten_crop ? std::max<int64_t>(1, p.eval_batch / 10) : p.eval_batch;
    test_ = std::make_unique<Loader>(job.data.test,
                                     p.ten_crop ? data::paper_classification_test(spec, p.resize, p.image_size)
                                                : data::paper_classification_val(spec, p.resize, p.image_size),
                                     loader_options(test_batch, false, 0, p.workers, false));
  }

  std::shared_ptr<nn::Module> model() override { return model_; }
  std::shared_ptr<nn::Module> best() override { return best_; }
  nn::Optimizer& optimizer() override { return *optimizer_; }
  const SchedulerRef& scheduler() override { return scheduler_; }

  double train_epoch(int64_t epoch, const std::function<void(int64_t, int64_t, double)>& on_batch) override {
    return train_one_epoch(*train_, epoch, job_.data.train->size(), *optimizer_, [&](const Batch& cpu_batch) {
      const Batch batch = to_device(cpu_batch, job_.device);
      // images (N, 3, S, S) -> logits (N, K) -> probabilities; labels (N, K)
      return nn::binary_cross_entropy(ag::sigmoid(model_->forward(batch.images)), batch.labels);
    }, on_batch);
  }

  // Mean BCE over every validation element (batches weighted by their size).
  double val_loss(int64_t) override {
    ag::NoGradGuard no_grad;
    val_->start_epoch(0);
    Batch batch;
    double sum = 0.0;
    int64_t count = 0;
    while (val_->next(batch)) {
      batch = to_device(batch, job_.device);
      const Tensor probs = ag::sigmoid(model_->forward(batch.images));
      sum += nn::binary_cross_entropy(probs, batch.labels).item() * static_cast<double>(batch.labels.numel());
      count += batch.labels.numel();
    }
    return sum / static_cast<double>(count);
  }

  void scheduler_step(double val_loss) override { plateau_->step(val_loss); }

  // Sigmoid outputs on the test split (ten-crop averaged) and the mean AUC over the outputs.
  stats::MeanAuc test() {
    ag::NoGradGuard no_grad;
    model_->eval();
    test_->start_epoch(0);
    Batch batch;
    std::vector<double> scores;
    std::vector<int> labels;
    while (test_->next(batch)) {
      batch = to_device(batch, job_.device);
      Tensor probs;
      if (batch.images.dim() == 5) {  // (N, 10, 3, S, S) -> (10 N, 3, S, S) -> (N, 10, K) -> mean (N, K)
        const int64_t N = batch.images.size(0), crops = batch.images.size(1);
        const Tensor flat = batch.images.reshape({N * crops, batch.images.size(2), batch.images.size(3),
                                                  batch.images.size(4)});
        probs = ag::mean(ag::sigmoid(model_->forward(flat)).reshape({N, crops, K_}), {1});
      } else {
        probs = ag::sigmoid(model_->forward(batch.images));
      }
      for (double v : probs.to_vector<double>()) scores.push_back(v);
      for (double v : batch.labels.to_vector<double>()) labels.push_back(v >= 0.5 ? 1 : 0);
    }
    return stats::mean_auc(scores, labels, K_, job_.eval_outputs, job_.data.class_names);
  }

  std::shared_ptr<models::ResNet50> resnet() const { return model_; }

 private:
  const ClassifierJob& job_;
  int64_t K_ = 1;
  std::shared_ptr<models::ResNet50> model_;
  std::shared_ptr<WeightsCopy> best_;
  std::unique_ptr<nn::Adam> optimizer_;
  std::unique_ptr<nn::ReduceLROnPlateau> plateau_;
  SchedulerRef scheduler_;
  std::unique_ptr<Loader> train_, val_, test_;
};

}  // namespace

std::shared_ptr<models::ResNet50> make_classifier(const ModelInit& init, int64_t outputs, uint64_t seed) {
  std::shared_ptr<models::ResNet50> model;
  if (init.weights_path.empty()) {
    Generator init_gen(derive_seed(seed, "init"));
    model = std::make_shared<models::ResNet50>(models::parse_variant(init.variant), outputs, init_gen);
  } else {
    // One network per (variant, outputs) is kept across runs: building one draws 25 M random numbers
    // (seconds), and a run that starts from a file overwrites every tensor of it (the strict load
    // fills all but fc, reset_head redraws fc).
    static std::map<std::string, std::shared_ptr<models::ResNet50>> reusable;
    auto& slot = reusable[str_cat(init.variant, "/", outputs)];
    if (!slot) {
      Generator unused(0);
      slot = std::make_shared<models::ResNet50>(models::parse_variant(init.variant), outputs, unused);
    }
    model = slot;
    MEDTL_CHECK(init.info.architecture == "resnet50", "'", init.weights_path, "' holds a '", init.info.architecture,
                "' model; a source must be a resnet50 weight file");
    MEDTL_CHECK(init.info.variant == init.variant, "'", init.weights_path, "' is a ", init.info.variant,
                " ResNet-50 but the experiment's variant is ", init.variant,
                " (set [experiment] variant, or convert the weights to that layout)");
    models::load_weights(init.weights_path, *model, models::LoadMode::Strict, {"fc."});
  }
  Generator head_gen(derive_seed(seed, "head"));
  model->reset_head(outputs, head_gen);  // the paper's head: N(0, 0.01) weights, zero bias
  return model;
}

ClassifierResult train_classifier(const ClassifierJob& job, const LoopSettings& settings, const ProgressFn& progress) {
  ClassifierTask task(job);
  ClassifierResult result;
  result.loop = run_training_loop(task, settings, progress);
  if (job.test) {
    if (progress) progress({ProgressEvent::Kind::Phase, result.loop.epochs, settings.max_epochs, 0, 0, 0, 0, 0, false,
                            job.protocol.ten_crop ? "testing (ten-crop)" : "testing"});
    result.auc = task.test();
  }
  result.model = task.resnet();
  return result;
}

}  // namespace medtl::experiments::bench
