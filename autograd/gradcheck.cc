// Finite-difference gradient checking in float64 (see gradcheck.h).
#include "autograd/gradcheck.h"

#include <cmath>
#include <sstream>

#include "tensor/ops/copy.h"

namespace medtl::ag {

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options) {
  // Private contiguous copies, so perturbing an element never touches the caller's data and
  // element e of the copy is element e in row-major order.
  std::vector<Tensor> leaves;
  std::vector<bool> checked;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& input = inputs[i];
    MEDTL_CHECK(!requires_grad(input) || input.dtype() == DType::Float64, "gradcheck: input ", i, " is ",
                dtype_name(input.dtype()), "; finite differences need float64 inputs (use .to(DType::Float64))");
    Tensor copy = input.dtype() == DType::Float64 || input.dtype() == DType::Float32 ? input.clone() : input;
    checked.push_back(requires_grad(input));
    if (checked.back()) set_requires_grad(copy, true);
    leaves.push_back(copy);
  }

  Tensor output = fn(leaves);
  MEDTL_CHECK(output.dtype() == DType::Float64, "gradcheck: the function returned ", dtype_name(output.dtype()),
              "; it must compute in float64");
  const int64_t out_numel = output.numel();
  GradcheckResult result;

  for (size_t i = 0; i < leaves.size(); ++i) {
    if (!checked[i]) continue;
    Tensor& x = leaves[i];
    double* data = x.data<double>();
    const int64_t n = x.numel();

    // Numeric Jacobian, one column per input element.
    std::vector<std::vector<double>> numeric(n);
    {
      NoGradGuard no_grad;
      for (int64_t e = 0; e < n; ++e) {
        const double saved = data[e];
        data[e] = saved + options.eps;
        const auto plus = fn(leaves).to_vector<double>();
        data[e] = saved - options.eps;
        const auto minus = fn(leaves).to_vector<double>();
        data[e] = saved;
        numeric[e].resize(out_numel);
        for (int64_t k = 0; k < out_numel; ++k) numeric[e][k] = (plus[k] - minus[k]) / (2.0 * options.eps);
      }
    }

    // Analytic Jacobian, one row per output element, from a fresh forward each time.
    for (int64_t k = 0; k < out_numel; ++k) {
      for (Tensor& leaf : leaves) zero_grad(leaf);
      Tensor out = fn(leaves);
      if (!requires_grad(out)) {
        // The output does not depend on any checked input: every analytic entry is 0.
        for (int64_t e = 0; e < n; ++e)
          if (std::abs(numeric[e][k]) > options.atol) {
            std::ostringstream message;
            message << "input " << i << " element " << e << ", output element " << k << ": the output records no "
                    << "gradient, but the numeric derivative is " << numeric[e][k];
            return {false, message.str()};
          }
        continue;
      }
      Tensor one_hot = zeros(out.shape(), DType::Float64);
      one_hot.data<double>()[k] = 1.0;
      backward(out, one_hot);
      const Tensor g = grad(x);
      const std::vector<double> analytic = g.defined() ? g.to_vector<double>() : std::vector<double>(n, 0.0);
      for (int64_t e = 0; e < n; ++e) {
        const double a = analytic[e], num = numeric[e][k];
        if (!(std::abs(a - num) <= options.atol + options.rtol * std::abs(num))) {
          std::ostringstream message;
          message << "input " << i << " element " << e << " (row-major), output element " << k << ": analytic " << a
                  << " vs numeric " << num << " (atol " << options.atol << ", rtol " << options.rtol << ")";
          return {false, message.str()};
        }
      }
    }
  }
  return result;
}

}  // namespace medtl::ag
