// The U-Net model beyond numerical parity (tests/unet_parity_test.cc): smp's names and shapes
// from the protocol's table, smp's initialisation, the ResNet-50 backbone without fc, input-size
// errors, and weight files: a ResNet-50 file initialising the encoder, a full U-Net file round trip.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <map>
#include <set>

#include "autograd/graph.h"
#include "models/unet.h"
#include "models/weights.h"
#include "tests/test_util.h"

namespace medtl {
namespace {

using models::ResNetVariant;
using models::UNetResNet50;
using testing::tensors_identical;

std::string temp_path(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
}

std::map<std::string, Tensor> by_name(const nn::NamedTensors& tensors) {
  std::map<std::string, Tensor> out;
  for (const auto& [name, t] : tensors) out[name] = t;
  return out;
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

// Building a ResNet-50 draws ~25M random numbers (seconds on a small machine), so the suite
// shares one U-Net and one ResNet-50 file.
class UNet : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Generator gen(7);
    unet_ = new UNetResNet50(ResNetVariant::Torchvision, 1, gen);
    Generator resnet_gen(8);
    models::ResNet50 resnet(ResNetVariant::Torchvision, 10, resnet_gen);
    resnet_state_ = new std::map<std::string, Tensor>();
    for (const auto& [name, t] : resnet.state_dict()) (*resnet_state_)[name] = t.clone();
    models::save_weights(resnet_file(), resnet,
                         models::WeightFileInfo::torchvision("resnet50", 10, "random ResNet-50 for unet_test"));
  }
  static std::string resnet_file() { return temp_path("resnet50.h5"); }
  static UNetResNet50* unet_;
  static std::map<std::string, Tensor>* resnet_state_;
};
UNetResNet50* UNet::unet_ = nullptr;
std::map<std::string, Tensor>* UNet::resnet_state_ = nullptr;

TEST_F(UNet, NamesAndShapesFollowTheProtocolTable) {
  const auto state = by_name(unet_->state_dict());
  // paper-protocol.md §11: decoder conv shapes and the head.
  const std::vector<std::pair<int64_t, int64_t>> convs = {{256, 3072}, {128, 768}, {64, 384}, {32, 128}, {16, 32}};
  for (int64_t i = 0; i < 5; ++i) {
    const std::string block = "decoder.blocks." + std::to_string(i);
    const auto [out, in] = convs[static_cast<size_t>(i)];
    EXPECT_EQ(state.at(block + ".conv1.0.weight").shape(), (Shape{out, in, 3, 3}));
    EXPECT_EQ(state.at(block + ".conv2.0.weight").shape(), (Shape{out, out, 3, 3}));
    for (const char* conv : {".conv1", ".conv2"}) {
      EXPECT_EQ(state.count(block + conv + ".0.bias"), 0u) << "decoder convs have no bias";
      for (const char* bn : {".1.weight", ".1.bias", ".1.running_mean", ".1.running_var"})
        EXPECT_EQ(state.at(block + conv + bn).shape(), (Shape{out}));
      EXPECT_EQ(state.at(block + conv + ".1.num_batches_tracked").dtype(), DType::Int64);
    }
  }
  EXPECT_EQ(state.at("segmentation_head.0.weight").shape(), (Shape{1, 16, 3, 3}));
  EXPECT_EQ(state.at("segmentation_head.0.bias").shape(), (Shape{1}));
  // The encoder is ResNet-50's torchvision keys without fc, under "encoder.".
  std::set<std::string> encoder;
  for (const auto& [name, t] : state) {
    if (starts_with(name, "encoder.")) encoder.insert(name.substr(8));
    EXPECT_TRUE(starts_with(name, "encoder.") || starts_with(name, "decoder.blocks.") ||
                starts_with(name, "segmentation_head.0."))
        << name;
  }
  std::set<std::string> expected;
  for (const auto& [name, t] : *resnet_state_)
    if (!starts_with(name, "fc.")) expected.insert(name);
  EXPECT_EQ(encoder, expected);
  EXPECT_EQ(state.size(), 380u);
}

TEST_F(UNet, InitialisedAsSmp) {
  const auto state = by_name(unet_->state_dict());
  for (const auto& [name, t] : state) {
    if (!starts_with(name, "decoder.")) continue;
    const auto v = t.to_vector<double>();
    if (t.dim() == 4) {
      // kaiming_uniform(fan_in, relu): U(-b, b), b = sqrt(2) sqrt(3 / fan_in); variance b^2 / 3.
      const double fan_in = static_cast<double>(t.size(1) * 9);
      const double bound = std::sqrt(6.0 / fan_in);
      double sq = 0.0;
      for (double x : v) {
        EXPECT_LE(std::abs(x), bound) << name;
        sq += x * x;
      }
      EXPECT_NEAR(sq / static_cast<double>(v.size()), bound * bound / 3.0, 0.1 * bound * bound / 3.0) << name;
    } else if (name.find(".1.weight") != std::string::npos || name.find("running_var") != std::string::npos) {
      for (double x : v) EXPECT_EQ(x, 1.0) << name;
    } else {
      for (double x : v) EXPECT_EQ(x, 0.0) << name;  // BN bias, running mean, num_batches_tracked
    }
  }
  // Head: xavier_uniform, bound sqrt(6 / (fan_in + fan_out)) = sqrt(6 / (144 + 9)); zero bias.
  const double bound = std::sqrt(6.0 / (16 * 9 + 1 * 9));
  for (double x : state.at("segmentation_head.0.weight").to_vector<double>()) EXPECT_LE(std::abs(x), bound);
  EXPECT_EQ(state.at("segmentation_head.0.bias").item(), 0.0);
  // The encoder keeps torchvision's init: BN weight 1, convs kaiming_normal(fan_out) (not all zero).
  EXPECT_EQ(state.at("encoder.bn1.weight").to_vector<double>(), std::vector<double>(64, 1.0));
  EXPECT_GT(std::abs(state.at("encoder.conv1.weight").at({0, 0, 3, 3})), 0.0);
}

TEST_F(UNet, ForwardShapesInEvalAndTrainMode) {
  ag::NoGradGuard no_grad;
  Generator gen(3);
  const Tensor x = uniform({2, 3, 64, 96}, gen, -1.0, 1.0);
  unet_->eval();
  EXPECT_EQ(unet_->forward(x).shape(), (Shape{2, 1, 64, 96}));
  unet_->train();
  EXPECT_EQ(unet_->forward(x).shape(), (Shape{2, 1, 64, 96}));
  const models::ResNet50::Stages s = unet_->encoder()->forward_stages(x);
  EXPECT_EQ(s.stem.shape(), (Shape{2, 64, 32, 48}));
  EXPECT_EQ(s.layer4.shape(), (Shape{2, 2048, 2, 3}));
  EXPECT_EQ(unet_->decoder()->forward(s).shape(), (Shape{2, 16, 64, 96}));
}

TEST_F(UNet, BadInputsAreClearErrors) {
  ag::NoGradGuard no_grad;
  unet_->eval();
  EXPECT_ERROR_CONTAINS(unet_->forward(zeros({1, 3, 65, 64})), "multiples of 32");
  EXPECT_ERROR_CONTAINS(unet_->forward(zeros({1, 3, 48, 64})), "e.g. to 64x64");
  EXPECT_ERROR_CONTAINS(unet_->forward(zeros({1, 3, 64, 100})), "e.g. to 64x128");
  EXPECT_ERROR_CONTAINS(unet_->forward(zeros({1, 3, 16, 16})), "e.g. to 32x32");
  EXPECT_ERROR_CONTAINS(unet_->forward(zeros({1, 3, 0, 32})), "positive multiples of 32");
  EXPECT_ERROR_CONTAINS(unet_->forward(zeros({1, 1, 64, 64})), "(N, 3, H, W)");
  EXPECT_ERROR_CONTAINS(unet_->forward(zeros({3, 64, 64})), "(N, 3, H, W)");
  EXPECT_ERROR_CONTAINS(unet_->forward(Tensor()), "undefined");
  EXPECT_ERROR_CONTAINS(unet_->decoder()->forward(zeros({1, 2048, 1, 1})), "every encoder stage");
  EXPECT_ERROR_CONTAINS(unet_->decoder()->block(0)->forward(zeros({1, 2048, 1, 1})), "expects a skip");
  EXPECT_ERROR_CONTAINS(unet_->decoder()->block(0)->forward(zeros({1, 2048, 1, 1}), zeros({1, 1024, 4, 4})),
                        "skip must be (1, 1024, 2, 2)");
  Generator gen(0);
  EXPECT_ERROR_CONTAINS((void)UNetResNet50(ResNetVariant::Torchvision, 0, gen), "classes must be positive");
}

TEST_F(UNet, EncoderIsAResNet50WithoutFc) {
  models::ResNet50& encoder = *unet_->encoder();
  EXPECT_EQ(encoder.num_classes(), 0);
  for (const auto& [name, t] : encoder.state_dict()) EXPECT_FALSE(starts_with(name, "fc.")) << name;
  EXPECT_ERROR_CONTAINS(encoder.forward(zeros({1, 3, 32, 32})), "without a classifier");
  ag::NoGradGuard no_grad;
  encoder.eval();
  EXPECT_EQ(encoder.forward_pooled(zeros({1, 3, 32, 32})).shape(), (Shape{1, 2048}));
  Generator gen(0);
  EXPECT_ERROR_CONTAINS((void)models::ResNet50(ResNetVariant::Torchvision, -1, gen), "num_classes must be >= 0");
}

TEST_F(UNet, ResNet50FileInitialisesTheEncoderAndLeavesTheDecoder) {
  std::map<std::string, Tensor> before;
  for (const auto& [name, t] : unet_->state_dict())
    if (!starts_with(name, "encoder.")) before[name] = t.clone();
  const models::LoadReport report = models::load_encoder_weights(resnet_file(), *unet_);
  EXPECT_EQ(report.loaded.size(), 318u);  // every encoder tensor
  EXPECT_TRUE(report.missing.empty() && report.unexpected.empty() && report.shape_mismatched.empty());
  EXPECT_EQ(report.skipped, (std::vector<std::string>{"fc.weight", "fc.bias"}));
  for (const std::string& key : report.loaded) EXPECT_TRUE(starts_with(key, "encoder.")) << key;
  for (const auto& [name, t] : unet_->state_dict()) {
    if (starts_with(name, "encoder.")) {
      const Tensor& file = resnet_state_->at(name.substr(8));
      EXPECT_TRUE(tensors_identical(t, file)) << name;
    } else {
      EXPECT_TRUE(tensors_identical(t, before.at(name))) << name << " must keep its initialisation";
    }
  }
}

TEST_F(UNet, WrongFilesForTheEncoderAreRejected) {
  // A file that says it is the Keras variant (v1 layout, conv biases) for a torchvision encoder.
  Generator gen(0);
  models::WeightFileInfo keras = models::WeightFileInfo::torchvision("resnet50", 10, "test");
  keras.variant = "keras";
  const std::string keras_path = temp_path("keras_labelled.h5");
  nn::Sequential empty_module;
  models::save_weights(keras_path, empty_module, keras);
  EXPECT_ERROR_CONTAINS(models::load_encoder_weights(keras_path, *unet_), "build the U-Net with ResNetVariant 'keras'");
  // A U-Net file is not an encoder file, and a ResNet-50 file is not a U-Net file.
  models::WeightFileInfo unet_info = models::unet_weight_info(keras, 1, "test");
  unet_info.variant = "torchvision";
  const std::string unet_path = temp_path("unet_labelled.h5");
  models::save_weights(unet_path, empty_module, unet_info);
  EXPECT_ERROR_CONTAINS(models::load_encoder_weights(unet_path, *unet_), "use load_unet_weights");
  EXPECT_ERROR_CONTAINS(models::load_unet_weights(resnet_file(), *unet_), "use load_encoder_weights");
  // A strict load reports every missing key and loads nothing.
  EXPECT_ERROR_CONTAINS(models::load_unet_weights(unet_path, *unet_), "missing");
  unet_info.num_classes = 3;
  models::save_weights(unet_path, empty_module, unet_info);
  EXPECT_ERROR_CONTAINS(models::load_unet_weights(unet_path, *unet_), "3 output classes, the module has 1");
  unet_info.architecture = "densenet121";
  models::save_weights(unet_path, empty_module, unet_info);
  EXPECT_ERROR_CONTAINS(models::load_unet(unet_path, 1, gen), "a U-Net needs");
}

TEST_F(UNet, FullFileRestoresEverythingAndResNetFileGivesAFreshDecoder) {
  // Save this U-Net; a U-Net built from another seed restores it exactly.
  const models::WeightFileInfo info = models::unet_weight_info(
      models::WeightFileInfo::torchvision("resnet50", 0, "random"), 1, "unet_test round trip");
  const std::string path = temp_path("unet.h5");
  models::save_weights(path, *unet_, info);
  Generator gen(99);
  const models::LoadedUNet restored = models::load_unet(path, /*classes (unused for a U-Net file)=*/5, gen);
  EXPECT_FALSE(restored.decoder_initialised);
  EXPECT_EQ(restored.model->classes(), 1);
  EXPECT_EQ(restored.info.architecture, "unet-resnet50");
  EXPECT_EQ(restored.report.loaded.size(), 380u);
  const auto original = by_name(unet_->state_dict());
  for (const auto& [name, t] : restored.model->state_dict()) EXPECT_TRUE(tensors_identical(t, original.at(name))) << name;

  // From a ResNet-50 file: the encoder loaded, a new decoder with `classes` outputs, and the
  // file's preprocessing carried into a U-Net info.
  const models::LoadedUNet fresh = models::load_unet(resnet_file(), 2, gen);
  EXPECT_TRUE(fresh.decoder_initialised);
  EXPECT_EQ(fresh.model->classes(), 2);
  EXPECT_EQ(fresh.info.architecture, "unet-resnet50");
  EXPECT_EQ(fresh.info.num_classes, 2);
  EXPECT_EQ(fresh.info.mean, (std::array<double, 3>{0.485, 0.456, 0.406}));
  EXPECT_TRUE(tensors_identical(by_name(fresh.model->state_dict()).at("encoder.layer4.2.conv3.weight"),
                                resnet_state_->at("layer4.2.conv3.weight")));

  // A backbone can grow a classifier again: fc appended last, torchvision's names.
  fresh.model->encoder()->reset_head(4, gen);
  EXPECT_EQ(fresh.model->encoder()->num_classes(), 4);
  EXPECT_EQ(fresh.model->encoder()->state_dict().back().first, "fc.bias");
}

}  // namespace
}  // namespace medtl
