// A short U-Net fine-tune on the ISBI 2012 EM membrane slices (../shared/data/isbi2012-em-membrane)
// from a pretrained ResNet-50 encoder file: a measurement that the whole segmentation stack learns
// (the paper's protocol, shortened to minutes on a CPU), not a unit test.
//
//   bazel run //experiments:isbi_finetune -- [--data=DIR] [--weights=FILE] [--epochs=10] [--crop=256]
//       [--crops_per_slice=1] [--batch=4] [--lr=1e-3] [--loss=dice|bce|bce_dice] [--train=24]
//       [--threads=2] [--seed=0] [--save=unet.h5]
//
// Data: 30 labelled 512x512 slices. Foreground (mask 1) is the MEMBRANE (label 0): the structure
// the challenge segments, and the harder class (about 22% of pixels; the cell interior is 78%, so
// predicting "everything" would already score Dice 0.88 on it). Slices 0..train-1 train, the rest
// (default 24..29) validate.
// Input: gray replicated to 3 channels, normalised as the weight file's attributes say (the Keras
// ImageNet file: BGR, caffe mean, values on 0..255).
// Training: random crop x crop windows (crops_per_slice per slice and epoch) with a random
// horizontal flip, keyed by (seed, epoch, index); Adam with the paper's per-epoch cosine schedule
// (nn::CosineEpoch, E = this run's epochs); train-mode batch norm.
// Validation: whole 512x512 slices in eval mode; Dice and IoU at 0.5, global and per-image mean
// (experiments/seg_metrics.h), printed before training (ImageNet encoder, random decoder) and after
// every epoch.
#include <chrono>
#include <cstdio>
#include <iostream>

#include "autograd/graph.h"
#include "data/loader.h"
#include "data/segmentation.h"
#include "data/transforms.h"
#include "experiments/flags.h"
#include "experiments/seg_metrics.h"
#include "experiments/segmenter.h"
#include "nn/optim.h"
#include "nn/scheduler.h"
#include "nn/seg_loss.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/parallel.h"

namespace medtl::experiments {
namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

struct Slices {
  Tensor images;  // (N, 3, H, W) normalised
  Tensor masks;   // (N, 1, H, W) in {0, 1}
};

Slices load_slices(const data::Dataset& dataset, int64_t begin, int64_t end, const data::NormalizeSpec& spec) {
  Slices s;
  for (int64_t i = begin; i < end; ++i) {
    const data::Sample sample = dataset.get(i);
    const Tensor image = data::Normalize::normalize(sample.image, spec);
    if (!s.images.defined()) {
      s.images = empty({end - begin, image.size(0), image.size(1), image.size(2)});
      s.masks = empty({end - begin, 1, image.size(1), image.size(2)});
    }
    MEDTL_CHECK(image.shape() == s.images.select(0, 0).shape(), dataset.source(i), " is ", shape_str(image.shape()),
                ", the other slices ", shape_str(s.images.select(0, 0).shape()));
    ops::copy_(s.images.select(0, i - begin), image);
    ops::copy_(s.masks.select(0, i - begin), sample.mask);
  }
  return s;
}

struct Scores {
  double global_dice, mean_dice, global_iou, mean_iou, loss, seconds;
};

Scores evaluate(models::UNetResNet50& model, const Slices& val, nn::SegLoss loss_kind) {
  const double t0 = now_s();
  const Tensor logits = predict_logits(model, val.images, 2);
  SegmentationMetrics metrics;
  metrics.add(ops::sigmoid(logits), val.masks);
  const double loss = nn::segmentation_loss(loss_kind, logits, val.masks).item();
  return {metrics.global_dice(), metrics.mean_dice(), metrics.global_iou(), metrics.mean_iou(), loss, now_s() - t0};
}

void print_scores(const std::string& when, const Scores& s) {
  std::printf("%-22s val loss %.4f | Dice global %.4f mean %.4f | IoU global %.4f mean %.4f  (%.1f s)\n",
              when.c_str(), s.loss, s.global_dice, s.mean_dice, s.global_iou, s.mean_iou, s.seconds);
  std::fflush(stdout);
}

int run(int argc, char** argv) {
  const Flags flags(
      argc, argv,
      {{"data", "ISBI 2012 folder (default ../shared/data/isbi2012-em-membrane next to the checkout)"},
       {"weights", "ResNet-50 weight file for the encoder (default <cache>/resnet50_keras_imagenet.h5)"},
       {"epochs", "passes over the training slices (default 10)"},
       {"crop", "training crop size, a multiple of 32 (default 256)"},
       {"crops_per_slice", "random crops of each training slice per epoch (default 1)"},
       {"batch", "crops per step (default 4)"},
       {"lr", "Adam learning rate (default 1e-3, the paper's)"},
       {"loss", "dice (default, the paper's for lung and pneumothorax), bce or bce_dice"},
       {"train", "slices 0..train-1 train, the rest validate (default 24)"},
       {"threads", "CPU threads (default 2)"},
       {"seed", "seed of the decoder initialisation, crops and flips (default 0)"},
       {"save", "write the fine-tuned U-Net here (HDF5, architecture unet-resnet50)"}},
      "usage: isbi_finetune [flags]");
  if (flags.has("help")) {
    std::cout << flags.help();
    return 0;
  }
  set_num_threads(static_cast<int>(flags.get_int("threads", 2)));
  const std::string data_dir = user_path(flags.get("data", "../shared/data/isbi2012-em-membrane"));
  const std::string weights = user_path(flags.get("weights", models::weights_cache_dir() + "/resnet50_keras_imagenet.h5"));
  const int64_t epochs = flags.get_int("epochs", 10), crop = flags.get_int("crop", 256);
  const int64_t crops_per_slice = flags.get_int("crops_per_slice", 1), batch = flags.get_int("batch", 4);
  const int64_t n_train = flags.get_int("train", 24);
  const double lr = flags.get_double("lr", 1e-3);
  const uint64_t seed = static_cast<uint64_t>(flags.get_int("seed", 0));
  const nn::SegLoss loss_kind = nn::parse_seg_loss(flags.get("loss", "dice"));
  MEDTL_CHECK(epochs >= 0 && crops_per_slice > 0 && batch > 0, "--epochs, --crops_per_slice and --batch must be positive");
  MEDTL_CHECK(crop > 0 && crop % 32 == 0, "--crop=", crop, ": must be a positive multiple of 32");

  // The data: membrane = foreground.
  data::ImageOptions options;
  options.channels = data::ChannelPolicy::RGB;
  const auto dataset = data::isbi2012(data_dir, options, /*membrane_foreground=*/true);
  MEDTL_CHECK(n_train > 0 && n_train < dataset->size(), "--train=", n_train, ": must leave at least one of the ",
              dataset->size(), " slices for validation");
  Generator gen(seed);
  models::LoadedUNet loaded = models::load_unet(weights, 1, gen);
  MEDTL_CHECK(loaded.decoder_initialised, "'", weights, "' is a whole U-Net; isbi_finetune starts from a ResNet-50 file");
  models::UNetResNet50& model = *loaded.model;
  const data::NormalizeSpec spec = normalize_spec(loaded.info);
  const Slices train = load_slices(*dataset, 0, n_train, spec);
  const Slices val = load_slices(*dataset, n_train, dataset->size(), spec);
  MEDTL_CHECK(crop <= train.images.size(2) && crop <= train.images.size(3), "--crop=", crop, " is larger than the ",
              shape_str(train.images.shape()), " slices");
  double fg = 0.0;
  for (double v : val.masks.to_vector<float>()) fg += v;
  fg /= static_cast<double>(val.masks.numel());
  std::printf("ISBI 2012: %lld train / %lld val slices %s, foreground = %s (%.1f%% of val pixels; predicting all "
              "foreground gives global Dice %.4f)\n",
              static_cast<long long>(n_train), static_cast<long long>(dataset->size() - n_train),
              shape_str(val.images.select(0, 0).shape()).c_str(), dataset->class_names()[1].c_str(), 100.0 * fg,
              2.0 * fg / (1.0 + fg));
  std::printf("encoder: %s (%s, %zu tensors loaded, skipped: %zu); decoder and head: random (seed %llu)\n",
              weights.c_str(), loaded.info.variant.c_str(), loaded.report.loaded.size(), loaded.report.skipped.size(),
              static_cast<unsigned long long>(seed));
  std::printf("training: %lld epochs x %lld crops of %lldx%lld, batch %lld, Adam lr %g, loss %s, %d threads\n",
              static_cast<long long>(epochs), static_cast<long long>(n_train * crops_per_slice),
              static_cast<long long>(crop), static_cast<long long>(crop), static_cast<long long>(batch), lr,
              nn::seg_loss_name(loss_kind), get_num_threads());

  print_scores("before fine-tuning:", evaluate(model, val, loss_kind));
  nn::Adam adam(model.parameters(), lr);
  nn::CosineEpoch schedule(adam, std::max<int64_t>(epochs, 1));
  Scores best{};
  int64_t best_epoch = 0;
  const data::RandomHorizontalFlip flip(0.5);
  const int64_t per_epoch = n_train * crops_per_slice, H = train.images.size(2), W = train.images.size(3);
  for (int64_t epoch = 0; epoch < epochs; ++epoch) {
    const double t0 = now_s();
    const double epoch_lr = adam.lr();
    const std::vector<int64_t> order = data::shuffled_indices(per_epoch, seed, static_cast<uint64_t>(epoch));
    model.train();
    double loss_sum = 0.0;
    int64_t steps = 0;
    for (int64_t start = 0; start < per_epoch; start += batch) {
      const int64_t count = std::min(batch, per_epoch - start);
      Tensor x = empty({count, 3, crop, crop}), y = empty({count, 1, crop, crop});
      for (int64_t b = 0; b < count; ++b) {
        const int64_t item = order[static_cast<size_t>(start + b)], slice = item % n_train;
        data::SampleRng rng(seed, static_cast<uint64_t>(epoch), item);
        const int64_t top = rng.integer(0, H - crop + 1), left = rng.integer(0, W - crop + 1);
        data::ImageMask window{train.images.select(0, slice).narrow(1, top, crop).narrow(2, left, crop),
                               train.masks.select(0, slice).narrow(1, top, crop).narrow(2, left, crop)};
        flip.apply(window, rng);
        ops::copy_(x.select(0, b), window.image);
        ops::copy_(y.select(0, b), window.mask);
      }
      adam.zero_grad();
      const Tensor loss = nn::segmentation_loss(loss_kind, model.forward(x), y);
      ag::backward(loss);
      adam.step();
      loss_sum += loss.item();
      ++steps;
    }
    const double train_seconds = now_s() - t0;
    std::printf("epoch %2lld: lr %.3g, train loss %.4f (%lld steps, %.1f s, %.2f img/s)\n",
                static_cast<long long>(epoch + 1), epoch_lr, loss_sum / static_cast<double>(steps),
                static_cast<long long>(steps), train_seconds, static_cast<double>(per_epoch) / train_seconds);
    const Scores scores = evaluate(model, val, loss_kind);
    print_scores("  after epoch " + std::to_string(epoch + 1) + ":", scores);
    if (best_epoch == 0 || scores.loss < best.loss) best = scores, best_epoch = epoch + 1;
    schedule.step(epoch);  // after epoch e, as the paper: epochs 0 and 1 both run at lr0
  }
  // The paper keeps the checkpoint with the lowest validation loss; here the validation slices are
  // also the ones reported on (ISBI has no labelled test set), so that choice is optimistic.
  if (best_epoch > 0) print_scores("lowest val loss (epoch " + std::to_string(best_epoch) + "):", best);
  if (flags.has("save")) {
    const std::string path = user_path(flags.get("save"));
    models::save_weights(path, model,
                         models::unet_weight_info(models::read_weight_info(weights), 1,
                                                  "isbi_finetune: ISBI 2012 membrane (foreground = membrane), encoder "
                                                  "from " + weights));
    std::printf("saved %s\n", path.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace medtl::experiments

int main(int argc, char** argv) {
  try {
    return medtl::experiments::run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "isbi_finetune: error: " << e.what() << std::endl;
    return 1;
  }
}
