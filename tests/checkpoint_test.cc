// Checkpoints (experiments/checkpoint.h) on a small network: a save/load round trip continues
// training bit for bit (model, buffers, optimizer, scheduler, Dropout stream, generators, series,
// loader position); saving is atomic; loading is strict. And the generic exact-dtype HDF5 files
// underneath (models/weights.h: write_hdf5_file, read_hdf5_attributes).
// The ResNet-50, new-process version: tests/reproducibility_test.cc.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <memory>
#include <string>
#include <thread>

#include "autograd/graph.h"
#include "experiments/checkpoint.h"
#include "models/weights.h"
#include "nn/layers.h"
#include "nn/loss.h"
#include "nn/optim.h"
#include "nn/scheduler.h"
#include "tensor/ops/copy.h"
#include "tests/test_util.h"

namespace medtl {
namespace {

using experiments::CheckpointState;
using experiments::TrainingObjects;
using testing::tensors_identical;

std::string tmp_path(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// conv -> BN -> ReLU -> Dropout -> pool -> fc: parameters, BN buffers (incl. int64), a Dropout.
class Small : public nn::Module {
 public:
  explicit Small(uint64_t seed, int64_t out = 3) {
    Generator gen(seed);
    conv_ = register_module("conv", std::make_shared<nn::Conv2d>(3, 8, 3, gen, 1, 1));
    bn_ = register_module("bn", std::make_shared<nn::BatchNorm2d>(8));
    relu_ = register_module("relu", std::make_shared<nn::ReLU>());
    drop_ = register_module("drop", std::make_shared<nn::Dropout>(0.25, 77));
    pool_ = register_module("pool", std::make_shared<nn::AdaptiveAvgPool2d>(1));
    flat_ = register_module("flat", std::make_shared<nn::Flatten>());
    fc_ = register_module("fc", std::make_shared<nn::Linear>(8, out, gen));
  }
  Tensor forward(const Tensor& x) override {
    return fc_->forward(flat_->forward(pool_->forward(drop_->forward(relu_->forward(bn_->forward(conv_->forward(x)))))));
  }
  std::string type_name() const override { return "Small"; }
  nn::Dropout& dropout() { return *drop_; }

 private:
  std::shared_ptr<nn::Conv2d> conv_;
  std::shared_ptr<nn::BatchNorm2d> bn_;
  std::shared_ptr<nn::ReLU> relu_;
  std::shared_ptr<nn::Dropout> drop_;
  std::shared_ptr<nn::AdaptiveAvgPool2d> pool_;
  std::shared_ptr<nn::Flatten> flat_;
  std::shared_ptr<nn::Linear> fc_;
};

// A training setup: model, optimizer (SGD with momentum or Adam), scheduler, a data generator.
struct Trainer {
  std::shared_ptr<Small> model;
  std::unique_ptr<nn::Optimizer> opt;
  std::unique_ptr<nn::StepLR> step_lr;
  std::unique_ptr<nn::CosineEpoch> cosine;
  experiments::SchedulerRef sched;
  Generator data{5};
  int64_t step = 0;

  Trainer(uint64_t init_seed, bool adam) : model(std::make_shared<Small>(init_seed)) {
    model->train();
    if (adam) {
      opt = std::make_unique<nn::Adam>(model->parameters(), 1e-2);
      cosine = std::make_unique<nn::CosineEpoch>(*opt, 4);
      sched = experiments::scheduler_ref(*cosine, "CosineEpoch");
    } else {
      opt = std::make_unique<nn::SGD>(model->parameters(), 0.1, 0.9, 0.0, 1e-4);
      step_lr = std::make_unique<nn::StepLR>(*opt, 1, 0.5);
      sched = experiments::scheduler_ref(*step_lr, "StepLR");
    }
  }
  TrainingObjects objects() { return {model.get(), opt.get(), &sched}; }
  void train(int steps) {
    for (int i = 0; i < steps; ++i) {
      const Tensor x = uniform({4, 3, 6, 6}, data, -1, 1), t = uniform({4, 3}, data, 0, 1);
      ag::backward(nn::binary_cross_entropy_with_logits(model->forward(x), t));
      opt->step();
      opt->zero_grad();
      if (++step % 2 == 0) {  // an "epoch" of two steps
        if (step_lr) step_lr->step();
        if (cosine) cosine->step();
      }
    }
  }
  CheckpointState state() const {
    CheckpointState s;
    s.config = "small = 1\n";
    s.epoch = step / 2;
    s.step_in_epoch = step % 2;
    s.global_step = step;
    s.generators = {{"data", data}};
    s.series = {{"losses", {0.5, 0.25, -1.0 / 3.0}}, {"empty", {}}};
    return s;
  }
};

void expect_same_training_state(Trainer& a, Trainer& b) {
  const auto sa = a.model->state_dict(), sb = b.model->state_dict();
  ASSERT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size(); ++i) {
    EXPECT_EQ(sa[i].first, sb[i].first);
    EXPECT_TRUE(tensors_identical(sa[i].second, sb[i].second)) << sa[i].first;
  }
  const auto oa = a.opt->export_state(), ob = b.opt->export_state();
  ASSERT_EQ(oa.size(), ob.size());
  for (size_t i = 0; i < oa.size(); ++i) {
    EXPECT_EQ(oa[i].first, ob[i].first);
    EXPECT_TRUE(tensors_identical(oa[i].second, ob[i].second)) << oa[i].first;
  }
  EXPECT_EQ(a.sched.export_state(), b.sched.export_state());
  EXPECT_EQ(a.model->dropout().stream(), b.model->dropout().stream());
}

class CheckpointRoundTrip : public ::testing::TestWithParam<bool> {};

TEST_P(CheckpointRoundTrip, ContinuesBitForBit) {
  const bool adam = GetParam();
  const std::string path = tmp_path(adam ? "adam.ckpt.h5" : "sgd.ckpt.h5");
  Trainer a(1, adam);
  a.train(3);  // mid-"epoch": step_in_epoch 1
  experiments::save_checkpoint(path, a.objects(), a.state());
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));

  Trainer b(2, adam);  // another init: everything must come from the file
  const CheckpointState s = experiments::load_checkpoint(path, b.objects());
  EXPECT_EQ(s.config, "small = 1\n");
  EXPECT_EQ(s.epoch, 1);
  EXPECT_EQ(s.step_in_epoch, 1);
  EXPECT_EQ(s.global_step, 3);
  ASSERT_EQ(s.generators.size(), 1u);
  EXPECT_EQ(s.generators[0].first, "data");
  EXPECT_EQ(s.generators[0].second.seed(), a.data.seed());
  EXPECT_EQ(s.generators[0].second.next_stream(), a.data.next_stream());
  ASSERT_EQ(s.series.size(), 2u);
  for (const auto& [name, values] : s.series) {
    if (name == "losses") EXPECT_EQ(values, std::vector<double>({0.5, 0.25, -1.0 / 3.0}));
    else EXPECT_TRUE(name == "empty" && values.empty()) << name;
  }
  expect_same_training_state(a, b);
  EXPECT_EQ(b.opt->lr(), a.opt->lr());

  // Continue both: identical bits after three more steps (crossing a scheduler step).
  b.data = s.generators[0].second;
  b.step = s.global_step;
  a.train(3);
  b.train(3);
  expect_same_training_state(a, b);
}

INSTANTIATE_TEST_SUITE_P(Optimizers, CheckpointRoundTrip, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) { return info.param ? "Adam" : "SGD"; });

// A buffer no checkpoint can hold exactly (bool) makes saving fail.
class WithBoolBuffer : public Small {
 public:
  WithBoolBuffer() : Small(1) { register_buffer("mask", zeros({3}, DType::Bool)); }
};

TEST(CheckpointSave, IsAtomicAndReplacesTheOldFile) {
  const std::string path = tmp_path("atomic.ckpt.h5");
  Trainer a(1, false);
  a.train(1);
  experiments::save_checkpoint(path, a.objects(), a.state());
  const auto first = models::read_hdf5_tensors(path);
  a.train(1);
  experiments::save_checkpoint(path, a.objects(), a.state());  // replaces it
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  EXPECT_EQ(models::read_hdf5_attributes(path).ints.at("global_step"), 2);

  // The same state saved again a second later: a byte-identical file (HDF5 keeps no timestamps).
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  experiments::save_checkpoint(path + ".again", a.objects(), a.state());
  EXPECT_EQ(file_bytes(path + ".again"), file_bytes(path));

  // A save that fails half-way leaves the previous checkpoint as it was, and no temporary file.
  WithBoolBuffer bad;
  EXPECT_ERROR_CONTAINS(experiments::save_checkpoint(path, {&bad, nullptr, nullptr}, a.state()),
                        "only float32, float64 and int64");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  EXPECT_EQ(models::read_hdf5_attributes(path).ints.at("global_step"), 2);
  Trainer b(3, false);
  experiments::load_checkpoint(path, b.objects());
  expect_same_training_state(a, b);
}

TEST(CheckpointLoad, IsStrictAndChangesNothingOnError) {
  const std::string path = tmp_path("strict.ckpt.h5");
  Trainer a(1, true);
  a.train(2);
  experiments::save_checkpoint(path, a.objects(), a.state());

  // Another architecture (fc 8 -> 5): the mismatch is named, and the model is untouched.
  auto other = std::make_shared<Small>(4, 5);
  const Tensor before = other->state_dict().back().second.clone();
  nn::Adam other_opt(other->parameters(), 1e-2);
  EXPECT_ERROR_CONTAINS(experiments::load_checkpoint(path, {other.get(), &other_opt, nullptr}), "fc.weight");
  EXPECT_TRUE(tensors_identical(other->state_dict().back().second, before));

  // Another optimizer or scheduler.
  Trainer sgd(1, false);
  EXPECT_ERROR_CONTAINS(experiments::load_checkpoint(path, sgd.objects()), "the run uses SGD");
  Trainer adam(1, true);
  EXPECT_ERROR_CONTAINS(experiments::load_checkpoint(path, {adam.model.get(), adam.opt.get(), nullptr}),
                        "scheduler CosineEpoch");
  // Not there, or not a checkpoint.
  EXPECT_ERROR_CONTAINS(experiments::load_checkpoint(tmp_path("nope.h5"), adam.objects()), "checkpoint not found");
  const std::string weights = tmp_path("weights.h5");
  models::save_weights(weights, *adam.model, models::WeightFileInfo::torchvision("small", 3, "test"));
  EXPECT_ERROR_CONTAINS(experiments::load_checkpoint(weights, adam.objects()), "not a medtl checkpoint");
}

TEST(GenericHdf5, TensorsAndAttributesRoundTripExactly) {
  const std::string path = tmp_path("generic.h5");
  nn::NamedTensors tensors = {
      {"a.f32", uniform_keyed({2, 3}, 1, 0, -1, 1, DType::Float32)},
      {"a.f64", uniform_keyed({5}, 1, 1, -1, 1, DType::Float64)},
      {"b.i64", from_vector<int64_t>({-3, 0, std::numeric_limits<int64_t>::max()}, {3})},
      {"scalar", scalar_tensor(1.0 / 3.0, DType::Float64)},
      {"empty", zeros({0}, DType::Float64)},
  };
  models::Hdf5Attributes attrs;
  attrs.strings["text"] = "line one\nline two: µ, ü";
  attrs.ints["negative"] = -42;
  attrs.uints["max"] = std::numeric_limits<uint64_t>::max();
  attrs.doubles["third"] = 1.0 / 3.0;
  models::write_hdf5_file(path, tensors, attrs);

  const auto back = models::read_hdf5_tensors(path);
  ASSERT_EQ(back.size(), tensors.size());
  for (size_t i = 0; i < back.size(); ++i) {
    EXPECT_EQ(back[i].first, tensors[i].first);  // creation order kept
    EXPECT_TRUE(tensors_identical(back[i].second, tensors[i].second)) << back[i].first;
  }
  const models::Hdf5Attributes got = models::read_hdf5_attributes(path);
  EXPECT_EQ(got.strings, attrs.strings);
  EXPECT_EQ(got.ints, attrs.ints);
  EXPECT_EQ(got.uints, attrs.uints);
  EXPECT_EQ(got.doubles, attrs.doubles);

  EXPECT_ERROR_CONTAINS(models::write_hdf5_file(path, {{"x", zeros({2}, DType::Int32)}}, {}), "int32");
  EXPECT_ERROR_CONTAINS(models::write_hdf5_file(path, {{"x.y", zeros({2})}, {"x", zeros({2})}}, {}),
                        "both a tensor and a group");
  EXPECT_ERROR_CONTAINS(models::write_hdf5_file(path, {{"x", zeros({2})}, {"x.y", zeros({2})}}, {}),
                        "both a tensor and a group");
  EXPECT_EQ(models::read_hdf5_tensors(path).size(), tensors.size());  // the failed writes changed nothing
  // A weight file has vector attributes ("mean"): reading only scalars is an error that names it.
  const std::string weights = tmp_path("generic_weights.h5");
  Small small(1);
  models::save_weights(weights, small, models::WeightFileInfo::torchvision("small", 3, "test"));
  EXPECT_ERROR_CONTAINS(models::read_hdf5_attributes(weights), "'mean'");
}

}  // namespace
}  // namespace medtl
