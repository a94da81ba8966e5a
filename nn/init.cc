// Parameter initialisation (torch.nn.init formulas), filling existing storage in place.
#include "nn/init.h"

#include <cmath>

#include "tensor/ops/copy.h"

namespace medtl::nn::init {
namespace {

void check_float(const Tensor& t, const char* fn) {
  MEDTL_CHECK(t.defined(), fn, ": the tensor is undefined (default-constructed)");
  MEDTL_CHECK(t.dtype() == DType::Float32 || t.dtype() == DType::Float64, fn,
              ": random fills need a float32 or float64 tensor, got ", dtype_name(t.dtype()));
}

// A zero-element tensor is left alone (PyTorch warns and returns); its dims are still checked.
bool is_empty(const Tensor& t, const char* fn) {
  check_float(t, fn);
  calculate_fans(t);
  return t.numel() == 0;
}

// Draws in t's dtype with one stream of gen, then writes through t's strides.
Tensor fill_uniform(const Tensor& t, Generator& gen, double low, double high) {
  ops::copy_(t, uniform(t.shape(), gen, low, high, t.dtype()));
  return t;
}

Tensor fill_normal(const Tensor& t, Generator& gen, double mean, double std) {
  ops::copy_(t, normal(t.shape(), gen, mean, std, t.dtype()));
  return t;
}

double kaiming_std(const Tensor& t, FanMode mode, Nonlinearity nonlinearity, double a, const char* fn) {
  check_float(t, fn);
  const Fans fans = calculate_fans(t);
  const int64_t fan = mode == FanMode::FanIn ? fans.fan_in : fans.fan_out;
  MEDTL_CHECK(fan > 0, fn, ": tensor of shape ", shape_str(t.shape()), " has ",
              mode == FanMode::FanIn ? "fan_in" : "fan_out", " = 0 (an empty dimension); nothing to scale by");
  return calculate_gain(nonlinearity, a) / std::sqrt(static_cast<double>(fan));
}

double xavier_std(const Tensor& t, double gain, const char* fn) {
  check_float(t, fn);
  const Fans fans = calculate_fans(t);
  MEDTL_CHECK(fans.fan_in + fans.fan_out > 0, fn, ": tensor of shape ", shape_str(t.shape()),
              " has fan_in + fan_out = 0 (an empty dimension)");
  return gain * std::sqrt(2.0 / static_cast<double>(fans.fan_in + fans.fan_out));
}

}  // namespace

double calculate_gain(Nonlinearity nonlinearity, double param) {
  switch (nonlinearity) {
    case Nonlinearity::Linear:
    case Nonlinearity::Conv:
    case Nonlinearity::Sigmoid: return 1.0;
    case Nonlinearity::Tanh: return 5.0 / 3.0;
    case Nonlinearity::Relu: return std::sqrt(2.0);
    case Nonlinearity::LeakyRelu: return std::sqrt(2.0 / (1.0 + param * param));
    case Nonlinearity::Selu: return 3.0 / 4.0;
  }
  MEDTL_CHECK(false, "calculate_gain: unknown nonlinearity");
  return 1.0;
}

Fans calculate_fans(const Tensor& t) {
  MEDTL_CHECK(t.defined(), "calculate_fans: the tensor is undefined (default-constructed)");
  MEDTL_CHECK(t.dim() >= 2, "calculate_fans: fan in and fan out can not be computed for a tensor with fewer than 2 ",
              "dimensions, got shape ", shape_str(t.shape()));
  int64_t receptive = 1;
  for (int64_t d = 2; d < t.dim(); ++d) receptive *= t.size(d);
  return Fans{t.size(1) * receptive, t.size(0) * receptive};
}

Tensor uniform_(const Tensor& t, Generator& gen, double low, double high) {
  check_float(t, "uniform_");
  return fill_uniform(t, gen, low, high);
}

Tensor normal_(const Tensor& t, Generator& gen, double mean, double std) {
  check_float(t, "normal_");
  return fill_normal(t, gen, mean, std);
}

Tensor kaiming_normal_(const Tensor& t, Generator& gen, FanMode mode, Nonlinearity nonlinearity, double a) {
  if (is_empty(t, "kaiming_normal_")) return t;
  return fill_normal(t, gen, 0.0, kaiming_std(t, mode, nonlinearity, a, "kaiming_normal_"));
}

Tensor kaiming_uniform_(const Tensor& t, Generator& gen, FanMode mode, Nonlinearity nonlinearity, double a) {
  if (is_empty(t, "kaiming_uniform_")) return t;
  const double bound = std::sqrt(3.0) * kaiming_std(t, mode, nonlinearity, a, "kaiming_uniform_");
  return fill_uniform(t, gen, -bound, bound);
}

Tensor xavier_uniform_(const Tensor& t, Generator& gen, double gain) {
  if (is_empty(t, "xavier_uniform_")) return t;
  const double bound = std::sqrt(3.0) * xavier_std(t, gain, "xavier_uniform_");
  return fill_uniform(t, gen, -bound, bound);
}

Tensor xavier_normal_(const Tensor& t, Generator& gen, double gain) {
  if (is_empty(t, "xavier_normal_")) return t;
  return fill_normal(t, gen, 0.0, xavier_std(t, gain, "xavier_normal_"));
}

Tensor constant_(const Tensor& t, double value) {
  MEDTL_CHECK(t.defined(), "constant_: the tensor is undefined (default-constructed)");
  ops::fill_(t, value);
  return t;
}

Tensor zeros_(const Tensor& t) { return constant_(t, 0.0); }
Tensor ones_(const Tensor& t) { return constant_(t, 1.0); }

}  // namespace medtl::nn::init
