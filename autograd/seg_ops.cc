// Differentiable upsampling and concatenation: forward through tensor/ kernels, backward formula
// right beside it (see autograd/ops.cc for the conventions).
#include "autograd/seg_ops.h"

#include "tensor/ops/copy.h"
#include "tensor/ops/upsample.h"

namespace medtl::ag {
namespace {

using Grads = std::vector<Tensor>;

}  // namespace

Tensor upsample_nearest2x(const Tensor& x) {
  // y[h, w] = x[h / 2, w / 2]; dx[h, w] = the sum of g over the 2x2 block x[h, w] was copied to.
  return record("upsample_nearest2x", ops::upsample_nearest2x(x), {x}, [](const Tensor& g, const NeedsGrad&) {
    return Grads{ops::upsample_nearest2x_backward(g)};
  });
}

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  MEDTL_CHECK(!tensors.empty(), "cat: expected a non-empty list of tensors");
  const Tensor& first = tensors[0];
  MEDTL_CHECK(first.defined(), "cat: tensor 0 is undefined");
  MEDTL_CHECK(first.dim() > 0, "cat: zero-dimensional tensor 0 cannot be concatenated");
  const int64_t d = wrap_dim(dim, first.dim(), "cat");
  Shape out_shape = first.shape();
  out_shape[d] = 0;
  std::vector<int64_t> offsets, sizes;  // where each input starts along d, and its extent
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    MEDTL_CHECK(t.defined(), "cat: tensor ", i, " is undefined");
    MEDTL_CHECK(t.dtype() == first.dtype(), "cat: tensor ", i, " is ", dtype_name(t.dtype()), " but tensor 0 is ",
                dtype_name(first.dtype()), "; convert with .to(DType)");
    MEDTL_CHECK(t.device() == first.device(), "cat: tensor ", i, " is on ", t.str(), ", tensor 0 on ", first.str());
    bool same = t.dim() == first.dim();
    for (int64_t k = 0; same && k < t.dim(); ++k) same = k == d || t.size(k) == first.size(k);
    MEDTL_CHECK(same, "cat: sizes of tensors must match except in dimension ", d, ": tensor 0 has shape ",
                shape_str(first.shape()), ", tensor ", i, " has shape ", shape_str(t.shape()));
    offsets.push_back(out_shape[d]);
    sizes.push_back(t.size(d));
    out_shape[d] += t.size(d);
  }
  Tensor out = empty(out_shape, first.dtype(), first.device());
  for (size_t i = 0; i < tensors.size(); ++i)
    if (tensors[i].numel() > 0) ops::copy_(out.narrow(d, offsets[i], sizes[i]), tensors[i]);
  // d tensor_i = g narrowed to tensor_i's slice along d (a view of g: nothing is copied).
  return record("cat", out, tensors, [d, offsets, sizes](const Tensor& g, const NeedsGrad& n) {
    Grads grads(n.size());
    for (size_t i = 0; i < n.size(); ++i)
      if (n[i]) grads[i] = g.narrow(d, offsets[i], sizes[i]);
    return grads;
  });
}

}  // namespace medtl::ag
