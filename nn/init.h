// Parameter initialisation, as torch.nn.init: every function writes IN PLACE into the tensor's
// existing storage (so a registered parameter keeps its identity and autograd record) and returns it.
//
// Randomness comes only from the Generator passed in: each random fill takes one stream from it,
// so the values depend only on (seed, stream count, shape), never on a clock or the thread count.
#pragma once

#include "tensor/tensor.h"

namespace medtl::nn::init {

enum class FanMode { FanIn, FanOut };
enum class Nonlinearity { Linear, Conv, Sigmoid, Tanh, Relu, LeakyRelu, Selu };

// torch.nn.init.calculate_gain: linear/conv/sigmoid 1, tanh 5/3, relu sqrt(2),
// leaky_relu sqrt(2 / (1 + slope^2)) with slope = param, selu 3/4.
double calculate_gain(Nonlinearity nonlinearity, double param = 0.01);

struct Fans {
  int64_t fan_in = 0;
  int64_t fan_out = 0;
};
// torch.nn.init._calculate_fan_in_and_fan_out: t: (out, in, *kernel) with at least 2 dims;
// fan_in = in * prod(kernel), fan_out = out * prod(kernel). Fewer than 2 dims is an error.
Fans calculate_fans(const Tensor& t);

// ---- Random fills. t: any shape, float32 or float64 (any strides). ----
// U(low, high)
Tensor uniform_(const Tensor& t, Generator& gen, double low = 0.0, double high = 1.0);
// N(mean, std^2)
Tensor normal_(const Tensor& t, Generator& gen, double mean = 0.0, double std = 1.0);
// He et al.: std = gain(nonlinearity, a) / sqrt(fan), fan chosen by mode. N(0, std^2).
Tensor kaiming_normal_(const Tensor& t, Generator& gen, FanMode mode = FanMode::FanIn,
                       Nonlinearity nonlinearity = Nonlinearity::LeakyRelu, double a = 0.0);
// Same std, uniform: U(-sqrt(3) std, sqrt(3) std).
Tensor kaiming_uniform_(const Tensor& t, Generator& gen, FanMode mode = FanMode::FanIn,
                        Nonlinearity nonlinearity = Nonlinearity::LeakyRelu, double a = 0.0);
// Glorot: std = gain sqrt(2 / (fan_in + fan_out)); uniform bound sqrt(3) std.
Tensor xavier_uniform_(const Tensor& t, Generator& gen, double gain = 1.0);
Tensor xavier_normal_(const Tensor& t, Generator& gen, double gain = 1.0);

// ---- Constant fills (any dtype, any strides). ----
Tensor constant_(const Tensor& t, double value);
Tensor zeros_(const Tensor& t);
Tensor ones_(const Tensor& t);

}  // namespace medtl::nn::init
