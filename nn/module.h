// Module: the base of every layer and model. Holds named parameters, buffers and child modules
// whose dotted names are exactly PyTorch's state_dict keys ("layer1.0.conv1.weight").
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace medtl::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// The dtype new layers create their parameters and float buffers in (like
// torch.set_default_dtype): float32 normally; float64 for gradient checks and reference runs.
DType default_dtype();
void set_default_dtype(DType dtype);
// Sets the default dtype for its lifetime, then restores the previous one.
class DefaultDTypeGuard {
 public:
  explicit DefaultDTypeGuard(DType dtype) : previous_(default_dtype()) { set_default_dtype(dtype); }
  ~DefaultDTypeGuard() { set_default_dtype(previous_); }
  DefaultDTypeGuard(const DefaultDTypeGuard&) = delete;
  DefaultDTypeGuard& operator=(const DefaultDTypeGuard&) = delete;

 private:
  DType previous_;
};

class Module {
 public:
  virtual ~Module() = default;

  // The module's computation. Modules with several inputs or outputs add their own methods.
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }

  // Parameters, buffers and both together in PyTorch's state_dict order: a module's own
  // parameters, then its own buffers, then each child's, depth first, in registration order.
  // The tensors share storage and autograd records with the module's: writing into them (e.g.
  // ops::copy_) changes the model.
  NamedTensors named_parameters() const;
  NamedTensors named_buffers() const;
  NamedTensors state_dict() const;
  std::vector<Tensor> parameters() const;          // every parameter
  std::vector<Tensor> trainable_parameters() const;  // those that require grad now

  // Train/eval mode for this module and all descendants (BatchNorm, Dropout read it).
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Freezing: parameters whose name starts with `prefix` stop (or start) requiring grad.
  // Returns how many parameters matched; zero matches is an error naming the prefix.
  int64_t set_requires_grad(const std::string& prefix, bool requires);
  void zero_grad();  // forgets every parameter's accumulated gradient

  // Moves every parameter and buffer to `device` in place (Storage::relocate), so the tensors the
  // layers hold move with them, like torch's module.to(device). Gradients are forgotten; create
  // the optimizer after moving (its state is made on the parameters' device).
  void to(Device device);
  Device device() const;  // where the parameters are (the CPU for a module without any)

  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const { return children_; }
  // The descendant at a dotted path ("layer1.0"), or an error listing the children there.
  std::shared_ptr<Module> submodule(const std::string& path) const;
  virtual std::string type_name() const = 0;  // "Conv2d", "ResNet", ...

 protected:
  // Stores `t` under `name` and marks it as a trainable leaf. Keep the returned tensor as the
  // member the forward uses: both share storage and gradient.
  Tensor register_parameter(const std::string& name, Tensor t);
  Tensor register_buffer(const std::string& name, Tensor t);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }
  // Swaps the child registered as `name` for another module (e.g. a new classification head),
  // keeping its place in the state_dict order.
  void replace_child(const std::string& name, std::shared_ptr<Module> module);

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> module);
  void collect(const std::string& prefix, bool params, bool buffers, NamedTensors* out) const;

  NamedTensors parameters_;
  NamedTensors buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// Runs children "0", "1", ... in order.
class Sequential : public Module {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<std::shared_ptr<Module>> modules);
  void push_back(std::shared_ptr<Module> module);
  Tensor forward(const Tensor& x) override;
  int64_t size() const { return static_cast<int64_t>(children().size()); }
  std::string type_name() const override { return "Sequential"; }
};

class Identity : public Module {
 public:
  Tensor forward(const Tensor& x) override { return x; }
  std::string type_name() const override { return "Identity"; }
};

}  // namespace medtl::nn
