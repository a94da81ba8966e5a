// The test oracle for matmul: a plain triple loop over strided operands, accumulating in double.
//
// Written independently of matmul_onednn.cc (its own promotion and broadcasting, no GEMM, no
// layout tricks) so that a bug in the fast path cannot hide in the oracle too.
#include <algorithm>
#include <vector>

#include "tensor/dispatch.h"
#include "tensor/ops/matmul.h"

namespace medtl::ops {

// a: (..., M, K) or (K,), b: (..., K, N) or (K,) -> (broadcast(...), M, N) minus promoted dims.
Tensor matmul_reference(const Tensor& a, const Tensor& b) {
  MEDTL_CHECK(a.defined() && b.defined(), "matmul_reference: an operand is undefined");
  MEDTL_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul_reference: operands need at least 1 dim, got a ",
              shape_str(a.shape()), " and b ", shape_str(b.shape()));
  MEDTL_CHECK(a.dtype() == b.dtype(), "matmul_reference: dtypes differ: a is ", dtype_name(a.dtype()), ", b is ",
              dtype_name(b.dtype()));
  const Tensor a2 = a.dim() == 1 ? a.unsqueeze(0) : a;  // (1, K)
  const Tensor b2 = b.dim() == 1 ? b.unsqueeze(1) : b;  // (K, 1)
  const int64_t m = a2.size(-2), k = a2.size(-1), n = b2.size(-1);
  MEDTL_CHECK(b2.size(-2) == k, "matmul_reference: inner dims differ: a ", shape_str(a.shape()), " vs b ",
              shape_str(b.shape()));

  // Batch dims, right-aligned, broadcast.
  const int64_t nba = a2.dim() - 2, nbb = b2.dim() - 2, nb = std::max(nba, nbb);
  Shape batch(nb), stride_a(nb, 0), stride_b(nb, 0);
  for (int64_t i = 0; i < nb; ++i) {
    const int64_t da = i - (nb - nba), db = i - (nb - nbb);
    const int64_t sa = da >= 0 ? a2.size(da) : 1, sb = db >= 0 ? b2.size(db) : 1;
    MEDTL_CHECK(sa == sb || sa == 1 || sb == 1, "matmul_reference: batch dims of a ", shape_str(a.shape()),
                " and b ", shape_str(b.shape()), " do not broadcast");
    batch[i] = std::max(sa, sb);
    if (sb == 0 || sa == 0) batch[i] = 0;
    if (da >= 0 && sa != 1) stride_a[i] = a2.stride(da);
    if (db >= 0 && sb != 1) stride_b[i] = b2.stride(db);
  }
  Shape out_shape = batch;
  out_shape.push_back(m);
  out_shape.push_back(n);
  Tensor out = empty(out_shape, a.dtype());

  dispatch_float(a.dtype(), "matmul_reference", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pa = a2.template data<T>();
    const T* pb = b2.template data<T>();
    T* pc = out.template data<T>();
    const int64_t sam = a2.stride(-2), sak = a2.stride(-1), sbk = b2.stride(-2), sbn = b2.stride(-1);
    const int64_t count = shape_numel(batch);
    for (int64_t item = 0; item < count; ++item) {
      int64_t oa = 0, ob = 0, rest = item;
      for (int64_t d = nb - 1; d >= 0; --d) {
        const int64_t i = rest % batch[d];
        rest /= batch[d];
        oa += i * stride_a[d];
        ob += i * stride_b[d];
      }
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double sum = 0.0;
          for (int64_t p = 0; p < k; ++p)
            sum += static_cast<double>(pa[oa + i * sam + p * sak]) * static_cast<double>(pb[ob + p * sbk + j * sbn]);
          pc[(item * m + i) * n + j] = static_cast<T>(sum);
        }
    }
  });

  if (b.dim() == 1) out = out.squeeze(-1);
  if (a.dim() == 1) out = out.squeeze(b.dim() == 1 ? -1 : -2);
  return out;
}

}  // namespace medtl::ops
