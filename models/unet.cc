// U-Net (smp layout) with a ResNet-50 encoder: decoder blocks, forward, initialisation, loading.
#include "models/unet.h"

#include <algorithm>
#include <array>

#include "autograd/ops.h"
#include "autograd/seg_ops.h"
#include "nn/init.h"

namespace medtl::models {
namespace {

// (in, skip, out) channels of decoder blocks 0..4 (protocol §4.2).
constexpr std::array<std::array<int64_t, 3>, 5> kBlocks = {{
    {2048, 1024, 256}, {256, 512, 128}, {128, 256, 64}, {64, 64, 32}, {32, 0, 16}}};
constexpr int64_t kDivisor = 32;  // the encoder halves H and W five times

std::string shape_of(const Tensor& t) { return t.defined() ? shape_str(t.shape()) : "an undefined tensor"; }

// smp's Conv2dReLU with use_batchnorm: Sequential(conv3x3 pad 1 no bias, BN, ReLU), the conv
// initialised as smp's initialize_decoder does (BN keeps its default weight 1, bias 0).
std::shared_ptr<nn::Sequential> conv_bn_relu(int64_t in, int64_t out, Generator& gen) {
  auto conv = std::make_shared<nn::Conv2d>(in, out, 3, gen, 1, 1, 1, /*bias=*/false);
  nn::init::kaiming_uniform_(conv->weight(), gen, nn::init::FanMode::FanIn, nn::init::Nonlinearity::Relu);
  return std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
      conv, std::make_shared<nn::BatchNorm2d>(out), std::make_shared<nn::ReLU>()});
}

// The nearest multiple of 32 at or above v (at least 32), for error messages.
int64_t round_up(int64_t v) { return std::max<int64_t>(kDivisor, (v + kDivisor - 1) / kDivisor * kDivisor); }

WeightFileInfo checked_info(const std::string& path, const char* expected_architecture, const UNetResNet50& unet,
                            const char* other_loader) {
  WeightFileInfo info = read_weight_info(path);
  MEDTL_CHECK(info.architecture == expected_architecture, "'", path, "' holds a '", info.architecture,
              "' model, expected '", expected_architecture, "'", other_loader);
  MEDTL_CHECK(info.variant == variant_name(unet.variant()), "'", path, "' holds ", info.variant,
              " ResNet-50 weights but the U-Net's encoder is the ", variant_name(unet.variant()),
              " variant; build the U-Net with ResNetVariant '", info.variant, "'");
  return info;
}

}  // namespace

// ---------------------------------------------------------------- decoder

UNetDecoderBlock::UNetDecoderBlock(int64_t in_channels, int64_t skip_channels, int64_t out_channels, Generator& gen)
    : in_channels_(in_channels), skip_channels_(skip_channels), out_channels_(out_channels) {
  conv1_ = register_module("conv1", conv_bn_relu(in_channels + skip_channels, out_channels, gen));
  conv2_ = register_module("conv2", conv_bn_relu(out_channels, out_channels, gen));
}

Tensor UNetDecoderBlock::forward(const Tensor& x) { return forward(x, Tensor()); }

Tensor UNetDecoderBlock::forward(const Tensor& x, const Tensor& skip) {
  MEDTL_CHECK(x.defined() && x.dim() == 4 && x.size(1) == in_channels_, "DecoderBlock(", in_channels_, ", ",
              skip_channels_, ", ", out_channels_, "): x must be (N, ", in_channels_, ", h, w), got ", shape_of(x));
  MEDTL_CHECK(skip.defined() == (skip_channels_ > 0), "DecoderBlock(", in_channels_, ", ", skip_channels_, ", ",
              out_channels_, "): ", skip_channels_ > 0 ? "expects a skip tensor" : "has no skip but was given one");
  Tensor y = ag::upsample_nearest2x(x);
  if (skip.defined()) {
    MEDTL_CHECK(skip.dim() == 4 && skip.size(0) == x.size(0) && skip.size(1) == skip_channels_ &&
                    skip.size(2) == y.size(2) && skip.size(3) == y.size(3),
                "DecoderBlock(", in_channels_, ", ", skip_channels_, ", ", out_channels_, "): skip must be (",
                x.size(0), ", ", skip_channels_, ", ", y.size(2), ", ", y.size(3), "), got ", shape_of(skip));
    y = ag::cat({y, skip}, 1);
  }
  return conv2_->forward(conv1_->forward(y));
}

UNetDecoder::UNetDecoder(Generator& gen) {
  auto blocks = std::make_shared<nn::Sequential>();
  for (const auto& [in, skip, out] : kBlocks) {
    blocks_.push_back(std::make_shared<UNetDecoderBlock>(in, skip, out, gen));
    blocks->push_back(blocks_.back());
  }
  register_module("blocks", blocks);
}

Tensor UNetDecoder::forward(const Tensor&) {
  MEDTL_CHECK(false, "UnetDecoder::forward(x): the decoder needs every encoder stage; call forward(stages)");
  return Tensor();
}

Tensor UNetDecoder::forward(const ResNet50::Stages& s) {
  // Deepest first: layer4 is the input, then the skips from layer3 up to the stem.
  const Tensor skips[] = {s.layer3, s.layer2, s.layer1, s.stem, Tensor()};
  Tensor x = s.layer4;
  for (size_t i = 0; i < blocks_.size(); ++i) x = blocks_[i]->forward(x, skips[i]);
  return x;
}

// ---------------------------------------------------------------- U-Net

UNetResNet50::UNetResNet50(ResNetVariant variant, int64_t classes, Generator& gen) : classes_(classes) {
  MEDTL_CHECK(classes > 0, "UNetResNet50: classes must be positive, got ", classes);
  encoder_ = register_module("encoder", std::make_shared<ResNet50>(variant, /*num_classes=*/0, gen));
  decoder_ = register_module("decoder", std::make_shared<UNetDecoder>(gen));
  auto conv = std::make_shared<nn::Conv2d>(kBlocks.back()[2], classes, 3, gen, 1, 1, 1, /*bias=*/true);
  nn::init::xavier_uniform_(conv->weight(), gen);
  nn::init::zeros_(conv->bias());
  head_ = register_module("segmentation_head", std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{conv}));
}

Tensor UNetResNet50::forward(const Tensor& x) {
  MEDTL_CHECK(x.defined() && x.dim() == 4 && x.size(1) == 3, "UNetResNet50: expected input (N, 3, H, W), got ",
              shape_of(x));
  const int64_t h = x.size(2), w = x.size(3);
  MEDTL_CHECK(h > 0 && w > 0 && h % kDivisor == 0 && w % kDivisor == 0, "UNetResNet50: input height and width must ",
              "be positive multiples of 32 (the encoder halves them five times and the decoder doubles them back), ",
              "got ", shape_str(x.shape()), "; resize or pad the image, e.g. to ", round_up(h), "x", round_up(w));
  return head_->forward(decoder_->forward(encoder_->forward_stages(x)));
}

// ---------------------------------------------------------------- weight files

LoadReport load_encoder_weights(const std::string& path, UNetResNet50& unet) {
  checked_info(path, "resnet50", unet, " (a U-Net file restores the whole network: use load_unet_weights)");
  LoadReport report = load_weights(path, *unet.encoder(), LoadMode::Strict, /*skip_prefixes=*/{"fc."});
  for (std::string& key : report.loaded) key = "encoder." + key;  // module keys, as the U-Net names them
  return report;
}

LoadReport load_unet_weights(const std::string& path, UNetResNet50& unet) {
  const WeightFileInfo info =
      checked_info(path, kUNetArchitecture, unet, " (a ResNet-50 file initialises the encoder: use load_encoder_weights)");
  MEDTL_CHECK(info.num_classes == unet.classes(), "'", path, "' holds a U-Net with ", info.num_classes,
              " output classes, the module has ", unet.classes());
  return load_weights(path, unet, LoadMode::Strict);
}

WeightFileInfo unet_weight_info(const WeightFileInfo& encoder_info, int64_t classes, const std::string& source) {
  WeightFileInfo info = encoder_info;
  info.architecture = kUNetArchitecture;
  info.num_classes = classes;
  info.class_names_file = "";
  info.source = source;
  return info;
}

LoadedUNet load_unet(const std::string& path, int64_t classes, Generator& gen) {
  const WeightFileInfo info = read_weight_info(path);
  LoadedUNet out;
  if (info.architecture == kUNetArchitecture) {
    out.model = std::make_shared<UNetResNet50>(parse_variant(info.variant), info.num_classes, gen);
    out.report = load_unet_weights(path, *out.model);
    out.info = info;
  } else if (info.architecture == "resnet50") {
    out.model = std::make_shared<UNetResNet50>(parse_variant(info.variant), classes, gen);
    out.report = load_encoder_weights(path, *out.model);
    out.info = unet_weight_info(info, classes, "U-Net whose encoder came from: " + info.source);
    out.decoder_initialised = true;
  } else {
    MEDTL_CHECK(false, "'", path, "' holds a '", info.architecture, "' model; a U-Net needs a '", kUNetArchitecture,
                "' file or a 'resnet50' file for its encoder");
  }
  return out;
}

}  // namespace medtl::models
