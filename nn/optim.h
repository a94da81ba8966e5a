// Optimizers with torch.optim's update rules (SGD, Adam, AdamW), gradient-norm clipping, and
// state export/import for checkpoints.
//
// An optimizer holds the parameter tensors themselves (sharing storage with the model) and
// updates them in place, with no autograd recording. A parameter whose gradient is undefined
// (never reached by backward, or cleared by zero_grad) is skipped, as in PyTorch: its state and
// step count stay as they were. Each element's update is computed in double and stored in the
// parameter's dtype; state tensors (momentum, moments) have the parameter's dtype and shape.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nn/module.h"

namespace medtl::nn {

class Optimizer {
 public:
  Optimizer(std::vector<Tensor> params, double lr, const char* name);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // Forgets every parameter's gradient (set_to_none, PyTorch 2.x's default), or fills it with
  // zeros (PyTorch 1.x's default): the difference shows only for parameters a backward pass
  // does not reach, which Adam then still moves with its moments.
  void zero_grad(bool set_to_none = true);
  // One update of every parameter that has a gradient.
  virtual void step() = 0;

  double lr() const { return lr_; }
  void set_lr(double lr);
  const std::vector<Tensor>& params() const { return params_; }
  const std::string& name() const { return name_; }

  // Everything step() depends on besides the parameters, as copies: "lr" (0-dim Float64) and,
  // per parameter i that has state, "state.<i>.<key>" (e.g. "state.3.exp_avg", "state.3.step"
  // as 0-dim Int64). load_state() restores it into this optimizer (same parameter list), checking
  // every shape and dtype; after it, step() continues exactly as the exported optimizer would.
  NamedTensors export_state() const;
  void load_state(const NamedTensors& state);

 protected:
  // Per-parameter state: named tensors (same shape as the parameter) and a step count.
  struct ParamState {
    NamedTensors buffers;
    int64_t step = 0;
    bool initialized = false;
  };
  // The buffer `key` of parameter i, created (zeros, or a copy of `init` if given) on first use.
  Tensor& buffer(size_t i, const std::string& key, const Tensor& init = Tensor());
  // Which buffer keys a parameter's state has once initialized (for load_state's checks).
  virtual std::vector<std::string> state_keys() const = 0;

  std::vector<Tensor> params_;
  std::vector<ParamState> state_;
  double lr_;
  std::string name_;
};

// torch.optim.SGD: d = g + wd p; with momentum, buf = d on the first step, then
// buf = momentum buf + (1 - dampening) d; d = nesterov ? d + momentum buf : buf; p -= lr d.
class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, double lr, double momentum = 0.0, double dampening = 0.0, double weight_decay = 0.0,
      bool nesterov = false);
  void step() override;

 protected:
  std::vector<std::string> state_keys() const override;

 private:
  double momentum_, dampening_, weight_decay_;
  bool nesterov_;
};

// torch.optim.Adam (PyTorch 1.13 single-tensor path). Per step t (from 1):
//   g += wd p (if wd); m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
//   vmax = max(vmax, v) (amsgrad); denom = sqrt(v or vmax) / sqrt(1 - b2^t) + eps;
//   p -= lr / (1 - b1^t) * m / denom.
// AdamW is the same with decoupled decay: p *= 1 - lr wd first, and no g += wd p.
class Adam : public Optimizer {
 public:
  Adam(std::vector<Tensor> params, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
       double weight_decay = 0.0, bool amsgrad = false);
  void step() override;

 protected:
  Adam(std::vector<Tensor> params, double lr, double beta1, double beta2, double eps, double weight_decay,
       bool amsgrad, bool decoupled, const char* name);
  std::vector<std::string> state_keys() const override;

 private:
  double beta1_, beta2_, eps_, weight_decay_;
  bool amsgrad_, decoupled_;
};

class AdamW : public Adam {
 public:
  AdamW(std::vector<Tensor> params, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
        double weight_decay = 1e-2, bool amsgrad = false);
};

// torch.nn.utils.clip_grad_norm_ (L2): total = sqrt(sum over parameters with a gradient of
// ||g||^2), summed in double in a fixed order (parameter order, fixed chunks); then every
// gradient is multiplied by min(1, max_norm / (total + 1e-6)). Returns total (before clipping).
// A non-finite total is an error if error_if_nonfinite, else the gradients are scaled anyway.
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, bool error_if_nonfinite = false);

}  // namespace medtl::nn
