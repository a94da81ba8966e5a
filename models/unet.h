// U-Net with a ResNet-50 encoder, exactly segmentation_models_pytorch's
// smp.Unet("resnet50", encoder_depth=5, decoder_channels=(256, 128, 64, 32, 16),
// decoder_use_batchnorm=True, classes) as the paper's segmentation code builds it (protocol §4.2,
// §11); state_dict keys are smp's, so a file written here lines up with an smp checkpoint.
//
// Shapes for a (N, 3, H, W) input, H and W multiples of 32 (docs/segmentation.md has the table):
//   encoder (a ResNet50 without fc): stem (N, 64, H/2) [conv1+bn1+relu, before the max-pool],
//     layer1 (N, 256, H/4), layer2 (N, 512, H/8), layer3 (N, 1024, H/16), layer4 (N, 2048, H/32)
//   decoder block i: nearest x2 upsample, concatenate the skip (upsampled first), then twice
//     conv3x3 (pad 1, no bias) + BN + ReLU:
//     0: 2048 + 1024 (layer3) -> 256, H/16    1: 256 + 512 (layer2) -> 128, H/8
//     2: 128 + 256 (layer1) -> 64, H/4        3: 64 + 64 (stem) -> 32, H/2
//     4: 32 (no skip) -> 16, H
//   segmentation_head: conv3x3 16 -> classes with bias: logits (N, classes, H, W). No sigmoid:
//     the loss (nn/seg_loss.h) or the caller applies it.
//
// Keys: encoder.<torchvision ResNet-50 keys without fc>, decoder.blocks.{i}.conv{1,2}.0.weight
// (conv), decoder.blocks.{i}.conv{1,2}.1.{weight,bias,running_mean,running_var,num_batches_tracked}
// (BN), segmentation_head.0.{weight,bias}.
#pragma once

#include <memory>
#include <string>

#include "models/resnet.h"
#include "models/weights.h"

namespace medtl::models {

// The architecture name in U-Net weight files (WeightFileInfo::architecture).
inline constexpr const char* kUNetArchitecture = "unet-resnet50";

// smp's DecoderBlock: children "conv1" and "conv2", each Sequential(Conv2d 3x3 no bias,
// BatchNorm2d (eps 1e-5), ReLU). x: (N, in, h, w), skip: (N, skip, 2h, 2w) -> (N, out, 2h, 2w).
class UNetDecoderBlock : public nn::Module {
 public:
  UNetDecoderBlock(int64_t in_channels, int64_t skip_channels, int64_t out_channels, Generator& gen);
  Tensor forward(const Tensor& x) override;  // the block without a skip (skip_channels == 0)
  Tensor forward(const Tensor& x, const Tensor& skip);
  std::string type_name() const override { return "DecoderBlock"; }
  int64_t skip_channels() const { return skip_channels_; }

 private:
  int64_t in_channels_, skip_channels_, out_channels_;
  std::shared_ptr<nn::Sequential> conv1_, conv2_;
};

// smp's UnetDecoder: child "blocks" (blocks "0".."4" above); no centre block for ResNet.
class UNetDecoder : public nn::Module {
 public:
  explicit UNetDecoder(Generator& gen);
  Tensor forward(const Tensor& x) override;  // an error: the decoder needs every encoder stage
  Tensor forward(const ResNet50::Stages& stages);  // -> (N, 16, H, W)
  std::string type_name() const override { return "UnetDecoder"; }
  std::shared_ptr<UNetDecoderBlock> block(int64_t i) const { return blocks_.at(static_cast<size_t>(i)); }

 private:
  std::vector<std::shared_ptr<UNetDecoderBlock>> blocks_;
};

class UNetResNet50 : public nn::Module {
 public:
  // The encoder is a ResNet50 of `variant` without fc, initialised as torchvision does; decoder
  // convs kaiming_uniform(fan_in, relu), BN weight 1 / bias 0; head xavier_uniform, bias 0 (smp's
  // initialize_decoder / initialize_head). All randomness from `gen`.
  UNetResNet50(ResNetVariant variant, int64_t classes, Generator& gen);

  // x: (N, 3, H, W), H and W positive multiples of 32 (anything else is an error saying so)
  // -> logits (N, classes, H, W).
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Unet"; }

  std::shared_ptr<ResNet50> encoder() const { return encoder_; }
  std::shared_ptr<UNetDecoder> decoder() const { return decoder_; }
  ResNetVariant variant() const { return encoder_->variant(); }
  int64_t classes() const { return classes_; }

 private:
  int64_t classes_;
  std::shared_ptr<ResNet50> encoder_;
  std::shared_ptr<UNetDecoder> decoder_;
  std::shared_ptr<nn::Sequential> head_;
};

// ---- Weight files. ----

// Initialises the encoder from a ResNet-50 weight file (architecture "resnet50", any converter's
// output, the variant must match the U-Net's): a strict load into the encoder, the file's fc.*
// listed as skipped. The report names module keys with their "encoder." prefix. The decoder and
// head keep their initialisation.
LoadReport load_encoder_weights(const std::string& path, UNetResNet50& unet);

// Restores a whole U-Net from a file save_weights wrote with architecture "unet-resnet50":
// strict; variant and classes must match the module's.
LoadReport load_unet_weights(const std::string& path, UNetResNet50& unet);

// The attributes of a U-Net file whose encoder came from a file with `encoder_info`: same
// variant and input preprocessing, architecture "unet-resnet50", num_classes = classes.
WeightFileInfo unet_weight_info(const WeightFileInfo& encoder_info, int64_t classes, const std::string& source);

// A U-Net from either kind of file: a "unet-resnet50" file gives the saved network (its classes);
// a "resnet50" file gives a U-Net of that variant with `classes` outputs, its encoder loaded and
// its decoder freshly initialised from `gen` (decoder_initialised says so). info describes the
// input preprocessing either way (a U-Net info for a ResNet-50 file).
struct LoadedUNet {
  std::shared_ptr<UNetResNet50> model;
  WeightFileInfo info;
  LoadReport report;
  bool decoder_initialised = false;  // true: the decoder and head are random, not from the file
};
LoadedUNet load_unet(const std::string& path, int64_t classes, Generator& gen);

}  // namespace medtl::models
