// A stand-in GPU for tests on machines without one: "cuda:0" tensors in host memory, whose ops
// run the CPU kernels on copies. It checks the dispatch layer, not the CUDA kernels.
//
// What it catches: every op that a model, loss or optimizer uses reaching the device backend
// (a missing dispatch line would call a CPU kernel, which rejects the tensor); CPU memory being
// read directly from a device tensor (data<T>() throws for it); tensors created on the CPU and
// mixed with device ones (backend_for throws). Because each op runs the CPU kernel on the same
// values, a training step on the stand-in must give the CPU's bits exactly.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "tensor/backend.h"

namespace medtl::testing {

class HostDeviceBackend : public DeviceBackend {
 public:
  // Installs itself (and a malloc allocator) for DeviceType::CUDA; the destructor restores what
  // was there (the real CUDA backend in a --config=cuda build). Every stand-in tensor must be
  // gone before it is destroyed.
  HostDeviceBackend();
  ~HostDeviceBackend() override;
  HostDeviceBackend(const HostDeviceBackend&) = delete;
  HostDeviceBackend& operator=(const HostDeviceBackend&) = delete;

  // How often each entry point was called, by name ("binary", "conv2d_forward", ...).
  const std::map<std::string, int64_t>& calls() const { return calls_; }

  int device_count() override { return 1; }
  std::string unavailable_reason() override { return ""; }
  std::string describe(int) override { return "host stand-in for a GPU (tests)"; }
  void synchronize(int) override {}
  MemoryUse memory_use(int) override { return {}; }
  void reset_peak_memory(int) override {}
  void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, int64_t nbytes) override;

  void copy_(const Tensor& dst, const Tensor& src) override;
  void fill_(const Tensor& dst, double value) override;
  Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) override;
  Tensor binary_scalar(BinaryOp op, const Tensor& a, double b) override;
  Tensor compare(CompareOp op, const Tensor& a, const Tensor& b) override;
  Tensor compare_scalar(CompareOp op, const Tensor& a, double b) override;
  Tensor unary(UnaryOp op, const Tensor& x, double low, double high) override;
  Tensor relu_backward(const Tensor& grad, const Tensor& out) override;
  Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) override;
  void add_scaled_(const Tensor& dst, const Tensor& src, double alpha) override;
  void mul_(const Tensor& dst, double factor) override;
  Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) override;
  Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) override;
  Tensor var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction, bool keepdim) override;
  ops::MaxResult max(const Tensor& x, int64_t dim, bool keepdim) override;
  Tensor max_all(const Tensor& x) override;
  Tensor matmul(const Tensor& a, const Tensor& b) override;
  Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const ops::Conv2dParams& params) override;
  Tensor conv2d_backward_input(const Tensor& grad_y, const Tensor& w, const Shape& x_shape,
                               const ops::Conv2dParams& params) override;
  Tensor conv2d_backward_weight(const Tensor& grad_y, const Tensor& x, const Shape& w_shape,
                                const ops::Conv2dParams& params) override;
  Tensor conv2d_backward_bias(const Tensor& grad_y) override;
  ops::BatchNormForward batch_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                           const Tensor& running_mean, const Tensor& running_var, bool training,
                                           double momentum, double eps) override;
  ops::BatchNormBackward batch_norm_backward(const Tensor& grad_y, const Tensor& x, const Tensor& weight,
                                             const Tensor& save_mean, const Tensor& save_invstd,
                                             bool training) override;
  ops::MaxPool2dForward max_pool2d_forward(const Tensor& x, const ops::MaxPool2dParams& params) override;
  Tensor max_pool2d_backward(const Tensor& grad_y, const Tensor& indices, const Shape& x_shape,
                             const ops::MaxPool2dParams& params) override;
  Tensor upsample_nearest2x(const Tensor& x) override;
  Tensor upsample_nearest2x_backward(const Tensor& grad_y) override;
  void adam_step_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                  const Tensor& max_exp_avg_sq, const AdamUpdate& update) override;
  void sgd_step_(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer,
                 const SgdUpdate& update) override;

 private:
  void count(const char* entry) { ++calls_[entry]; }

  std::map<std::string, int64_t> calls_;
  DeviceBackend* previous_backend_;
  Storage::Allocator previous_allocator_;
};

}  // namespace medtl::testing
