// SGD, Adam, AdamW and clip_grad_norm_: in-place element loops over each parameter, state export/import.
#include "nn/optim.h"

#include <algorithm>
#include <cmath>

#include "autograd/graph.h"
#include "tensor/backend.h"
#include "tensor/dispatch.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/reduce.h"
#include "tensor/parallel.h"

namespace medtl::nn {
namespace {

constexpr int64_t kGrain = 32768;

// The parameter's gradient as a contiguous tensor of its shape and dtype, or undefined.
Tensor gradient_of(const Optimizer& opt, size_t i) {
  const Tensor& p = opt.params()[i];
  const Tensor g = ag::grad(p);
  if (!g.defined()) return g;
  MEDTL_CHECK(g.shape() == p.shape() && g.dtype() == p.dtype(), opt.name(), ": parameter ", i, " is ", p.str(),
              " but its gradient is ", g.str());
  return g.contiguous();
}

// Runs body on a contiguous tensor holding p's values and writes the result back to p if p
// itself is not contiguous (parameters made by nn/ layers always are: then body gets p).
template <typename Body>
void update_in_place(const Tensor& p, Body body) {
  if (p.is_contiguous()) return body(p);
  Tensor work = p.contiguous();
  body(work);
  ops::copy_(p, work);
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

}  // namespace

// ---------------------------------------------------------------- Optimizer

Optimizer::Optimizer(std::vector<Tensor> params, double lr, const char* name)
    : params_(std::move(params)), state_(params_.size()), lr_(lr), name_(name) {
  MEDTL_CHECK(!params_.empty(), name_, ": got an empty parameter list");
  MEDTL_CHECK(lr >= 0.0, name_, ": invalid learning rate ", lr);
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    MEDTL_CHECK(p.defined(), name_, ": parameter ", i, " is undefined");
    MEDTL_CHECK(p.dtype() == DType::Float32 || p.dtype() == DType::Float64, name_, ": parameter ", i, " is ",
                p.str(), "; only float32 and float64 parameters can be optimized");
    MEDTL_CHECK(ag::is_leaf(p), name_, ": parameter ", i, " is not a leaf (it has history from '",
                ag::grad_fn(p)->name, "'); optimize the tensor it was computed from");
    for (size_t j = 0; j < i; ++j)
      MEDTL_CHECK(!(p.autograd_meta() && p.autograd_meta() == params_[j].autograd_meta()), name_, ": parameters ", j,
                  " and ", i, " are the same tensor; each parameter must appear once");
  }
}

void Optimizer::set_lr(double lr) {
  MEDTL_CHECK(lr >= 0.0 && std::isfinite(lr), name_, ": invalid learning rate ", lr);
  lr_ = lr;
}

void Optimizer::zero_grad(bool set_to_none) {
  for (Tensor& p : params_) {
    if (set_to_none) {
      ag::zero_grad(p);
    } else {
      const Tensor g = ag::grad(p);
      if (g.defined()) ops::fill_(g, 0.0);
    }
  }
}

Tensor& Optimizer::buffer(size_t i, const std::string& key, const Tensor& init) {
  for (auto& [name, t] : state_[i].buffers)
    if (name == key) return t;
  Tensor t = init.defined() ? init.clone() : zeros(params_[i].shape(), params_[i].dtype(), params_[i].device());
  state_[i].buffers.emplace_back(key, t);
  return state_[i].buffers.back().second;
}

NamedTensors Optimizer::export_state() const {
  NamedTensors out;
  out.emplace_back("lr", scalar_tensor(lr_, DType::Float64));
  for (size_t i = 0; i < state_.size(); ++i) {
    if (!state_[i].initialized) continue;
    const std::string prefix = "state." + std::to_string(i) + ".";
    out.emplace_back(prefix + "step", scalar_tensor(static_cast<double>(state_[i].step), DType::Int64));
    for (const auto& [key, t] : state_[i].buffers) out.emplace_back(prefix + key, t.clone());
  }
  return out;
}

void Optimizer::load_state(const NamedTensors& state) {
  std::vector<ParamState> loaded(params_.size());
  bool have_lr = false;
  double lr = lr_;
  const std::vector<std::string> keys = state_keys();
  for (const auto& [name, t] : state) {
    MEDTL_CHECK(t.defined(), name_, ": load_state: entry '", name, "' is undefined");
    if (name == "lr") {
      MEDTL_CHECK(t.numel() == 1, name_, ": load_state: 'lr' must hold one number, got ", t.str());
      lr = t.item();
      have_lr = true;
      continue;
    }
    MEDTL_CHECK(starts_with(name, "state."), name_, ": load_state: unexpected entry '", name,
                "' (expected 'lr' or 'state.<index>.<key>')");
    const size_t dot = name.find('.', 6);
    MEDTL_CHECK(dot != std::string::npos && dot > 6, name_, ": load_state: malformed entry '", name, "'");
    const std::string index_str = name.substr(6, dot - 6);
    MEDTL_CHECK(index_str.size() <= 9 && index_str.find_first_not_of("0123456789") == std::string::npos, name_,
                ": load_state: malformed parameter index in '", name, "'");
    const size_t i = std::stoul(index_str);
    const std::string key = name.substr(dot + 1);
    MEDTL_CHECK(i < params_.size(), name_, ": load_state: entry '", name, "' is for parameter ", i, " but this ",
                "optimizer has ", params_.size(), " parameters");
    loaded[i].initialized = true;
    if (key == "step") {
      MEDTL_CHECK(t.numel() == 1, name_, ": load_state: '", name, "' must hold one number, got ", t.str());
      loaded[i].step = static_cast<int64_t>(t.item());
      continue;
    }
    MEDTL_CHECK(std::find(keys.begin(), keys.end(), key) != keys.end(), name_, ": load_state: entry '", name,
                "' names state '", key, "', which this optimizer (with its settings) does not keep");
    const Tensor& p = params_[i];
    MEDTL_CHECK(t.shape() == p.shape() && t.dtype() == p.dtype(), name_, ": load_state: '", name, "' is ", t.str(),
                " but parameter ", i, " is ", p.str());
    loaded[i].buffers.emplace_back(key, t.device() == p.device() ? t.clone() : t.to(p.device()));
  }
  MEDTL_CHECK(have_lr, name_, ": load_state: no 'lr' entry");
  for (size_t i = 0; i < loaded.size(); ++i) {
    if (!loaded[i].initialized) continue;
    for (const std::string& key : keys) {
      bool found = false;
      for (const auto& entry : loaded[i].buffers) found = found || entry.first == key;
      MEDTL_CHECK(found, name_, ": load_state: parameter ", i, " has state but no 'state.", i, ".", key, "'");
    }
  }
  set_lr(lr);
  state_ = std::move(loaded);
}

// ---------------------------------------------------------------- SGD

SGD::SGD(std::vector<Tensor> params, double lr, double momentum, double dampening, double weight_decay, bool nesterov)
    : Optimizer(std::move(params), lr, "SGD"),
      momentum_(momentum), dampening_(dampening), weight_decay_(weight_decay), nesterov_(nesterov) {
  MEDTL_CHECK(momentum >= 0.0, "SGD: invalid momentum value ", momentum);
  MEDTL_CHECK(weight_decay >= 0.0, "SGD: invalid weight_decay value ", weight_decay);
  MEDTL_CHECK(!nesterov || (momentum > 0.0 && dampening == 0.0),
              "SGD: Nesterov momentum requires a momentum and zero dampening, got momentum ", momentum,
              ", dampening ", dampening);
}

std::vector<std::string> SGD::state_keys() const {
  return momentum_ != 0.0 ? std::vector<std::string>{"momentum_buffer"} : std::vector<std::string>{};
}

void SGD::step() {
  ag::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor g = gradient_of(*this, i);
    if (!g.defined()) continue;
    const bool use_momentum = momentum_ != 0.0;
    const bool first = use_momentum && !state_[i].initialized;
    Tensor buf;
    if (use_momentum) {
      buf = buffer(i, "momentum_buffer");
      state_[i].initialized = true;
      ++state_[i].step;
    }
    const double lr = lr_, wd = weight_decay_, mom = momentum_, damp = dampening_;
    const bool nesterov = nesterov_;
    if (DeviceBackend* gpu = backend_for(name_.c_str(), {&params_[i], &g, &buf})) {  // one fused kernel
      update_in_place(params_[i], [&](const Tensor& p) {
        gpu->sgd_step_(p, g.contiguous(), buf, SgdUpdate{lr, mom, damp, wd, nesterov, first});
      });
      continue;
    }
    update_in_place(params_[i], [&](const Tensor& p) {
      dispatch_float(p.dtype(), "SGD.step", [&](auto tag) {
        using T = typename decltype(tag)::type;
        T* pp = p.data<T>();
        const T* pg = g.data<T>();
        T* pb = use_momentum ? buf.data<T>() : nullptr;
        parallel_for(0, p.numel(), kGrain, [&](int64_t begin, int64_t end) {
          for (int64_t k = begin; k < end; ++k) {
            double d = static_cast<double>(pg[k]);
            if (wd != 0.0) d += wd * static_cast<double>(pp[k]);
            if (use_momentum) {
              // buf = d on the first step (a clone of d), else momentum buf + (1 - dampening) d
              pb[k] = first ? static_cast<T>(d) : static_cast<T>(mom * static_cast<double>(pb[k]) + (1.0 - damp) * d);
              d = nesterov ? d + mom * static_cast<double>(pb[k]) : static_cast<double>(pb[k]);
            }
            pp[k] = static_cast<T>(static_cast<double>(pp[k]) - lr * d);
          }
        });
      });
    });
  }
}

// ---------------------------------------------------------------- Adam, AdamW

Adam::Adam(std::vector<Tensor> params, double lr, double beta1, double beta2, double eps, double weight_decay,
           bool amsgrad)
    : Adam(std::move(params), lr, beta1, beta2, eps, weight_decay, amsgrad, false, "Adam") {}

Adam::Adam(std::vector<Tensor> params, double lr, double beta1, double beta2, double eps, double weight_decay,
           bool amsgrad, bool decoupled, const char* name)
    : Optimizer(std::move(params), lr, name),
      beta1_(beta1), beta2_(beta2), eps_(eps), weight_decay_(weight_decay), amsgrad_(amsgrad), decoupled_(decoupled) {
  MEDTL_CHECK(eps >= 0.0, name_, ": invalid epsilon value ", eps);
  MEDTL_CHECK(beta1 >= 0.0 && beta1 < 1.0, name_, ": invalid beta parameter at index 0: ", beta1);
  MEDTL_CHECK(beta2 >= 0.0 && beta2 < 1.0, name_, ": invalid beta parameter at index 1: ", beta2);
  MEDTL_CHECK(weight_decay >= 0.0, name_, ": invalid weight_decay value ", weight_decay);
}

AdamW::AdamW(std::vector<Tensor> params, double lr, double beta1, double beta2, double eps, double weight_decay,
             bool amsgrad)
    : Adam(std::move(params), lr, beta1, beta2, eps, weight_decay, amsgrad, true, "AdamW") {}

std::vector<std::string> Adam::state_keys() const {
  std::vector<std::string> keys = {"exp_avg", "exp_avg_sq"};
  if (amsgrad_) keys.push_back("max_exp_avg_sq");
  return keys;
}

void Adam::step() {
  ag::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor g = gradient_of(*this, i);
    if (!g.defined()) continue;
    Tensor m = buffer(i, "exp_avg"), v = buffer(i, "exp_avg_sq");
    Tensor vmax = amsgrad_ ? buffer(i, "max_exp_avg_sq") : Tensor();
    state_[i].initialized = true;
    const int64_t t = ++state_[i].step;
    const double bias_correction1 = 1.0 - std::pow(beta1_, static_cast<double>(t));
    const double bias_correction2_sqrt = std::sqrt(1.0 - std::pow(beta2_, static_cast<double>(t)));
    const double step_size = lr_ / bias_correction1;
    const double decay = decoupled_ ? 1.0 - lr_ * weight_decay_ : 1.0;  // AdamW: p *= 1 - lr wd first
    const double l2 = decoupled_ ? 0.0 : weight_decay_;                  // Adam: g += wd p
    const double b1 = beta1_, b2 = beta2_, eps = eps_;
    const bool amsgrad = amsgrad_;
    if (DeviceBackend* gpu = backend_for(name_.c_str(), {&params_[i], &g, &m, &v, &vmax})) {  // one fused kernel
      update_in_place(params_[i], [&](const Tensor& p) {
        gpu->adam_step_(p, g.contiguous(), m, v, vmax,
                        AdamUpdate{lr_, b1, b2, eps, weight_decay_, decoupled_, amsgrad, t});
      });
      continue;
    }
    update_in_place(params_[i], [&](const Tensor& p) {
      dispatch_float(p.dtype(), name_.c_str(), [&](auto tag) {
        using T = typename decltype(tag)::type;
        T* pp = p.data<T>();
        const T* pg = g.data<T>();
        T* pm = m.data<T>();
        T* pv = v.data<T>();
        T* pvmax = amsgrad ? vmax.data<T>() : nullptr;
        parallel_for(0, p.numel(), kGrain, [&](int64_t begin, int64_t end) {
          for (int64_t k = begin; k < end; ++k) {
            // Each stored value is rounded to T as PyTorch's in-place updates round it, and later
            // formulas use the rounded value.
            const T param = decay == 1.0 ? pp[k] : static_cast<T>(decay * static_cast<double>(pp[k]));
            const double grad = static_cast<double>(pg[k]) + l2 * static_cast<double>(param);
            const double m_old = static_cast<double>(pm[k]);
            pm[k] = static_cast<T>(m_old + (1.0 - b1) * (grad - m_old));  // exp_avg.lerp_(grad, 1 - beta1)
            pv[k] = static_cast<T>(b2 * static_cast<double>(pv[k]) + (1.0 - b2) * grad * grad);
            double second = static_cast<double>(pv[k]);
            if (amsgrad) {
              pvmax[k] = std::max(pvmax[k], pv[k]);
              second = static_cast<double>(pvmax[k]);
            }
            const double denom = std::sqrt(second) / bias_correction2_sqrt + eps;
            pp[k] = static_cast<T>(static_cast<double>(param) - step_size * static_cast<double>(pm[k]) / denom);
          }
        });
      });
    });
  }
}

// ---------------------------------------------------------------- clip_grad_norm_

double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, bool error_if_nonfinite) {
  constexpr int64_t kChunk = 65536;  // fixed chunks: the sum does not depend on the thread count
  std::vector<Tensor> grads;
  for (const Tensor& p : params) {
    const Tensor g = ag::grad(p);
    if (g.defined()) grads.push_back(g);
  }
  if (grads.empty()) return 0.0;
  double total_sq = 0.0;
  for (const Tensor& g_in : grads) {
    if (!g_in.device().is_cpu()) {  // on its GPU: a fixed-order float64 sum there, one number back
      const Tensor g64 = g_in.to(DType::Float64);
      total_sq += ops::sum(ops::mul(g64, g64)).item();
      continue;
    }
    const Tensor g = g_in.contiguous();
    const int64_t n = g.numel(), chunks = (n + kChunk - 1) / kChunk;
    std::vector<double> partial(static_cast<size_t>(chunks), 0.0);
    dispatch_float(g.dtype(), "clip_grad_norm_", [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* pg = g.data<T>();
      parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
        for (int64_t c = begin; c < end; ++c) {
          double s = 0.0;
          for (int64_t k = c * kChunk; k < std::min(n, (c + 1) * kChunk); ++k) s += double(pg[k]) * double(pg[k]);
          partial[static_cast<size_t>(c)] = s;
        }
      });
    });
    for (double s : partial) total_sq += s;
  }
  const double total = std::sqrt(total_sq);
  MEDTL_CHECK(!error_if_nonfinite || std::isfinite(total), "clip_grad_norm_: the total norm of the gradients is ",
              total, "; some gradient holds NaN or inf");
  // min(1, coef) as torch.clamp(coef, max=1.0): a NaN coefficient propagates into the gradients.
  const double coef = max_norm / (total + 1e-6);
  if (std::isnan(coef) || coef < 1.0)
    for (const Tensor& g : grads) ops::mul_(g, coef);
  return total;
}

}  // namespace medtl::nn
