// How ops reach a device other than the CPU: one interface, implemented by the CUDA backend.
//
// tensor/ cannot depend on tensor/cuda/ (which is built on tensor/), and the default build has no
// CUDA at all. So the GPU's kernels sit behind `DeviceBackend`, an interface declared here and
// implemented in tensor/cuda/cuda_backend.cu, which registers itself when it is linked in
// (`bazel build --config=cuda`). Every op in tensor/ops/ starts with the same two lines:
//
//   if (DeviceBackend* gpu = backend_for("add", {&a, &b})) return gpu->binary(BinaryOp::Add, a, b);
//   ... the CPU kernel ...
//
// backend_for returns nullptr when every operand is on the CPU, the device's backend when all are
// on one other device, and throws when they are on different devices or no backend is linked in.
// Like PyTorch's dispatcher, but with one virtual call instead of a table of keys.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace medtl {

namespace ops {
struct Conv2dParams;
struct BatchNormForward;
struct BatchNormBackward;
struct MaxPool2dParams;
struct MaxPool2dForward;
struct MaxResult;
}  // namespace ops

// The elementwise ops a backend implements generically (semantics: tensor/ops/elementwise.h).
enum class BinaryOp : uint8_t { Add, Sub, Mul, Div, Pow, Maximum, Minimum };
enum class CompareOp : uint8_t { Eq, Ne, Lt, Le, Gt, Ge };
enum class UnaryOp : uint8_t { Neg, Exp, Log, Sqrt, Abs, Sign, Relu, Sigmoid, Tanh, Clamp };

// The fused optimizer updates (nn/optim.h states the formulas). One parameter tensor per call.
struct AdamUpdate {
  double lr, beta1, beta2, eps, weight_decay;
  bool decoupled_weight_decay;  // AdamW
  bool amsgrad;
  int64_t step;  // 1 on the first update
};
struct SgdUpdate {
  double lr, momentum, dampening, weight_decay;
  bool nesterov;
  bool first_step;  // the momentum buffer is initialised to the gradient on the first step
};

class DeviceBackend {
 public:
  virtual ~DeviceBackend() = default;

  // ---- The device. ----
  virtual int device_count() = 0;
  virtual std::string unavailable_reason() = 0;  // why device_count() is 0; "" otherwise
  virtual std::string describe(int index) = 0;   // GPU name, capability, library versions
  virtual void synchronize(int index) = 0;       // waits for queued work; throws if any failed
  // Bytes held by live tensors now and at most since reset_peak_memory (the caching allocator's
  // counts: what the model needs, not what the driver reports).
  struct MemoryUse {
    int64_t in_use_bytes = 0, peak_bytes = 0, cached_bytes = 0;
  };
  virtual MemoryUse memory_use(int index) = 0;
  virtual void reset_peak_memory(int index) = 0;
  // Raw bytes between devices (either side may be the CPU): Storage::relocate, Tensor::to.
  virtual void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, int64_t nbytes) = 0;

  // ---- Copies (tensor/ops/copy.h); both tensors on this device. ----
  virtual void copy_(const Tensor& dst, const Tensor& src) = 0;
  virtual void fill_(const Tensor& dst, double value) = 0;

  // ---- Elementwise (tensor/ops/elementwise.h). ----
  virtual Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) = 0;
  virtual Tensor binary_scalar(BinaryOp op, const Tensor& a, double b) = 0;
  virtual Tensor compare(CompareOp op, const Tensor& a, const Tensor& b) = 0;
  virtual Tensor compare_scalar(CompareOp op, const Tensor& a, double b) = 0;
  virtual Tensor unary(UnaryOp op, const Tensor& x, double low, double high) = 0;  // bounds: Clamp only
  virtual Tensor relu_backward(const Tensor& grad, const Tensor& out) = 0;
  virtual Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) = 0;
  virtual void add_scaled_(const Tensor& dst, const Tensor& src, double alpha) = 0;
  virtual void mul_(const Tensor& dst, double factor) = 0;

  // ---- Reductions (tensor/ops/reduce.h); dims already wrapped, sorted, unique. ----
  virtual Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) = 0;
  virtual Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) = 0;
  virtual Tensor var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction, bool keepdim) = 0;
  virtual ops::MaxResult max(const Tensor& x, int64_t dim, bool keepdim) = 0;
  virtual Tensor max_all(const Tensor& x) = 0;

  // ---- Matrix multiply (tensor/ops/matmul.h). ----
  virtual Tensor matmul(const Tensor& a, const Tensor& b) = 0;

  // ---- Layers (tensor/ops/conv2d.h, batch_norm.h, pooling.h, upsample.h). ----
  virtual Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias,
                                const ops::Conv2dParams& params) = 0;
  virtual Tensor conv2d_backward_input(const Tensor& grad_y, const Tensor& w, const Shape& x_shape,
                                       const ops::Conv2dParams& params) = 0;
  virtual Tensor conv2d_backward_weight(const Tensor& grad_y, const Tensor& x, const Shape& w_shape,
                                        const ops::Conv2dParams& params) = 0;
  virtual Tensor conv2d_backward_bias(const Tensor& grad_y) = 0;
  virtual ops::BatchNormForward batch_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                                   const Tensor& running_mean, const Tensor& running_var,
                                                   bool training, double momentum, double eps) = 0;
  virtual ops::BatchNormBackward batch_norm_backward(const Tensor& grad_y, const Tensor& x, const Tensor& weight,
                                                     const Tensor& save_mean, const Tensor& save_invstd,
                                                     bool training) = 0;
  virtual ops::MaxPool2dForward max_pool2d_forward(const Tensor& x, const ops::MaxPool2dParams& params) = 0;
  virtual Tensor max_pool2d_backward(const Tensor& grad_y, const Tensor& indices, const Shape& x_shape,
                                     const ops::MaxPool2dParams& params) = 0;
  virtual Tensor upsample_nearest2x(const Tensor& x) = 0;
  virtual Tensor upsample_nearest2x_backward(const Tensor& grad_y) = 0;

  // ---- Optimizer updates, in place (nn/optim.cc). ----
  virtual void adam_step_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                          const Tensor& max_exp_avg_sq, const AdamUpdate& update) = 0;
  virtual void sgd_step_(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer,
                         const SgdUpdate& update) = 0;
};

// Installs the backend for a device type (the CUDA backend does this when linked in; tests may
// install a stand-in). Returns the previous one, so a test can put it back.
DeviceBackend* register_device_backend(DeviceType type, DeviceBackend* backend);
// The backend for `type`, or nullptr when none is linked in.
DeviceBackend* find_device_backend(DeviceType type);

// nullptr when every defined operand is on the CPU; the backend of their device when all are on
// the same non-CPU device. Throws, naming `op`, when operands are on different devices or the
// device has no backend in this build.
DeviceBackend* backend_for(const char* op, std::initializer_list<const Tensor*> operands);

// Whether `device` can be used here: the CPU always; a GPU when this build has the CUDA backend
// and the GPU exists. `why_not` gets the reason otherwise, with what to do.
bool device_available(Device device, std::string* why_not = nullptr);
// Parses "cpu", "cuda", "cuda:1"; throws listing the forms.
Device parse_device(const std::string& text);

}  // namespace medtl
