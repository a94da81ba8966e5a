// The standard layers as Modules over the ag:: functional ops: Conv2d, BatchNorm2d, ReLU,
// MaxPool2d, AdaptiveAvgPool2d, Flatten, Linear, Dropout, Sigmoid.
//
// Parameter and buffer names are PyTorch's ("weight", "bias", "running_mean", ...), and default
// initialisation is PyTorch's: Conv2d/Linear weight kaiming_uniform(a = sqrt(5)), bias
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)); BatchNorm weight 1, bias 0, running stats 0 and 1.
// Layers that draw random numbers take a Generator& (or, for Dropout, a seed): nothing here
// seeds itself from a clock. Parameters are float32.
#pragma once

#include <cstdint>
#include <string>

#include "autograd/layer_ops.h"
#include "nn/module.h"

namespace medtl::nn {

// x: (N, in, H, W) -> (N, out, P, Q). Square kernel, same stride/padding/dilation in H and W.
// weight: (out, in, kernel, kernel); bias: (out,) when bias = true.
class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, Generator& gen, int64_t stride = 1,
         int64_t padding = 0, int64_t dilation = 1, bool bias = true);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Conv2d"; }

  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }  // undefined when built with bias = false
  const ops::Conv2dParams& params() const { return params_; }
  int64_t in_channels() const { return in_channels_; }
  int64_t out_channels() const { return out_channels_; }
  // PyTorch's reset_parameters(): redraws weight and bias with the default init from gen.
  void reset_parameters(Generator& gen);

 private:
  int64_t in_channels_, out_channels_;
  ops::Conv2dParams params_;
  Tensor weight_, bias_;
};

// x: (N, C, H, W) or (N, C) -> same shape. weight, bias: (C,); buffers running_mean,
// running_var: (C,) float32; num_batches_tracked: 0-dim Int64, +1 on every training forward.
// Training normalises with the batch statistics (biased variance) and updates the running
// statistics with the unbiased one; eval normalises with the running statistics.
class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t num_features, double eps = 1e-5, double momentum = 0.1);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "BatchNorm2d"; }

  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }
  const Tensor& running_mean() const { return running_mean_; }
  const Tensor& running_var() const { return running_var_; }
  int64_t num_batches_tracked() const;
  int64_t num_features() const { return num_features_; }
  double eps() const { return eps_; }
  double momentum() const { return momentum_; }
  void reset_running_stats();  // running_mean 0, running_var 1, num_batches_tracked 0
  void reset_parameters();     // the above, and weight 1, bias 0

 private:
  int64_t num_features_;
  double eps_, momentum_;
  Tensor weight_, bias_, running_mean_, running_var_, num_batches_tracked_;
};

// x: any shape -> same shape.
class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "ReLU"; }
};

// x: (N, C, H, W) -> (N, C, P, Q). stride defaults to kernel_size (PyTorch's stride=None).
class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(int64_t kernel_size, int64_t stride = -1, int64_t padding = 0);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "MaxPool2d"; }
  const ops::MaxPool2dParams& params() const { return params_; }

 private:
  ops::MaxPool2dParams params_;
};

// x: (N, C, H, W) -> (N, C, 1, 1). Only output size 1 is implemented; any other is an error.
class AdaptiveAvgPool2d : public Module {
 public:
  explicit AdaptiveAvgPool2d(int64_t output_size);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "AdaptiveAvgPool2d"; }
};

// x: (d0, ..., dn) -> dims start_dim..end_dim merged into one, e.g. (N, C, 1, 1) -> (N, C).
class Flatten : public Module {
 public:
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1) : start_dim_(start_dim), end_dim_(end_dim) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Flatten"; }

 private:
  int64_t start_dim_, end_dim_;
};

// x: (..., in) -> (..., out). weight: (out, in); bias: (out,) when bias = true.
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, Generator& gen, bool bias = true);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Linear"; }

  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }  // undefined when built with bias = false
  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }
  void reset_parameters(Generator& gen);  // PyTorch's default init, drawn from gen

 private:
  int64_t in_features_, out_features_;
  Tensor weight_, bias_;
};

// x: any shape -> same shape. In training, zeroes each element with probability p and scales the
// rest by 1 / (1 - p); in eval, the identity. Mask k (k = 0, 1, ... counting the training
// forwards with p > 0) is keyed by (seed, stream k): every call gets a fresh mask, and the
// sequence is reproducible from the seed. stream() / set_stream() save and restore the position.
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5, uint64_t seed = 0, uint64_t stream = 0);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Dropout"; }
  double p() const { return p_; }
  uint64_t seed() const { return seed_; }
  uint64_t stream() const { return stream_; }  // the stream the next mask uses
  void set_stream(uint64_t stream) { stream_ = stream; }

 private:
  double p_;
  uint64_t seed_, stream_;
};

// x: any shape -> same shape, 1 / (1 + exp(-x)).
class Sigmoid : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Sigmoid"; }
};

}  // namespace medtl::nn
