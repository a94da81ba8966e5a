// The CUDA backend behind tensor/backend.h: forwards each DeviceBackend entry point to the
// kernels of tensor/cuda/, and registers itself (and the caching allocator) when linked in.
//
// The layer kernels (cuDNN convolution, batch norm, pooling, upsampling, cuBLAS) take contiguous
// float32 operands; views are made contiguous here first, on the GPU. The generic kernels
// (strided_cuda.h, reduce_dims_cuda.h) take any strides and dtypes.
#include <cuda_runtime.h>

#include <algorithm>

#include "tensor/backend.h"
#include "tensor/cuda/batch_norm_cuda.h"
#include "tensor/cuda/blas_cuda.h"
#include "tensor/cuda/conv_cudnn.h"
#include "tensor/cuda/device_info.h"
#include "tensor/cuda/elementwise_cuda.h"
#include "tensor/cuda/launch.h"
#include "tensor/cuda/memory.h"
#include "tensor/cuda/optim_cuda.h"
#include "tensor/cuda/pooling_cuda.h"
#include "tensor/cuda/reduce_dims_cuda.h"
#include "tensor/cuda/strided_cuda.h"
#include "tensor/cuda/tensor_cuda.h"
#include "tensor/cuda/upsample_cuda.h"
#include "tensor/ops/batch_norm.h"
#include "tensor/ops/conv2d.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/pooling.h"
#include "tensor/ops/reduce.h"

namespace medtl::cuda {
namespace {

Tensor packed(const Tensor& t) { return t.defined() ? t.contiguous() : t; }

// a: (..., M, K) or (K,), b: (..., K, N) or (K,): as ops::matmul, on cuBLAS. Batch dims broadcast;
// a batched `a` against a 2-D `b` is one GEMM of all rows.
Tensor batched_matmul(const Tensor& a, const Tensor& b) {
  const Tensor a2 = a.dim() == 1 ? a.unsqueeze(0) : a;  // (1, K)
  const Tensor b2 = b.dim() == 1 ? b.unsqueeze(1) : b;  // (K, 1)
  const int64_t m = a2.size(-2), k = a2.size(-1), n = b2.size(-1);
  MEDTL_CHECK(b2.size(-2) == k, "matmul: inner dims differ: a ", shape_str(a.shape()), " and b ", shape_str(b.shape()));
  const Shape a_batch(a2.shape().begin(), a2.shape().end() - 2), b_batch(b2.shape().begin(), b2.shape().end() - 2);
  Tensor out;
  Shape batch;
  if (b_batch.empty()) {  // (..., M, K) @ (K, N): the rows of every batch in one GEMM
    batch = a_batch;
    out = matmul(packed(a2).reshape({shape_numel(a_batch) * m, k}), packed(b2));  // no -1: k or m may be 0
  } else {
    batch = ops::broadcast_shapes(a_batch, b_batch);
    Shape a_full = batch, b_full = batch;
    a_full.insert(a_full.end(), {m, k});
    b_full.insert(b_full.end(), {k, n});
    const int64_t count = shape_numel(batch);  // not -1 in the reshapes: m, k or n may be 0
    out = matmul(a2.expand(a_full).contiguous().reshape({count, m, k}), b2.expand(b_full).contiguous().reshape({count, k, n}));
  }
  Shape shape = batch;
  if (a.dim() > 1) shape.push_back(m);
  if (b.dim() > 1) shape.push_back(n);
  return out.reshape(shape);
}

class CudaBackend final : public DeviceBackend {
 public:
  int device_count() override { return cuda::device_count(); }
  std::string unavailable_reason() override { return no_device_reason(); }
  std::string describe(int index) override {
    return str_cat(device_name(index), " (sm_", compute_capability(index), "), ", version_summary());
  }
  void synchronize(int index) override {
    detail::DeviceGuard guard(index);
    cuda::synchronize();
  }
  MemoryUse memory_use(int index) override {
    const AllocatorStats stats = memory_stats(index);
    return {stats.in_use_bytes, stats.peak_in_use_bytes, stats.cached_bytes};
  }
  void reset_peak_memory(int index) override { device_allocator(index).reset_peak(); }

  // Bytes between the CPU and a GPU (or two GPUs): one cudaMemcpyAsync on the current stream.
  // A download waits for it, so the bytes are there on return; an upload from pageable memory
  // returns once the driver has staged the source.
  void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, int64_t nbytes) override {
    const bool between_gpus = src_device.is_cuda() && dst_device.is_cuda() && src_device != dst_device;
    if (between_gpus) {  // the source GPU's queued writes must land before another GPU's copy reads
      detail::DeviceGuard source(src_device.index);
      MEDTL_CUDA_CHECK(cudaStreamSynchronize(detail::stream()));
    }
    detail::DeviceGuard guard(dst_device.is_cuda() ? dst_device.index : src_device.index);
    MEDTL_CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<size_t>(nbytes), cudaMemcpyDefault, detail::stream()));
    // A download is read by the host next; between GPUs the source block may be reused (on the
    // source's stream) as soon as this returns.
    if (dst_device.is_cpu() || between_gpus) MEDTL_CUDA_CHECK(cudaStreamSynchronize(detail::stream()));
  }

  void copy_(const Tensor& dst, const Tensor& src) override { cuda::copy_(dst, src); }
  void fill_(const Tensor& dst, double value) override { cuda::fill_(dst, value); }

  Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) override { return cuda::binary(op, a, b); }
  Tensor binary_scalar(BinaryOp op, const Tensor& a, double b) override { return cuda::binary_scalar(op, a, b); }
  Tensor compare(CompareOp op, const Tensor& a, const Tensor& b) override { return cuda::compare(op, a, b); }
  Tensor compare_scalar(CompareOp op, const Tensor& a, double b) override { return cuda::compare_scalar(op, a, b); }
  Tensor unary(UnaryOp op, const Tensor& x, double low, double high) override { return cuda::unary(op, x, low, high); }
  Tensor relu_backward(const Tensor& grad, const Tensor& out) override { return cuda::relu_backward(grad, out); }
  Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) override { return cuda::where(cond, a, b); }
  void add_scaled_(const Tensor& dst, const Tensor& src, double alpha) override { cuda::add_scaled_(dst, src, alpha); }
  void mul_(const Tensor& dst, double factor) override { cuda::mul_(dst, factor); }

  Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) override {
    return cuda::sum(x, dims, keepdim);
  }
  Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) override {
    return cuda::mean(x, dims, keepdim);
  }
  Tensor var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction, bool keepdim) override {
    return cuda::var(x, dims, correction, keepdim);
  }
  ops::MaxResult max(const Tensor& x, int64_t dim, bool keepdim) override { return cuda::max(x, dim, keepdim); }
  Tensor max_all(const Tensor& x) override { return cuda::max_all(x); }

  Tensor matmul(const Tensor& a, const Tensor& b) override { return batched_matmul(a, b); }

  Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const ops::Conv2dParams& params) override {
    return cuda::conv2d_forward(packed(x), packed(w), packed(bias), params);
  }
  Tensor conv2d_backward_input(const Tensor& grad_y, const Tensor& w, const Shape& x_shape,
                               const ops::Conv2dParams& params) override {
    return cuda::conv2d_backward_input(packed(grad_y), packed(w), x_shape, params);
  }
  Tensor conv2d_backward_weight(const Tensor& grad_y, const Tensor& x, const Shape& w_shape,
                                const ops::Conv2dParams& params) override {
    return cuda::conv2d_backward_weight(packed(grad_y), packed(x), w_shape, params);
  }
  Tensor conv2d_backward_bias(const Tensor& grad_y) override { return cuda::conv2d_backward_bias(packed(grad_y)); }

  ops::BatchNormForward batch_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                           const Tensor& running_mean, const Tensor& running_var, bool training,
                                           double momentum, double eps) override {
    // The running statistics are updated in place, so they are passed as they are (buffers are
    // always contiguous); the kernel checks.
    return cuda::batch_norm_forward(packed(x), packed(weight), packed(bias), running_mean, running_var, training,
                                    momentum, eps);
  }
  ops::BatchNormBackward batch_norm_backward(const Tensor& grad_y, const Tensor& x, const Tensor& weight,
                                             const Tensor& save_mean, const Tensor& save_invstd,
                                             bool training) override {
    return cuda::batch_norm_backward(packed(grad_y), packed(x), packed(weight), packed(save_mean), packed(save_invstd),
                                     training);
  }
  ops::MaxPool2dForward max_pool2d_forward(const Tensor& x, const ops::MaxPool2dParams& params) override {
    return cuda::max_pool2d_forward(packed(x), params);
  }
  Tensor max_pool2d_backward(const Tensor& grad_y, const Tensor& indices, const Shape& x_shape,
                             const ops::MaxPool2dParams& params) override {
    return cuda::max_pool2d_backward(packed(grad_y), packed(indices), x_shape, params);
  }
  Tensor upsample_nearest2x(const Tensor& x) override { return cuda::upsample_nearest2x(packed(x)); }
  Tensor upsample_nearest2x_backward(const Tensor& grad_y) override {
    return cuda::upsample_nearest2x_backward(packed(grad_y));
  }

  void adam_step_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                  const Tensor& max_exp_avg_sq, const AdamUpdate& u) override {
    AdamConfig config;
    config.lr = u.lr;
    config.beta1 = u.beta1;
    config.beta2 = u.beta2;
    config.eps = u.eps;
    config.weight_decay = u.weight_decay;
    config.amsgrad = u.amsgrad;
    config.decoupled = u.decoupled_weight_decay;
    cuda::adam_step_(param, packed(grad), exp_avg, exp_avg_sq, max_exp_avg_sq, config, u.step);
  }
  void sgd_step_(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer, const SgdUpdate& u) override {
    SgdConfig config;
    config.lr = u.lr;
    config.momentum = u.momentum;
    config.dampening = u.dampening;
    config.weight_decay = u.weight_decay;
    config.nesterov = u.nesterov;
    cuda::sgd_step_(param, packed(grad), momentum_buffer, config, u.first_step);
  }
};

// Registered before main() runs: the archive is linked whole (cuda_library alwayslink), so this
// object is not dropped. init() only registers the allocator; it touches no GPU.
struct Registration {
  Registration() {
    init();
    static CudaBackend backend;
    register_device_backend(DeviceType::CUDA, &backend);
  }
};
const Registration registration;

}  // namespace
}  // namespace medtl::cuda
