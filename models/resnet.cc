// ResNet-50 (torchvision v1.5 and Keras v1): blocks, stages, stem, head, initialisation.
#include "models/resnet.h"

#include "autograd/ops.h"
#include "nn/init.h"

namespace medtl::models {
namespace {

double bn_eps(ResNetVariant variant) { return variant == ResNetVariant::Keras ? 1e-3 : 1e-5; }
bool conv_bias(ResNetVariant variant) { return variant == ResNetVariant::Keras; }

std::shared_ptr<nn::Conv2d> make_conv(int64_t in, int64_t out, int64_t kernel, int64_t stride, ResNetVariant variant,
                                      Generator& gen) {
  auto conv = std::make_shared<nn::Conv2d>(in, out, kernel, gen, stride, kernel / 2, 1, conv_bias(variant));
  // torchvision's ResNet init: kaiming_normal_(mode="fan_out", nonlinearity="relu"), bias 0.
  nn::init::kaiming_normal_(conv->weight(), gen, nn::init::FanMode::FanOut, nn::init::Nonlinearity::Relu);
  if (conv->bias().defined()) nn::init::zeros_(conv->bias());
  return conv;
}

}  // namespace

const char* variant_name(ResNetVariant variant) { return variant == ResNetVariant::Keras ? "keras" : "torchvision"; }

ResNetVariant parse_variant(const std::string& name) {
  if (name == "torchvision") return ResNetVariant::Torchvision;
  if (name == "keras") return ResNetVariant::Keras;
  MEDTL_CHECK(false, "unknown ResNet variant '", name, "' (expected 'torchvision' or 'keras')");
  return ResNetVariant::Torchvision;
}

Bottleneck::Bottleneck(int64_t in_channels, int64_t width, int64_t stride, ResNetVariant variant, Generator& gen) {
  const int64_t out_channels = width * 4;
  // v1.5 strides the 3x3 conv; v1 strides the first 1x1 conv.
  const int64_t stride1 = variant == ResNetVariant::Keras ? stride : 1;
  const int64_t stride2 = variant == ResNetVariant::Keras ? 1 : stride;
  const double eps = bn_eps(variant);
  conv1_ = register_module("conv1", make_conv(in_channels, width, 1, stride1, variant, gen));
  bn1_ = register_module("bn1", std::make_shared<nn::BatchNorm2d>(width, eps));
  conv2_ = register_module("conv2", make_conv(width, width, 3, stride2, variant, gen));
  bn2_ = register_module("bn2", std::make_shared<nn::BatchNorm2d>(width, eps));
  conv3_ = register_module("conv3", make_conv(width, out_channels, 1, 1, variant, gen));
  bn3_ = register_module("bn3", std::make_shared<nn::BatchNorm2d>(out_channels, eps));
  if (stride != 1 || in_channels != out_channels) {
    downsample_ = register_module("downsample", std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
        make_conv(in_channels, out_channels, 1, stride, variant, gen), std::make_shared<nn::BatchNorm2d>(out_channels, eps)}));
  }
}

Tensor Bottleneck::forward(const Tensor& x) {
  Tensor out = ag::relu(bn1_->forward(conv1_->forward(x)));
  out = ag::relu(bn2_->forward(conv2_->forward(out)));
  out = bn3_->forward(conv3_->forward(out));
  const Tensor shortcut = downsample_ ? downsample_->forward(x) : x;
  return ag::relu(ag::add(out, shortcut));
}

ResNet50::ResNet50(ResNetVariant variant, int64_t num_classes, Generator& gen) : variant_(variant) {
  MEDTL_CHECK(num_classes >= 0, "ResNet50: num_classes must be >= 0 (0 = no fc), got ", num_classes);
  const double eps = bn_eps(variant);
  conv1_ = register_module("conv1", make_conv(3, 64, 7, 2, variant, gen));
  bn1_ = register_module("bn1", std::make_shared<nn::BatchNorm2d>(64, eps));
  maxpool_ = register_module("maxpool", std::make_shared<nn::MaxPool2d>(3, 2, 1));
  layer1_ = register_module("layer1", make_stage(64, 64, 3, 1, gen));
  layer2_ = register_module("layer2", make_stage(256, 128, 4, 2, gen));
  layer3_ = register_module("layer3", make_stage(512, 256, 6, 2, gen));
  layer4_ = register_module("layer4", make_stage(1024, 512, 3, 2, gen));
  if (num_classes > 0) fc_ = register_module("fc", std::make_shared<nn::Linear>(2048, num_classes, gen));
}

std::shared_ptr<nn::Sequential> ResNet50::make_stage(int64_t in_channels, int64_t width, int64_t blocks, int64_t stride,
                                                     Generator& gen) {
  auto stage = std::make_shared<nn::Sequential>();
  stage->push_back(std::make_shared<Bottleneck>(in_channels, width, stride, variant_, gen));
  for (int64_t b = 1; b < blocks; ++b) stage->push_back(std::make_shared<Bottleneck>(width * 4, width, 1, variant_, gen));
  return stage;
}

ResNet50::Stages ResNet50::forward_stages(const Tensor& x) {
  MEDTL_CHECK(x.dim() == 4 && x.size(1) == 3, "ResNet50: expected input (N, 3, H, W), got shape ", shape_str(x.shape()));
  Stages s;
  s.stem = ag::relu(bn1_->forward(conv1_->forward(x)));
  s.layer1 = layer1_->forward(maxpool_->forward(s.stem));
  s.layer2 = layer2_->forward(s.layer1);
  s.layer3 = layer3_->forward(s.layer2);
  s.layer4 = layer4_->forward(s.layer3);
  return s;
}

Tensor ResNet50::forward_pooled(const Tensor& x) {
  return ag::flatten(ag::adaptive_avg_pool2d_1x1(forward_stages(x).layer4), 1);
}

Tensor ResNet50::forward(const Tensor& x) {
  MEDTL_CHECK(fc_ != nullptr, "ResNet50::forward: this ResNet-50 was built without a classifier (num_classes = 0); ",
              "use forward_stages() or forward_pooled(), or add a head with reset_head()");
  return fc_->forward(forward_pooled(x));
}

void ResNet50::reset_head(int64_t num_classes, Generator& gen) {
  if (!fc_) {
    fc_ = register_module("fc", std::make_shared<nn::Linear>(2048, num_classes, gen));  // last, as torchvision's
  } else if (num_classes != fc_->out_features()) {
    // Replace the child in place: same name "fc", so state_dict keys stay torchvision's.
    auto head = std::make_shared<nn::Linear>(2048, num_classes, gen);
    replace_child("fc", head);
    fc_ = head;
  }
  nn::init::normal_(fc_->weight(), gen, 0.0, 0.01);
  nn::init::zeros_(fc_->bias());
}

}  // namespace medtl::models
