// The stand-in GPU: each entry point copies its operands to CPU tensors, runs the CPU op, and
// copies the results (and whatever the op changed in place) back into "cuda:0" tensors.
#include "tests/host_device_backend.h"

#include <cstdlib>
#include <cstring>
#include <memory>

#include "autograd/graph.h"
#include "nn/optim.h"
#include "tensor/ops/batch_norm.h"
#include "tensor/ops/conv2d.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/matmul.h"
#include "tensor/ops/pooling.h"
#include "tensor/ops/reduce.h"
#include "tensor/ops/upsample.h"

namespace medtl::testing {
namespace {

const Device kDevice = Device::cuda(0);

void* host_allocate(int64_t nbytes, int) { return std::aligned_alloc(64, static_cast<size_t>((nbytes + 63) / 64 * 64 + 64)); }
void host_release(void* ptr, int) { std::free(ptr); }

// A CPU tensor with t's shape, strides and offset over a copy of t's whole storage, so that views
// keep their layout. Undefined stays undefined; CPU tensors pass through.
Tensor host(const Tensor& t) {
  if (!t.defined() || t.device().is_cpu()) return t;
  auto storage = std::make_shared<Storage>(t.storage()->nbytes(), Device::cpu());
  std::memcpy(storage->data(), t.storage()->data(), static_cast<size_t>(t.storage()->nbytes()));
  return Tensor(storage, t.shape(), t.strides(), t.offset(), t.dtype());
}

// Writes a host() copy back over the device tensor's storage (after an in-place op).
void write_back(const Tensor& device_tensor, const Tensor& host_copy) {
  if (!device_tensor.defined() || device_tensor.device().is_cpu()) return;
  std::memcpy(device_tensor.storage()->data(), host_copy.storage()->data(),
              static_cast<size_t>(device_tensor.storage()->nbytes()));
}

// Copies a contiguous CPU tensor's elements over a contiguous stand-in tensor of the same shape.
void write_elements(const Tensor& device_tensor, const Tensor& cpu) {
  MEDTL_CHECK(device_tensor.is_contiguous() && cpu.is_contiguous() && device_tensor.shape() == cpu.shape(),
              "write_elements: ", device_tensor.str(), " and ", cpu.str(), " must be contiguous, of one shape");
  std::memcpy(static_cast<char*>(device_tensor.storage()->data()) + device_tensor.offset() * dtype_size(cpu.dtype()),
              cpu.raw_data(), static_cast<size_t>(cpu.numel() * dtype_size(cpu.dtype())));
}

// A CPU result as a new contiguous stand-in tensor.
Tensor dev(const Tensor& cpu) {
  if (!cpu.defined()) return cpu;
  const Tensor c = cpu.contiguous();
  Tensor out = empty(c.shape(), c.dtype(), kDevice);
  std::memcpy(out.storage()->data(), c.raw_data(), static_cast<size_t>(c.numel() * dtype_size(c.dtype())));
  return out;
}

// The optimizer's state buffers as load_state wants them, for parameter 0.
nn::NamedTensors optimizer_state(double lr, int64_t step, const nn::NamedTensors& buffers) {
  nn::NamedTensors state = {{"lr", scalar_tensor(lr, DType::Float64)},
                            {"state.0.step", scalar_tensor(static_cast<double>(step), DType::Int64)}};
  for (const auto& [key, t] : buffers) state.emplace_back("state.0." + key, t);
  return state;
}

// Copies the optimizer's buffers back into the stand-in tensors they came from.
void write_back_state(const nn::Optimizer& opt, const nn::NamedTensors& device_buffers) {
  for (const auto& [key, t] : opt.export_state())
    for (const auto& [name, target] : device_buffers)
      if (key == "state.0." + name) write_back(target, t);
}

}  // namespace

HostDeviceBackend::HostDeviceBackend()
    : previous_backend_(register_device_backend(DeviceType::CUDA, this)),
      previous_allocator_(Storage::register_allocator(DeviceType::CUDA, {host_allocate, host_release})) {}

HostDeviceBackend::~HostDeviceBackend() {
  register_device_backend(DeviceType::CUDA, previous_backend_);
  Storage::register_allocator(DeviceType::CUDA, previous_allocator_);
}

void HostDeviceBackend::copy_bytes(void* dst, Device, const void* src, Device, int64_t nbytes) {
  count("copy_bytes");
  std::memcpy(dst, src, static_cast<size_t>(nbytes));
}

void HostDeviceBackend::copy_(const Tensor& dst, const Tensor& src) {
  count("copy_");
  const Tensor h = host(dst);
  ops::copy_(h, host(src));
  write_back(dst, h);
}

void HostDeviceBackend::fill_(const Tensor& dst, double value) {
  count("fill_");
  const Tensor h = host(dst);
  ops::fill_(h, value);
  write_back(dst, h);
}

Tensor HostDeviceBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  count("binary");
  return dev(ops::binary(op, host(a), host(b)));
}

Tensor HostDeviceBackend::binary_scalar(BinaryOp op, const Tensor& a, double b) {
  count("binary_scalar");
  switch (op) {
    case BinaryOp::Add: return dev(ops::add(host(a), b));
    case BinaryOp::Sub: return dev(ops::sub(host(a), b));
    case BinaryOp::Mul: return dev(ops::mul(host(a), b));
    case BinaryOp::Div: return dev(ops::div(host(a), b));
    case BinaryOp::Pow: return dev(ops::pow(host(a), b));
    default: MEDTL_CHECK(false, "binary_scalar: no scalar form of this op");
  }
  return Tensor();
}

Tensor HostDeviceBackend::compare(CompareOp op, const Tensor& a, const Tensor& b) {
  count("compare");
  return dev(ops::compare(op, host(a), host(b)));
}

Tensor HostDeviceBackend::compare_scalar(CompareOp op, const Tensor& a, double b) {
  count("compare_scalar");
  MEDTL_CHECK(op == CompareOp::Gt || op == CompareOp::Lt, "compare_scalar: only gt and lt have scalar forms");
  return dev(op == CompareOp::Gt ? ops::gt(host(a), b) : ops::lt(host(a), b));
}

Tensor HostDeviceBackend::unary(UnaryOp op, const Tensor& x, double low, double high) {
  count("unary");
  return dev(ops::unary(op, host(x), low, high));
}

Tensor HostDeviceBackend::relu_backward(const Tensor& grad, const Tensor& out) {
  count("relu_backward");
  return dev(ops::relu_backward(host(grad), host(out)));
}

Tensor HostDeviceBackend::where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  count("where");
  return dev(ops::where(host(cond), host(a), host(b)));
}

void HostDeviceBackend::add_scaled_(const Tensor& dst, const Tensor& src, double alpha) {
  count("add_scaled_");
  const Tensor h = host(dst);
  if (alpha == 1.0) ops::add_(h, host(src));  // add_ also takes integers (num_batches_tracked)
  else ops::add_scaled_(h, host(src), alpha);
  write_back(dst, h);
}

void HostDeviceBackend::mul_(const Tensor& dst, double factor) {
  count("mul_");
  const Tensor h = host(dst);
  ops::mul_(h, factor);
  write_back(dst, h);
}

Tensor HostDeviceBackend::sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  count("sum");
  return dev(ops::sum(host(x), dims, keepdim));
}

Tensor HostDeviceBackend::mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  count("mean");
  return dev(ops::mean(host(x), dims, keepdim));
}

Tensor HostDeviceBackend::var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction, bool keepdim) {
  count("var");
  return dev(ops::var(host(x), dims, correction, keepdim));
}

ops::MaxResult HostDeviceBackend::max(const Tensor& x, int64_t dim, bool keepdim) {
  count("max");
  ops::MaxResult r = ops::max(host(x), dim, keepdim);
  return {dev(r.values), dev(r.indices)};
}

Tensor HostDeviceBackend::max_all(const Tensor& x) {
  count("max_all");
  return dev(ops::max(host(x)));
}

Tensor HostDeviceBackend::matmul(const Tensor& a, const Tensor& b) {
  count("matmul");
  return dev(ops::matmul(host(a), host(b)));
}

Tensor HostDeviceBackend::conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias,
                                         const ops::Conv2dParams& params) {
  count("conv2d_forward");
  return dev(ops::conv2d_forward(host(x), host(w), host(bias), params));
}

Tensor HostDeviceBackend::conv2d_backward_input(const Tensor& grad_y, const Tensor& w, const Shape& x_shape,
                                                const ops::Conv2dParams& params) {
  count("conv2d_backward_input");
  return dev(ops::conv2d_backward_input(host(grad_y), host(w), x_shape, params));
}

Tensor HostDeviceBackend::conv2d_backward_weight(const Tensor& grad_y, const Tensor& x, const Shape& w_shape,
                                                 const ops::Conv2dParams& params) {
  count("conv2d_backward_weight");
  return dev(ops::conv2d_backward_weight(host(grad_y), host(x), w_shape, params));
}

Tensor HostDeviceBackend::conv2d_backward_bias(const Tensor& grad_y) {
  count("conv2d_backward_bias");
  return dev(ops::conv2d_backward_bias(host(grad_y)));
}

ops::BatchNormForward HostDeviceBackend::batch_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                                            const Tensor& running_mean, const Tensor& running_var,
                                                            bool training, double momentum, double eps) {
  count("batch_norm_forward");
  const Tensor mean_h = host(running_mean), var_h = host(running_var);
  ops::BatchNormForward f =
      ops::batch_norm_forward(host(x), host(weight), host(bias), mean_h, var_h, training, momentum, eps);
  write_back(running_mean, mean_h);  // updated in place in training
  write_back(running_var, var_h);
  return {dev(f.y), dev(f.save_mean), dev(f.save_invstd)};
}

ops::BatchNormBackward HostDeviceBackend::batch_norm_backward(const Tensor& grad_y, const Tensor& x,
                                                              const Tensor& weight, const Tensor& save_mean,
                                                              const Tensor& save_invstd, bool training) {
  count("batch_norm_backward");
  ops::BatchNormBackward b = ops::batch_norm_backward(host(grad_y), host(x), host(weight), host(save_mean),
                                                      host(save_invstd), training);
  return {dev(b.grad_x), dev(b.grad_weight), dev(b.grad_bias)};
}

ops::MaxPool2dForward HostDeviceBackend::max_pool2d_forward(const Tensor& x, const ops::MaxPool2dParams& params) {
  count("max_pool2d_forward");
  ops::MaxPool2dForward f = ops::max_pool2d_forward(host(x), params);
  return {dev(f.y), dev(f.indices)};
}

Tensor HostDeviceBackend::max_pool2d_backward(const Tensor& grad_y, const Tensor& indices, const Shape& x_shape,
                                              const ops::MaxPool2dParams& params) {
  count("max_pool2d_backward");
  return dev(ops::max_pool2d_backward(host(grad_y), host(indices), x_shape, params));
}

Tensor HostDeviceBackend::upsample_nearest2x(const Tensor& x) {
  count("upsample_nearest2x");
  return dev(ops::upsample_nearest2x(host(x)));
}

Tensor HostDeviceBackend::upsample_nearest2x_backward(const Tensor& grad_y) {
  count("upsample_nearest2x_backward");
  return dev(ops::upsample_nearest2x_backward(host(grad_y)));
}

// The optimizer steps run nn::Adam / nn::SGD themselves on host copies, with the state loaded
// from the stand-in buffers, so they are the CPU's update by construction.
void HostDeviceBackend::adam_step_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                                   const Tensor& exp_avg_sq, const Tensor& max_exp_avg_sq, const AdamUpdate& u) {
  count("adam_step_");
  Tensor p = ag::requires_grad_leaf(host(param).clone());
  ag::set_grad(p, host(grad).contiguous());
  nn::NamedTensors buffers = {{"exp_avg", exp_avg}, {"exp_avg_sq", exp_avg_sq}};
  if (u.amsgrad) buffers.emplace_back("max_exp_avg_sq", max_exp_avg_sq);
  nn::NamedTensors host_buffers;
  for (const auto& [key, t] : buffers) host_buffers.emplace_back(key, host(t).clone());
  std::unique_ptr<nn::Adam> opt;
  const std::vector<Tensor> params = {p};
  if (u.decoupled_weight_decay)
    opt = std::make_unique<nn::AdamW>(params, u.lr, u.beta1, u.beta2, u.eps, u.weight_decay, u.amsgrad);
  else
    opt = std::make_unique<nn::Adam>(params, u.lr, u.beta1, u.beta2, u.eps, u.weight_decay, u.amsgrad);
  opt->load_state(optimizer_state(u.lr, u.step - 1, host_buffers));
  opt->step();
  write_elements(param, p);
  write_back_state(*opt, buffers);
}

void HostDeviceBackend::sgd_step_(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer,
                                  const SgdUpdate& u) {
  count("sgd_step_");
  Tensor p = ag::requires_grad_leaf(host(param).clone());
  ag::set_grad(p, host(grad).contiguous());
  nn::SGD opt({p}, u.lr, u.momentum, u.dampening, u.weight_decay, u.nesterov);
  const bool has_buffer = momentum_buffer.defined();
  if (has_buffer && !u.first_step)
    opt.load_state(optimizer_state(u.lr, 0, {{"momentum_buffer", host(momentum_buffer).clone()}}));
  opt.step();
  write_elements(param, p);
  if (has_buffer) write_back_state(opt, {{"momentum_buffer", momentum_buffer}});
}

}  // namespace medtl::testing
