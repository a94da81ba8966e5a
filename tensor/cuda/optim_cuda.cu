// The fused Adam and SGD kernels (tensor/cuda/optim_cuda.h). They mirror Adam::step and SGD::step
// in nn/optim.cc line by line; keep them in step when either changes.
#include "tensor/cuda/optim_cuda.h"

#include <cmath>

#include "tensor/cuda/launch.h"

namespace medtl::cuda {
namespace {

// Per-step constants, computed on the host exactly as the CPU computes them (std::pow, std::sqrt).
struct AdamStep {
  double step_size, bias_correction2_sqrt, decay, l2, one_minus_b1, b2, one_minus_b2, eps;
  bool amsgrad;
};

// Every double operation is an explicit _rn intrinsic: nvcc would otherwise contract a * b + c
// into one FMA (one rounding), while the CPU build (x86-64-v2, no FMA) rounds twice, and the
// parameters would drift apart by an ulp now and then.
__global__ void adam_kernel(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
                            float* __restrict__ v, float* __restrict__ vmax, int64_t n, AdamStep s) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n; k += stride) {
    // Each stored value is rounded to float as the CPU (and PyTorch's in-place updates) round it,
    // and later formulas use the rounded value.
    const float param = s.decay == 1.0 ? p[k] : __double2float_rn(__dmul_rn(s.decay, static_cast<double>(p[k])));
    const double grad = __dadd_rn(static_cast<double>(g[k]), __dmul_rn(s.l2, static_cast<double>(param)));
    const double m_old = static_cast<double>(m[k]);
    const float m_new = __double2float_rn(__dadd_rn(m_old, __dmul_rn(s.one_minus_b1, __dsub_rn(grad, m_old))));
    m[k] = m_new;
    const float v_new = __double2float_rn(
        __dadd_rn(__dmul_rn(s.b2, static_cast<double>(v[k])), __dmul_rn(__dmul_rn(s.one_minus_b2, grad), grad)));
    v[k] = v_new;
    double second = static_cast<double>(v_new);
    if (s.amsgrad) {
      const float vm = vmax[k] < v_new ? v_new : vmax[k];  // std::max(vmax, v): keeps vmax unless vmax < v
      vmax[k] = vm;
      second = static_cast<double>(vm);
    }
    const double denom = __dadd_rn(__ddiv_rn(__dsqrt_rn(second), s.bias_correction2_sqrt), s.eps);
    p[k] = __double2float_rn(
        __dsub_rn(static_cast<double>(param), __ddiv_rn(__dmul_rn(s.step_size, static_cast<double>(m_new)), denom)));
  }
}

// Mirrors SGD::step in nn/optim.cc, with the same roundings (see adam_kernel on the intrinsics).
__global__ void sgd_kernel(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ buf, int64_t n,
                           double lr, double wd, double mom, double one_minus_damp, bool use_momentum, bool first,
                           bool nesterov) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n; k += stride) {
    double d = static_cast<double>(g[k]);
    if (wd != 0.0) d = __dadd_rn(d, __dmul_rn(wd, static_cast<double>(p[k])));
    if (use_momentum) {
      // buf = d on the first step (a clone of d), else momentum buf + (1 - dampening) d
      const float b = first ? __double2float_rn(d)
                            : __double2float_rn(__dadd_rn(__dmul_rn(mom, static_cast<double>(buf[k])),
                                                          __dmul_rn(one_minus_damp, d)));
      buf[k] = b;
      d = nesterov ? __dadd_rn(d, __dmul_rn(mom, static_cast<double>(b))) : static_cast<double>(b);
    }
    p[k] = __double2float_rn(__dsub_rn(static_cast<double>(p[k]), __dmul_rn(lr, d)));
  }
}

}  // namespace

void sgd_step_(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer, const SgdConfig& c,
               bool first) {
  const char* op = "cuda::sgd_step_";
  const bool use_momentum = c.momentum != 0.0;
  detail::check_float_gpu(op, "param", param);
  detail::check_float_gpu(op, "grad", grad);
  if (use_momentum) detail::check_float_gpu(op, "momentum_buffer", momentum_buffer);
  for (const Tensor* t : {&grad, use_momentum ? &momentum_buffer : &param}) {
    detail::check_same_device(op, param, *t);
    MEDTL_CHECK(t->shape() == param.shape(), op, ": param is ", shape_str(param.shape()), " but an operand is ",
                shape_str(t->shape()));
  }
  MEDTL_CHECK(c.lr >= 0.0 && c.momentum >= 0.0 && c.weight_decay >= 0.0, op, ": invalid hyper-parameters lr ", c.lr,
              ", momentum ", c.momentum, ", weight_decay ", c.weight_decay);
  MEDTL_CHECK(!c.nesterov || (c.momentum > 0.0 && c.dampening == 0.0), op,
              ": Nesterov momentum requires a momentum and zero dampening");
  const int64_t n = param.numel();
  if (n == 0) return;
  detail::DeviceGuard guard(param.device().index);
  sgd_kernel<<<detail::grid_for(n), detail::kThreads, 0, detail::stream()>>>(
      param.device_data<float>(), grad.device_data<float>(), use_momentum ? momentum_buffer.device_data<float>() : nullptr, n, c.lr,
      c.weight_decay, c.momentum, 1.0 - c.dampening, use_momentum, first && use_momentum, c.nesterov);
  MEDTL_CUDA_CHECK(cudaGetLastError());
}

void adam_step_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                const Tensor& max_exp_avg_sq, const AdamConfig& c, int64_t step) {
  const char* op = "cuda::adam_step_";
  detail::check_float_gpu(op, "param", param);
  detail::check_float_gpu(op, "grad", grad);
  detail::check_float_gpu(op, "exp_avg", exp_avg);
  detail::check_float_gpu(op, "exp_avg_sq", exp_avg_sq);
  if (c.amsgrad) detail::check_float_gpu(op, "max_exp_avg_sq (amsgrad)", max_exp_avg_sq);
  for (const Tensor* t : {&grad, &exp_avg, &exp_avg_sq, c.amsgrad ? &max_exp_avg_sq : &param}) {
    detail::check_same_device(op, param, *t);
    MEDTL_CHECK(t->shape() == param.shape(), op, ": param is ", shape_str(param.shape()), " but an operand is ",
                shape_str(t->shape()));
  }
  MEDTL_CHECK(step >= 1, op, ": step counts from 1 (the step after this update), got ", step);
  MEDTL_CHECK(c.beta1 >= 0.0 && c.beta1 < 1.0 && c.beta2 >= 0.0 && c.beta2 < 1.0 && c.eps >= 0.0 && c.lr >= 0.0 &&
                  c.weight_decay >= 0.0,
              op, ": invalid hyper-parameters lr ", c.lr, ", betas (", c.beta1, ", ", c.beta2, "), eps ", c.eps,
              ", weight_decay ", c.weight_decay);

  // As Adam::step: bias corrections from std::pow in double on the host.
  const double bias_correction1 = 1.0 - std::pow(c.beta1, static_cast<double>(step));
  AdamStep s{};
  s.bias_correction2_sqrt = std::sqrt(1.0 - std::pow(c.beta2, static_cast<double>(step)));
  s.step_size = c.lr / bias_correction1;
  s.decay = c.decoupled ? 1.0 - c.lr * c.weight_decay : 1.0;
  s.l2 = c.decoupled ? 0.0 : c.weight_decay;
  s.one_minus_b1 = 1.0 - c.beta1;
  s.b2 = c.beta2;
  s.one_minus_b2 = 1.0 - c.beta2;
  s.eps = c.eps;
  s.amsgrad = c.amsgrad;

  const int64_t n = param.numel();
  if (n == 0) return;
  detail::DeviceGuard guard(param.device().index);
  adam_kernel<<<detail::grid_for(n), detail::kThreads, 0, detail::stream()>>>(
      param.device_data<float>(), grad.device_data<float>(), exp_avg.device_data<float>(), exp_avg_sq.device_data<float>(),
      c.amsgrad ? max_exp_avg_sq.device_data<float>() : nullptr, n, s);
  MEDTL_CUDA_CHECK(cudaGetLastError());
}

}  // namespace medtl::cuda
