// Loss functions. The two binary cross-entropies are fused nodes (one loop forward, PyTorch's
// closed-form gradients backward); cross-entropy and MSE are composed from ag:: ops.
#include "nn/loss.h"

#include <algorithm>
#include <cmath>

#include "autograd/ops.h"
#include "tensor/backend.h"
#include "tensor/dispatch.h"
#include "tensor/ops/elementwise.h"
#include "tensor/ops/reduce.h"
#include "tensor/parallel.h"

namespace medtl::nn {
namespace {

using Grads = std::vector<Tensor>;
constexpr int64_t kGrain = 32768;

std::string shape_of(const Tensor& t) { return t.defined() ? shape_str(t.shape()) : "an undefined tensor"; }

void check_pair(const char* fn, const char* a_name, const Tensor& a, const char* b_name, const Tensor& b) {
  MEDTL_CHECK(a.defined() && b.defined(), fn, ": ", a_name, " is ", shape_of(a), " and ", b_name, " is ",
              shape_of(b), "; both must be defined");
  MEDTL_CHECK(a.shape() == b.shape(), fn, ": ", a_name, " has shape ", shape_str(a.shape()), " but ", b_name,
              " has shape ", shape_str(b.shape()), "; they must be the same");
  MEDTL_CHECK(a.dtype() == b.dtype(), fn, ": ", a_name, " is ", dtype_name(a.dtype()), " but ", b_name, " is ",
              dtype_name(b.dtype()), "; convert one with .to(DType)");
  dispatch_float(a.dtype(), fn, [](auto) {});
}

Tensor reduce(const Tensor& loss, Reduction reduction) {
  switch (reduction) {
    case Reduction::None: return loss;
    case Reduction::Mean: return ag::mean(loss);
    case Reduction::Sum: return ag::sum(loss);
  }
  return loss;
}

// out[i] = f(a[i], b[i]) over contiguous copies, in parallel (each element independent).
// GPU operands are computed here on the CPU and the result copied back: the same bits, and the
// losses' inputs are small (N x classes, or one mask per image); docs/cuda.md.
template <typename F>
Tensor map2(const Tensor& a_in, const Tensor& b_in, const char* fn, F f) {
  if (backend_for(fn, {&a_in, &b_in}) != nullptr)
    return map2(a_in.to(Device::cpu()), b_in.to(Device::cpu()), fn, f).to(a_in.device());
  const Tensor a = a_in.contiguous(), b = b_in.contiguous();
  Tensor out = empty(a.shape(), a.dtype());
  dispatch_float(a.dtype(), fn, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* po = out.data<T>();
    parallel_for(0, a.numel(), kGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) po[i] = f(pa[i], pb[i]);
    });
  });
  return out;
}

}  // namespace

Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& targets, Reduction reduction) {
  check_pair("binary_cross_entropy_with_logits", "logits", logits, "targets", targets);
  // max(x, 0) - x y + log1p(exp(-|x|)): exp of a non-positive number never overflows.
  Tensor loss = map2(logits, targets, "binary_cross_entropy_with_logits", [](auto x, auto y) {
    using T = decltype(x);
    return std::max(x, T(0)) - x * y + std::log1p(std::exp(-std::abs(x)));
  });
  // dx = g (sigmoid(x) - y), dy = -g x
  loss = ag::record("binary_cross_entropy_with_logits", loss, {logits, targets},
                    [x = ag::detach(logits), y = ag::detach(targets)](const Tensor& g, const ag::NeedsGrad& n) {
                      Tensor dx, dy;
                      if (n[0]) dx = ops::mul(g, ops::sub(ops::sigmoid(x), y));
                      if (n[1]) dy = ops::neg(ops::mul(g, x));
                      return Grads{dx, dy};
                    });
  return reduce(loss, reduction);
}

Tensor binary_cross_entropy(const Tensor& probs, const Tensor& targets, Reduction reduction) {
  check_pair("binary_cross_entropy", "probs", probs, "targets", targets);
  const Tensor p = probs.contiguous();
  const Tensor p_host = p.to(Device::cpu());
  dispatch_float(p.dtype(), "binary_cross_entropy", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pp = p_host.data<T>();
    for (int64_t i = 0; i < p.numel(); ++i)
      MEDTL_CHECK(!(pp[i] < T(0) || pp[i] > T(1)), "binary_cross_entropy: all elements of probs should be between 0 ",
                  "and 1, but element ", i, " (row-major) is ", static_cast<double>(pp[i]),
                  "; pass logits to binary_cross_entropy_with_logits instead");
  });
  // Each log clamped at -100, so p = 0 or 1 gives a finite loss, as torch.nn.BCELoss.
  const auto log_p = [](auto v) { return std::max(std::log(v), decltype(v)(-100)); };
  const auto log_1mp = [](auto v) { return std::max(std::log1p(-v), decltype(v)(-100)); };
  Tensor loss = map2(p, targets, "binary_cross_entropy", [&](auto pv, auto y) {
    return (y - decltype(pv)(1)) * log_1mp(pv) - y * log_p(pv);
  });
  // dp = g (p - y) / max(p (1 - p), 1e-12); dy = g (max(log(1 - p), -100) - max(log p, -100))
  loss = ag::record(
      "binary_cross_entropy", loss, {probs, targets},
      [p = ag::detach(p), y = ag::detach(targets), log_p, log_1mp](const Tensor& g, const ag::NeedsGrad& n) {
        Tensor dp, dy;
        if (n[0]) {
          dp = map2(p, y, "binary_cross_entropy_backward", [](auto pv, auto yv) {
            using T = decltype(pv);
            return (pv - yv) / std::max((T(1) - pv) * pv, T(1e-12));
          });
          dp = ops::mul(g, dp);
        }
        if (n[1]) {
          dy = map2(p, p, "binary_cross_entropy_backward", [&](auto pv, auto) { return log_1mp(pv) - log_p(pv); });
          dy = ops::mul(g, dy);
        }
        return Grads{dp, dy};
      });
  return reduce(loss, reduction);
}

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, Reduction reduction) {
  MEDTL_CHECK(logits.defined() && logits.dim() == 2, "cross_entropy: logits must be (N, C), got ", shape_of(logits));
  dispatch_float(logits.dtype(), "cross_entropy", [](auto) {});
  const int64_t N = logits.size(0), C = logits.size(1);
  MEDTL_CHECK(targets.defined() && targets.dim() == 1 && targets.size(0) == N, "cross_entropy: targets must be (",
              N, ",) to match logits ", shape_str(logits.shape()), ", got ", shape_of(targets));
  MEDTL_CHECK(targets.dtype() == DType::Int64, "cross_entropy: targets must hold Int64 class ids, got ",
              dtype_name(targets.dtype()), "; convert with .to(DType::Int64)");
  const std::vector<int64_t> ids = targets.to_vector<int64_t>();
  for (int64_t n = 0; n < N; ++n)
    MEDTL_CHECK(ids[n] >= 0 && ids[n] < C, "cross_entropy: target ", ids[n], " (row ", n,
                ") is out of range for ", C, " classes; ids must be in [0, ", C, ")");
  MEDTL_CHECK(C > 0, "cross_entropy: logits have 0 classes (shape ", shape_str(logits.shape()), ")");
  // log_softmax: z = x - max (a constant: it cancels in the gradient), z - log(sum(exp(z))).
  const Tensor row_max = ops::max(logits, 1, /*keepdim=*/true).values;  // (N, 1), no history
  const Tensor z = ag::sub(logits, row_max);                            // (N, C)
  const Tensor log_probs = ag::sub(z, ag::log(ag::sum(ag::exp(z), {1}, /*keepdim=*/true)));
  // Pick log_probs[n, id_n] with a one-hot mask; where() (not a product) keeps a -inf logit
  // elsewhere in the row from turning into NaN.
  const Tensor one_hot = ops::eq(targets.unsqueeze(1), arange(C, DType::Int64).to(logits.device()));  // (N, C) Bool
  const Tensor picked = ag::where(one_hot, log_probs, zeros({}, logits.dtype(), logits.device()));
  return reduce(ag::neg(ag::sum(picked, {1})), reduction);  // (N,) before reduction
}

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  check_pair("mse_loss", "input", input, "target", target);
  return reduce(ag::pow(ag::sub(input, target), 2.0), reduction);
}

}  // namespace medtl::nn
