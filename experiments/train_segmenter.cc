// The segmentation engine: U-Net from a source's encoder, soft Dice, per-epoch cosine, Dice at 0.5.
#include "experiments/train_segmenter.h"

#include <cmath>
#include <map>

#include "autograd/graph.h"
#include "autograd/ops.h"
#include "data/augment.h"
#include "data/loader.h"
#include "experiments/seg_metrics.h"
#include "experiments/segmenter.h"
#include "models/unet.h"
#include "nn/init.h"
#include "nn/layers.h"
#include "nn/scheduler.h"
#include "nn/seg_loss.h"
#include "tensor/error.h"

namespace medtl::experiments::bench {
namespace {

using data::Batch;
using data::Loader;

// Resize (the paper: nearest for image and mask), optional augmentation, 3 channels, normalise.
data::TransformPtr seg_pipeline(const Protocol& p, const data::NormalizeSpec& spec, bool augment) {
  auto pipe = std::make_shared<data::Pipeline>();
  const data::Interp interp = p.resize_interp == "nearest" ? data::Interp::Nearest : data::Interp::Antialias;
  pipe->emplace<data::Resize>(p.image_size, p.image_size, interp, data::Interp::Nearest);
  if (augment) pipe->add(scaled_segmentation_augmentation(p.image_size));
  pipe->emplace<data::GrayToRgb>();
  pipe->emplace<data::Normalize>(spec);
  return pipe;
}

// The U-Net of a run: random (encoder, decoder and head from the seed), or the source file's
// encoder with a decoder and head drawn from the seed. A U-Net from a file reuses one network
// object across runs (building one draws its 34 M random numbers, seconds): every tensor is
// overwritten -- the encoder by the strict load, the decoder from a fresh UNetDecoder, the head
// as smp initialises it (xavier_uniform weight, zero bias).
std::shared_ptr<models::UNetResNet50> make_unet(const ModelInit& init, uint64_t seed) {
  const models::ResNetVariant variant = models::parse_variant(init.variant);
  if (init.weights_path.empty()) {
    Generator init_gen(derive_seed(seed, "init"));
    return std::make_shared<models::UNetResNet50>(variant, 1, init_gen);
  }
  MEDTL_CHECK(init.info.variant == init.variant, "'", init.weights_path, "' is a ", init.info.variant,
              " ResNet-50 but the experiment's variant is ", init.variant);
  static std::map<std::string, std::shared_ptr<models::UNetResNet50>> reusable;
  auto& unet = reusable[init.variant];
  if (!unet) {
    Generator unused(0);
    unet = std::make_shared<models::UNetResNet50>(variant, 1, unused);
  }
  models::load_encoder_weights(init.weights_path, *unet);
  Generator decoder_gen(derive_seed(seed, "decoder"));
  copy_weights(models::UNetDecoder(decoder_gen), *unet->decoder());
  auto head = std::dynamic_pointer_cast<nn::Conv2d>(unet->submodule("segmentation_head.0"));
  MEDTL_CHECK(head != nullptr, "U-Net: segmentation_head.0 is not a Conv2d");
  nn::init::xavier_uniform_(head->weight(), decoder_gen);
  nn::init::zeros_(head->bias());
  return unet;
}

class SegmenterTask : public EpochTask {
 public:
  explicit SegmenterTask(const SegmenterJob& job) : job_(job) {
    const Protocol& p = job.protocol;
    model_ = make_unet(job.init, job.seed);
    model_->to(job.device);  // before the copies and the optimizer state, which follow its device
    best_ = std::make_shared<WeightsCopy>(*model_);
    optimizer_ = std::make_unique<nn::Adam>(model_->parameters(), p.lr);
    cosine_ = std::make_unique<nn::CosineEpoch>(*optimizer_, p.cosine_epochs > 0 ? p.cosine_epochs : p.max_epochs);
    scheduler_ = scheduler_ref(*cosine_, "CosineEpoch");
    loss_ = nn::parse_seg_loss(p.loss);
    const data::NormalizeSpec spec = normalize_spec(job.init.info, 255.0);
    const bool augment = p.augment == "paper";
    const int64_t n = job.data.train->size();
    train_ = std::make_unique<Loader>(job.data.train, seg_pipeline(p, spec, augment),
                                      loader_options(p.batch, true, derive_seed(job.seed, "loader"), p.workers,
                                                     n % p.batch == 1));
    val_ = std::make_unique<Loader>(job.data.val, seg_pipeline(p, spec, augment && p.augment_val),
                                    loader_options(p.eval_batch, false, derive_seed(job.seed, "val"), p.workers, false));
    test_ = std::make_unique<Loader>(job.data.test, seg_pipeline(p, spec, false),
                                     loader_options(p.eval_batch, false, 0, p.workers, false));
  }

  std::shared_ptr<nn::Module> model() override { return model_; }
  std::shared_ptr<nn::Module> best() override { return best_; }
  nn::Optimizer& optimizer() override { return *optimizer_; }
  const SchedulerRef& scheduler() override { return scheduler_; }

  double train_epoch(int64_t epoch, const std::function<void(int64_t, int64_t, double)>& on_batch) override {
    return train_one_epoch(*train_, epoch, job_.data.train->size(), *optimizer_, [&](const Batch& cpu_batch) {
      const Batch batch = to_device(cpu_batch, job_.device);
      // images (N, 3, S, S) -> logits (N, 1, S, S); masks (N, 1, S, S)
      return nn::segmentation_loss(loss_, model_->forward(batch.images), batch.masks);
    }, on_batch);
  }

  // The mean of the batch losses weighted by batch size (the paper's AverageMeter). The val loader
  // is keyed by the epoch, so an augmented validation set changes every epoch as in the paper.
  double val_loss(int64_t epoch) override {
    ag::NoGradGuard no_grad;
    val_->start_epoch(static_cast<uint64_t>(epoch));
    Batch batch;
    double sum = 0.0;
    int64_t count = 0;
    while (val_->next(batch)) {
      batch = to_device(batch, job_.device);
      sum += nn::segmentation_loss(loss_, model_->forward(batch.images), batch.masks).item() *
             static_cast<double>(batch.size());
      count += batch.size();
    }
    return sum / static_cast<double>(count);
  }

  void scheduler_step(double) override { cosine_->step(); }

  std::shared_ptr<models::UNetResNet50> unet() const { return model_; }

  void test(double* dice_global, double* dice_mean) {
    ag::NoGradGuard no_grad;
    model_->eval();
    test_->start_epoch(0);
    SegmentationMetrics metrics(0.5);
    Batch batch;
    while (test_->next(batch))
      metrics.add(ag::sigmoid(model_->forward(to_device(batch, job_.device).images)).to(Device::cpu()), batch.masks);
    *dice_global = metrics.global_dice();
    *dice_mean = metrics.mean_dice();
  }

 private:
  const SegmenterJob& job_;
  std::shared_ptr<models::UNetResNet50> model_;
  std::shared_ptr<WeightsCopy> best_;
  std::unique_ptr<nn::Adam> optimizer_;
  std::unique_ptr<nn::CosineEpoch> cosine_;
  SchedulerRef scheduler_;
  nn::SegLoss loss_ = nn::SegLoss::Dice;
  std::unique_ptr<Loader> train_, val_, test_;
};

}  // namespace

std::shared_ptr<data::Pipeline> scaled_segmentation_augmentation(int64_t size) {
  using data::PixelRange;
  const double f = static_cast<double>(size) / 224.0;
  const PixelRange range = PixelRange::uint8_image();
  auto p = std::make_shared<data::Pipeline>();
  p->emplace<data::OneOf>(std::vector<std::pair<data::TransformPtr, double>>{
                              {std::make_shared<data::RandomBrightnessContrast>(0.2, 0.2, 1.0, range), 0.5},
                              {std::make_shared<data::RandomGamma>(std::make_pair(80.0, 120.0), 1.0, range), 0.5}},
                          0.3);
  p->emplace<data::OneOf>(std::vector<std::pair<data::TransformPtr, double>>{
                              {std::make_shared<data::ElasticTransform>(120.0 * f * f, 6.0 * f, 3.6 * f, 1.0), 0.5},
                              {std::make_shared<data::GridDistortion>(5, 0.3, 1.0), 0.5},
                              {std::make_shared<data::OpticalDistortion>(2.0, 0.5, 1.0), 0.5}},
                          0.3);
  const int64_t low = std::min<int64_t>(size, static_cast<int64_t>(std::lround(156.0 * f)));
  p->emplace<data::RandomSizedCrop>(std::pair<int64_t, int64_t>(low, size), size, size, 1.0, 0.25);
  return p;
}

SegmenterResult train_segmenter(const SegmenterJob& job, const LoopSettings& settings, const ProgressFn& progress) {
  SegmenterTask task(job);
  SegmenterResult result;
  result.loop = run_training_loop(task, settings, progress);
  if (progress)
    progress({ProgressEvent::Kind::Phase, result.loop.epochs, settings.max_epochs, 0, 0, 0, 0, 0, false, "testing"});
  task.test(&result.dice_global, &result.dice_mean);
  result.model = task.unet();
  return result;
}

}  // namespace medtl::experiments::bench
