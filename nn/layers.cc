// The standard layers: parameter registration, PyTorch's default init, forward via ag:: ops.
#include "nn/layers.h"

#include <cmath>

#include "autograd/ops.h"
#include "nn/init.h"
#include "tensor/ops/elementwise.h"

namespace medtl::nn {
namespace {

std::string shape_of(const Tensor& x) { return x.defined() ? shape_str(x.shape()) : "an undefined tensor"; }

// PyTorch's reset_parameters() for Conv2d and Linear: kaiming_uniform(a = sqrt(5)) on the weight,
// which gives U(-1/sqrt(fan_in), 1/sqrt(fan_in)); the bias gets that same bound.
void default_init(const Tensor& weight, const Tensor& bias, Generator& gen) {
  init::kaiming_uniform_(weight, gen, init::FanMode::FanIn, init::Nonlinearity::LeakyRelu, std::sqrt(5.0));
  if (bias.defined()) {
    const int64_t fan_in = init::calculate_fans(weight).fan_in;
    const double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
    init::uniform_(bias, gen, -bound, bound);
  }
}

}  // namespace

// ---------------------------------------------------------------- Conv2d

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, Generator& gen, int64_t stride,
               int64_t padding, int64_t dilation, bool bias)
    : in_channels_(in_channels), out_channels_(out_channels) {
  MEDTL_CHECK(in_channels > 0 && out_channels > 0, "Conv2d: channels must be positive, got in ", in_channels,
              ", out ", out_channels);
  MEDTL_CHECK(kernel_size > 0 && stride > 0 && dilation > 0 && padding >= 0, "Conv2d(", in_channels, ", ",
              out_channels, "): kernel_size ", kernel_size, ", stride ", stride, " and dilation ", dilation,
              " must be positive and padding ", padding, " non-negative");
  params_.stride_h = params_.stride_w = stride;
  params_.pad_h = params_.pad_w = padding;
  params_.dilation_h = params_.dilation_w = dilation;
  weight_ = register_parameter("weight", empty({out_channels, in_channels, kernel_size, kernel_size}, default_dtype()));
  if (bias) bias_ = register_parameter("bias", empty({out_channels}, default_dtype()));
  reset_parameters(gen);
}

void Conv2d::reset_parameters(Generator& gen) { default_init(weight_, bias_, gen); }

Tensor Conv2d::forward(const Tensor& x) {
  MEDTL_CHECK(x.defined() && x.dim() == 4 && x.size(1) == in_channels_, "Conv2d(", in_channels_, ", ",
              out_channels_, "): x must be (N, ", in_channels_, ", H, W), got ", shape_of(x));
  return ag::conv2d(x, weight_, bias_, params_);
}

// ---------------------------------------------------------------- BatchNorm2d

BatchNorm2d::BatchNorm2d(int64_t num_features, double eps, double momentum)
    : num_features_(num_features), eps_(eps), momentum_(momentum) {
  MEDTL_CHECK(num_features > 0, "BatchNorm2d: num_features must be positive, got ", num_features);
  MEDTL_CHECK(eps >= 0 && momentum >= 0 && momentum <= 1, "BatchNorm2d(", num_features, "): eps ", eps,
              " must be >= 0 and momentum ", momentum, " in [0, 1]");
  weight_ = register_parameter("weight", empty({num_features}, default_dtype()));
  bias_ = register_parameter("bias", empty({num_features}, default_dtype()));
  running_mean_ = register_buffer("running_mean", empty({num_features}, default_dtype()));
  running_var_ = register_buffer("running_var", empty({num_features}, default_dtype()));
  num_batches_tracked_ = register_buffer("num_batches_tracked", zeros({}, DType::Int64));
  reset_parameters();
}

void BatchNorm2d::reset_running_stats() {
  init::zeros_(running_mean_);
  init::ones_(running_var_);
  init::zeros_(num_batches_tracked_);
}

void BatchNorm2d::reset_parameters() {
  reset_running_stats();
  init::ones_(weight_);
  init::zeros_(bias_);
}

int64_t BatchNorm2d::num_batches_tracked() const { return static_cast<int64_t>(num_batches_tracked_.item()); }

Tensor BatchNorm2d::forward(const Tensor& x) {
  MEDTL_CHECK(x.defined() && (x.dim() == 2 || x.dim() == 4) && x.size(1) == num_features_, "BatchNorm2d(",
              num_features_, "): x must be (N, ", num_features_, ", H, W) or (N, ", num_features_, "), got ",
              shape_of(x));
  const bool training = is_training();
  Tensor y = ag::batch_norm(x, weight_, bias_, running_mean_, running_var_, training, momentum_, eps_);
  // Counted after a successful forward, so a rejected batch leaves the buffers as they were.
  if (training) ops::add_(num_batches_tracked_, ones({}, DType::Int64, num_batches_tracked_.device()));
  return y;
}

// ---------------------------------------------------------------- activations, pooling, reshaping

Tensor ReLU::forward(const Tensor& x) { return ag::relu(x); }

Tensor Sigmoid::forward(const Tensor& x) { return ag::sigmoid(x); }

MaxPool2d::MaxPool2d(int64_t kernel_size, int64_t stride, int64_t padding) {
  if (stride < 0) stride = kernel_size;
  MEDTL_CHECK(kernel_size > 0 && stride > 0 && padding >= 0, "MaxPool2d: kernel_size ", kernel_size, " and stride ",
              stride, " must be positive and padding ", padding, " non-negative");
  MEDTL_CHECK(2 * padding <= kernel_size, "MaxPool2d: padding ", padding,
              " should be at most half of kernel_size ", kernel_size, " (as PyTorch requires)");
  params_.kernel_h = params_.kernel_w = kernel_size;
  params_.stride_h = params_.stride_w = stride;
  params_.pad_h = params_.pad_w = padding;
}

Tensor MaxPool2d::forward(const Tensor& x) {
  MEDTL_CHECK(x.defined() && x.dim() == 4, "MaxPool2d: x must be (N, C, H, W), got ", shape_of(x));
  return ag::max_pool2d(x, params_);
}

AdaptiveAvgPool2d::AdaptiveAvgPool2d(int64_t output_size) {
  MEDTL_CHECK(output_size == 1, "AdaptiveAvgPool2d: only output size 1 (global average pooling) is implemented, got ",
              output_size, "; use AdaptiveAvgPool2d(1)");
}

Tensor AdaptiveAvgPool2d::forward(const Tensor& x) { return ag::adaptive_avg_pool2d_1x1(x); }

Tensor Flatten::forward(const Tensor& x) {
  MEDTL_CHECK(x.defined(), "Flatten: x is undefined (default-constructed)");
  return ag::flatten(x, start_dim_, end_dim_);
}

// ---------------------------------------------------------------- Linear

Linear::Linear(int64_t in_features, int64_t out_features, Generator& gen, bool bias)
    : in_features_(in_features), out_features_(out_features) {
  MEDTL_CHECK(in_features >= 0 && out_features > 0, "Linear: in_features ", in_features,
              " must be >= 0 and out_features ", out_features, " positive");
  weight_ = register_parameter("weight", empty({out_features, in_features}, default_dtype()));
  if (bias) bias_ = register_parameter("bias", empty({out_features}, default_dtype()));
  reset_parameters(gen);
}

void Linear::reset_parameters(Generator& gen) { default_init(weight_, bias_, gen); }

Tensor Linear::forward(const Tensor& x) {
  MEDTL_CHECK(x.defined() && x.dim() >= 1 && x.size(-1) == in_features_, "Linear(", in_features_, ", ",
              out_features_, "): x must be (..., ", in_features_, "), got ", shape_of(x));
  return ag::linear(x, weight_, bias_);
}

// ---------------------------------------------------------------- Dropout

Dropout::Dropout(double p, uint64_t seed, uint64_t stream) : p_(p), seed_(seed), stream_(stream) {
  MEDTL_CHECK(p >= 0.0 && p <= 1.0, "Dropout: probability has to be between 0 and 1, but got ", p);
}

Tensor Dropout::forward(const Tensor& x) {
  if (!is_training() || p_ == 0.0) return x;
  return ag::dropout(x, p_, true, seed_, stream_++);
}

}  // namespace medtl::nn
