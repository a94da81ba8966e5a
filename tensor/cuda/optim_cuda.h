// Fused optimizer updates (Adam, AdamW, SGD) on GPU tensors: one kernel reads each parameter's gradient and state once
// and writes the parameter and state, with the same formula, in the same double arithmetic and
// with the same float32 roundings as the CPU optimizer (nn/optim.cc): bit-identical to it.
// Plain C++ header; defined only under --config=cuda.
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace medtl::cuda {

// torch.optim.Adam / AdamW hyper-parameters, as nn::Adam takes them.
struct AdamConfig {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  bool amsgrad = false;
  bool decoupled = false;  // AdamW: p *= 1 - lr * wd before the update, instead of g += wd * p
};

// One Adam step in place. param, grad, exp_avg, exp_avg_sq and (amsgrad only) max_exp_avg_sq: (...)
// float32, contiguous, one shape, one GPU; the state starts at zeros. `step` is the step count
// after this update (1 on the first call for this parameter), as nn::Adam's state counts it.
void adam_step_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                const Tensor& max_exp_avg_sq, const AdamConfig& config, int64_t step);

// torch.optim.SGD hyper-parameters, as nn::SGD takes them.
struct SgdConfig {
  double lr = 1e-2, momentum = 0.0, dampening = 0.0, weight_decay = 0.0;
  bool nesterov = false;
};

// One SGD step in place. param, grad and (momentum != 0 only) momentum_buffer: (...) float32,
// contiguous, one shape, one GPU. `first`: this is the parameter's first step with momentum, when
// the buffer is set to the gradient instead of updated (its old contents are ignored).
void sgd_step_(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer, const SgdConfig& config,
               bool first);

}  // namespace medtl::cuda
