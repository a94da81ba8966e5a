// Tests of the benchmark's training engines on small synthetic data: a NaN or exploding loss ends a
// run with TrainingDiverged (which the grid records), a run interrupted after a checkpoint resumes
// to bit-identical results, early stopping keeps the best-validation epoch, the segmentation
// engine trains and scores the U-Net, and both engines on a (stand-in) GPU give the CPU's bits.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "experiments/benchmark_config.h"
#include "experiments/benchmark_grid.h"
#include "experiments/train_classifier.h"
#include "experiments/train_segmenter.h"
#include "models/resnet.h"
#include "models/weights.h"
#include "tensor/determinism.h"
#include "tensor/error.h"
#include "tensor/parallel.h"
#include "tests/host_device_backend.h"

namespace medtl::experiments::bench {
namespace {

namespace fs = std::filesystem;

// n images (3, 40, 40) on 0..255, Philox-keyed by index; label 1 when the image is bright (learnable),
// mask = the pixels above 127.
class Synthetic : public data::Dataset {
 public:
  using Dataset::get;
  Synthetic(int64_t n, uint64_t seed, bool masks) : n_(n), seed_(seed), masks_(masks) {}
  int64_t size() const override { return n_; }
  data::Sample get(int64_t i, const data::SampleKey&) const override {
    check_index(i);
    data::Sample s;
    const bool bright = i % 2 == 1;
    s.image = uniform_keyed({3, 40, 40}, seed_, static_cast<uint64_t>(i), bright ? 60.0 : 0.0,
                            bright ? 255.0 : 195.0, DType::Float32);
    s.index = i;
    s.source = "synthetic/" + std::to_string(i);
    if (masks_) {
      Tensor gray = s.image.narrow(0, 0, 1).contiguous();
      s.mask = empty({1, 40, 40});
      for (int64_t p = 0; p < 1600; ++p) s.mask.data<float>()[p] = gray.data<float>()[p] > 127.0f ? 1.0f : 0.0f;
    } else {
      s.label = from_vector<float>({bright ? 1.0f : 0.0f}, {1});
      s.class_index = bright ? 1 : 0;
    }
    return s;
  }
  data::TargetKind target_kind() const override { return masks_ ? data::TargetKind::Mask : data::TargetKind::Binary; }
  std::vector<std::string> class_names() const override { return {masks_ ? "foreground" : "bright"}; }
  std::string source(int64_t i) const override { return "synthetic/" + std::to_string(i); }
  std::string name() const override { return "synthetic"; }

 private:
  int64_t n_;
  uint64_t seed_;
  bool masks_;
};

SplitData synthetic_split(bool masks) {
  SplitData d;
  d.train = std::make_shared<Synthetic>(16, 1, masks);
  d.val = std::make_shared<Synthetic>(8, 2, masks);
  d.test = std::make_shared<Synthetic>(8, 3, masks);
  d.kind = d.train->target_kind();
  d.outputs = 1;
  d.class_names = d.train->class_names();
  return d;
}

// A random keras ResNet-50 saved as a weight file once: jobs start from it, so each run reuses one
// network object instead of drawing a fresh random init (seconds per ResNet-50 on a 2-core machine).
const ModelInit& file_init() {
  static const ModelInit init = [] {
    ModelInit i;
    i.variant = "keras";
    i.info = preprocess_info("caffe", "keras");
    i.info.source = "benchmark_train_test";
    i.weights_path = ::testing::TempDir() + "/random_keras_resnet50.h5";
    Generator gen(3);
    models::ResNet50 model(models::ResNetVariant::Keras, 0, gen);
    models::save_weights(i.weights_path, model, i.info);
    return i;
  }();
  return init;
}

ClassifierJob classifier_job() {
  ClassifierJob job;
  job.protocol.task = "classification";
  job.protocol.image_size = 32, job.protocol.resize = 37, job.protocol.batch = 8, job.protocol.eval_batch = 8;
  job.protocol.lr = 2e-4, job.protocol.lr_patience = 0, job.protocol.workers = 0;
  job.data = synthetic_split(false);
  job.init = file_init();
  job.seed = 42;
  return job;
}

LoopSettings settings(int64_t epochs, const std::string& ckpt) {
  LoopSettings s;
  s.max_epochs = epochs, s.patience = epochs, s.checkpoint_path = ckpt, s.checkpoint_seconds = 0;
  s.identity = "test job";
  return s;
}

struct Interrupt {};

class BenchmarkTrain : public ::testing::Test {
 protected:
  void SetUp() override {
    set_num_threads(2);
    set_deterministic(true);
    set_deterministic_conv_chunk(8);
  }
};

TEST_F(BenchmarkTrain, DivergedLossEndsTheRunWithAClearMessage) {
  ClassifierJob job = classifier_job();
  LoopSettings s = settings(2, "");
  s.debug_nan_at_step = 2;  // epoch 1, batch 2
  try {
    train_classifier(job, s, nullptr);
    FAIL() << "no TrainingDiverged";
  } catch (const TrainingDiverged& e) {
    EXPECT_NE(std::string(e.what()).find("epoch 1 batch 2: loss = nan (non-finite)"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("diverged"), std::string::npos);
  }
  EXPECT_THROW(check_loss(25.0, 20.0, "x"), TrainingDiverged);
  EXPECT_THROW(check_loss(INFINITY, 20.0, "x"), TrainingDiverged);
  EXPECT_NO_THROW(check_loss(0.69, 20.0, "x"));
}

TEST_F(BenchmarkTrain, ResumedRunIsBitIdenticalToAnUninterruptedOne) {
  const ClassifierJob job = classifier_job();
  const ClassifierResult reference = train_classifier(job, settings(3, ""), nullptr);
  ASSERT_EQ(reference.loop.epochs, 3);
  EXPECT_GE(reference.auc.mean, 0.0);

  const std::string dir = ::testing::TempDir() + "/resume";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string ckpt = dir + "/checkpoint.h5";
  // Interrupted in epoch 3, after the checkpoint of epoch 2 was written.
  auto interrupt = [](const ProgressEvent& e) {
    if (e.kind == ProgressEvent::Kind::Batch && e.epoch == 2) throw Interrupt{};
  };
  EXPECT_THROW(train_classifier(job, settings(3, ckpt), interrupt), Interrupt);
  ASSERT_TRUE(fs::exists(ckpt));
  const ClassifierResult resumed = train_classifier(job, settings(3, ckpt), nullptr);
  EXPECT_EQ(resumed.loop.resumed_from, 2);
  EXPECT_EQ(resumed.loop.val_losses, reference.loop.val_losses);
  EXPECT_EQ(resumed.loop.train_losses, reference.loop.train_losses);
  EXPECT_EQ(resumed.loop.best_epoch, reference.loop.best_epoch);
  EXPECT_EQ(resumed.auc.mean, reference.auc.mean);  // bit-identical, not approximately equal

  // A checkpoint of another identity is ignored (the run starts over).
  LoopSettings other = settings(3, ckpt);
  other.identity = "another config";
  const ClassifierResult fresh = train_classifier(job, other, nullptr);
  EXPECT_EQ(fresh.loop.resumed_from, -1);
  EXPECT_EQ(fresh.auc.mean, reference.auc.mean);
}

TEST_F(BenchmarkTrain, EarlyStoppingKeepsTheBestValidationEpoch) {
  ClassifierJob job = classifier_job();
  job.protocol.lr = 0.05;  // a large step makes the validation loss worse after the first epoch
  LoopSettings s = settings(6, "");
  s.patience = 1;
  s.max_loss = 1e9;
  const ClassifierResult r = train_classifier(job, s, nullptr);
  ASSERT_FALSE(r.loop.val_losses.empty());
  const auto best = std::min_element(r.loop.val_losses.begin(), r.loop.val_losses.end());
  EXPECT_EQ(r.loop.best_epoch, best - r.loop.val_losses.begin());
  EXPECT_EQ(r.loop.best_val, *best);
  if (r.loop.epochs < 6) {
    EXPECT_NE(r.loop.stop_reason.find("early stopping"), std::string::npos);
  }
}

TEST_F(BenchmarkTrain, SegmentationEngineTrainsAndScores) {
  SegmenterJob job;
  job.protocol.task = "segmentation";
  job.protocol.image_size = 32, job.protocol.batch = 4, job.protocol.eval_batch = 4, job.protocol.lr = 1e-3;
  job.protocol.workers = 0;
  job.data = synthetic_split(true);
  job.init = file_init();
  job.seed = 7;
  const SegmenterResult r = train_segmenter(job, settings(2, ""), nullptr);
  EXPECT_EQ(r.loop.epochs, 2);
  EXPECT_TRUE(std::isfinite(r.loop.best_val));
  EXPECT_GE(r.dice_global, 0.0);
  EXPECT_LE(r.dice_global, 1.0);
  EXPECT_GE(r.dice_mean, 0.0);
  EXPECT_LE(r.dice_mean, 1.0);
  // The paper's augmentation, scaled: at 224 px it is the paper's parameters.
  EXPECT_NE(scaled_segmentation_augmentation(224)->describe().find("156"), std::string::npos);
}

// Both engines with job.device on a GPU -- here the host stand-in (tests/host_device_backend.h),
// whose ops are the CPU's -- move the model, every batch and the optimizer state there, resume
// from a checkpoint written from device tensors, and bring predictions back for the metrics: the
// same losses, AUC and Dice as on the CPU, bit for bit.
TEST_F(BenchmarkTrain, EnginesOnADeviceGiveTheCpuBits) {
  const ClassifierJob cpu_job = classifier_job();
  const ClassifierResult cpu = train_classifier(cpu_job, settings(2, ""), nullptr);
  SegmenterJob seg_job;
  seg_job.protocol.task = "segmentation";
  seg_job.protocol.image_size = 32, seg_job.protocol.batch = 4, seg_job.protocol.eval_batch = 4;
  seg_job.protocol.workers = 0;
  seg_job.data = synthetic_split(true);
  seg_job.init = file_init();
  seg_job.seed = 7;
  const SegmenterResult cpu_seg = train_segmenter(seg_job, settings(1, ""), nullptr);

  testing::HostDeviceBackend gpu;
  ClassifierJob job = cpu_job;
  job.device = Device::cuda(0);
  const std::string dir = ::testing::TempDir() + "/device_resume";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string ckpt = dir + "/checkpoint.h5";
  auto interrupt = [](const ProgressEvent& e) {
    if (e.kind == ProgressEvent::Kind::Batch && e.epoch == 1) throw Interrupt{};
  };
  EXPECT_THROW(train_classifier(job, settings(2, ckpt), interrupt), Interrupt);
  const ClassifierResult on_device = train_classifier(job, settings(2, ckpt), nullptr);
  EXPECT_EQ(on_device.loop.resumed_from, 1);
  EXPECT_EQ(on_device.model->device(), Device::cuda(0));
  EXPECT_EQ(on_device.loop.train_losses, cpu.loop.train_losses);
  EXPECT_EQ(on_device.loop.val_losses, cpu.loop.val_losses);
  EXPECT_EQ(on_device.auc.mean, cpu.auc.mean);
  EXPECT_GT(gpu.calls().count("conv2d_backward_weight"), 0u);
  EXPECT_GT(gpu.calls().count("adam_step_"), 0u);

  seg_job.device = Device::cuda(0);
  const SegmenterResult seg = train_segmenter(seg_job, settings(1, ""), nullptr);
  EXPECT_EQ(seg.loop.val_losses, cpu_seg.loop.val_losses);
  EXPECT_EQ(seg.dice_global, cpu_seg.dice_global);
  EXPECT_EQ(seg.dice_mean, cpu_seg.dice_mean);
  EXPECT_GT(gpu.calls().count("upsample_nearest2x_backward"), 0u);

  // The engines keep one network per layout across runs: put them back on the CPU before the
  // stand-in goes, for the tests that follow.
  on_device.model->to(Device::cpu());
  seg.model->to(Device::cpu());
}

}  // namespace
}  // namespace medtl::experiments::bench
