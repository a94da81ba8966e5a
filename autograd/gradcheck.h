// gradcheck: compares an op's analytic backward with central finite differences, in float64,
// element by element, with PyTorch's default tolerances.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "autograd/graph.h"

namespace medtl::ag {

struct GradcheckOptions {
  double eps = 1e-6;   // finite-difference step
  double atol = 1e-5;  // |analytic - numeric| <= atol + rtol * |numeric|
  double rtol = 1e-3;
};

struct GradcheckResult {
  bool ok = true;
  std::string message;  // on failure: which input, element and output, and both values
};

// fn maps the inputs to one float64 output of any shape. Inputs must be float64; the ones that
// require grad are checked. Builds the full Jacobian both ways:
//   numeric  J[k][e] = (f(x + eps e)[k] - f(x - eps e)[k]) / (2 eps)   (one pair of calls per input element)
//   analytic J[k][e] = d f[k] / d x[e] by backward() with a one-hot grad_output (one pass per output element)
// Use tiny shapes: the cost is O(inputs x outputs) forward and backward passes.
GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options = {});

}  // namespace medtl::ag
