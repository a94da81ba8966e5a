// Module bookkeeping: registration, state_dict order, train/eval, freezing by name prefix.
#include "nn/module.h"

#include "autograd/graph.h"

namespace medtl::nn {

namespace {
DType g_default_dtype = DType::Float32;
}  // namespace

DType default_dtype() { return g_default_dtype; }

void set_default_dtype(DType dtype) {
  MEDTL_CHECK(dtype == DType::Float32 || dtype == DType::Float64, "set_default_dtype: parameters must be float32 or ",
              "float64, got ", dtype_name(dtype));
  g_default_dtype = dtype;
}

Tensor Module::register_parameter(const std::string& name, Tensor t) {
  MEDTL_CHECK(t.defined(), type_name(), ": parameter '", name, "' is undefined");
  MEDTL_CHECK(name.find('.') == std::string::npos, type_name(), ": parameter name '", name, "' must not contain '.'");
  ag::set_requires_grad(t, true);
  parameters_.emplace_back(name, t);
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor t) {
  MEDTL_CHECK(t.defined(), type_name(), ": buffer '", name, "' is undefined");
  buffers_.emplace_back(name, t);
  return t;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> module) {
  MEDTL_CHECK(module != nullptr, type_name(), ": child '", name, "' is null");
  for (const auto& child : children_) MEDTL_CHECK(child.first != name, type_name(), ": two children named '", name, "'");
  children_.emplace_back(name, std::move(module));
}

void Module::replace_child(const std::string& name, std::shared_ptr<Module> module) {
  MEDTL_CHECK(module != nullptr, type_name(), ": replacement for child '", name, "' is null");
  for (auto& child : children_)
    if (child.first == name) {
      child.second = std::move(module);
      return;
    }
  MEDTL_CHECK(false, type_name(), ": no child '", name, "' to replace");
}

void Module::collect(const std::string& prefix, bool params, bool buffers, NamedTensors* out) const {
  if (params)
    for (const auto& [name, t] : parameters_) out->emplace_back(prefix + name, t);
  if (buffers)
    for (const auto& [name, t] : buffers_) out->emplace_back(prefix + name, t);
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", params, buffers, out);
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  collect("", true, false, &out);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  collect("", false, true, &out);
  return out;
}

NamedTensors Module::state_dict() const {
  NamedTensors out;
  collect("", true, true, &out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

std::vector<Tensor> Module::trainable_parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters())
    if (ag::requires_grad(t)) out.push_back(t);
  return out;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

int64_t Module::set_requires_grad(const std::string& prefix, bool requires) {
  int64_t matched = 0;
  for (auto& [name, t] : named_parameters()) {
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    ag::set_requires_grad(t, requires);
    ++matched;
  }
  MEDTL_CHECK(matched > 0, type_name(), ": no parameter name starts with '", prefix,
              "'; names look like '", named_parameters().empty() ? std::string("(none)") : named_parameters()[0].first, "'");
  return matched;
}

void Module::zero_grad() {
  for (auto& [name, t] : named_parameters()) ag::zero_grad(t);
}

void Module::to(Device device) {
  zero_grad();
  // Tied or shared parameters share a Storage: relocating it once moves them all.
  for (const auto& [name, t] : state_dict()) t.storage()->relocate(device);
}

Device Module::device() const {
  const NamedTensors params = named_parameters();
  return params.empty() ? Device::cpu() : params.front().second.device();
}

std::shared_ptr<Module> Module::submodule(const std::string& path) const {
  const size_t dot = path.find('.');
  const std::string head = path.substr(0, dot);
  for (const auto& [name, child] : children_) {
    if (name != head) continue;
    return dot == std::string::npos ? child : child->submodule(path.substr(dot + 1));
  }
  std::string names;
  for (const auto& [name, child] : children_) names += (names.empty() ? "" : ", ") + name;
  MEDTL_CHECK(false, type_name(), ": no child '", head, "' (children: ", names.empty() ? "none" : names, ")");
  return nullptr;
}

Sequential::Sequential(std::vector<std::shared_ptr<Module>> modules) {
  for (auto& module : modules) push_back(std::move(module));
}

void Sequential::push_back(std::shared_ptr<Module> module) { register_module(std::to_string(size()), std::move(module)); }

Tensor Sequential::forward(const Tensor& x) {
  Tensor out = x;
  for (const auto& [name, child] : children()) out = child->forward(out);
  return out;
}

}  // namespace medtl::nn
