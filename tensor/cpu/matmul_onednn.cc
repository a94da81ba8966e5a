// CPU matmul: float32 GEMM through oneDNN's dnnl_sgemm, float64 GEMM as a blocked loop, and the
// NumPy-style batched matmul on tensors that calls them without copying operands it can avoid.
// In deterministic mode (tensor/determinism.h, the default) a float32 GEMM is cut into fixed
// kGemmTile x kGemmTile tiles of C, each one single-threaded sgemm over the whole K, spread over
// parallel_for: no tile's bits depend on the thread count. Fast mode lets oneDNN thread one sgemm
// over all of C, which may split K by the thread count.
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

#include <algorithm>
#include <vector>

#include "tensor/backend.h"
#include "tensor/determinism.h"
#include "tensor/flops.h"
#include "tensor/dispatch.h"
#include "tensor/ops/matmul.h"
#include "tensor/parallel.h"

// Runs a oneDNN call that returns dnnl_status_t; on failure throws medtl::Error naming the call,
// the status, the GEMM sizes and (through throw_error) this file and line.
#define MEDTL_DNNL_CHECK(call, m, n, k)                                                                 \
  do {                                                                                                  \
    const dnnl_status_t medtl_dnnl_status_ = (call);                                                    \
    if (medtl_dnnl_status_ != dnnl_success)                                                             \
      ::medtl::detail::throw_error(__FILE__, __LINE__,                                                  \
                                   ::medtl::str_cat(#call, " failed with status ",                      \
                                                    dnnl_status2str(medtl_dnnl_status_), " (M=", (m),    \
                                                    ", N=", (n), ", K=", (k), ")"));                    \
  } while (0)

namespace medtl::ops {
namespace {

// The K == 0 (or alpha == 0) GEMM: C = beta * C, where beta == 0 writes zeros without reading C
// (BLAS semantics: C may hold garbage, even NaN, when beta is 0).
template <typename T>
void scale_c(int64_t m, int64_t n, T beta, T* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    T* row = c + i * ldc;
    if (beta == T(0)) {
      std::fill(row, row + n, T(0));
    } else if (beta != T(1)) {
      for (int64_t j = 0; j < n; ++j) row[j] *= beta;
    }
  }
}

void check_gemm_args(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb,
                     int64_t ldc) {
  MEDTL_CHECK(m >= 0 && n >= 0 && k >= 0, "gemm: sizes must be non-negative, got M=", m, ", N=", n, ", K=", k);
  const int64_t a_cols = trans_a ? m : k, b_cols = trans_b ? k : n;
  MEDTL_CHECK(lda >= std::max<int64_t>(1, a_cols), "gemm: lda=", lda, " is less than the ", a_cols,
              " columns of A as stored (M=", m, ", K=", k, ", trans_a=", trans_a, ")");
  MEDTL_CHECK(ldb >= std::max<int64_t>(1, b_cols), "gemm: ldb=", ldb, " is less than the ", b_cols,
              " columns of B as stored (K=", k, ", N=", n, ", trans_b=", trans_b, ")");
  MEDTL_CHECK(ldc >= std::max<int64_t>(1, n), "gemm: ldc=", ldc, " is less than the ", n, " columns of C (M=", m,
              ", N=", n, ")");
}

constexpr int64_t kBlock = 64;  // float64 GEMM tile: 64x64 doubles = 32 KiB per packed operand tile

}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  MEDTL_CHECK(m >= 0 && n >= 0 && k >= 0, "gemm: sizes must be non-negative, got M=", m, ", N=", n, ", K=", k);
  if (m == 0 || n == 0) return;
  if (k == 0) return scale_c(m, n, beta, c, ldc);
  // Leading dimensions are validated by oneDNN itself (a bad one reports invalid_arguments).
  const char ta = trans_a ? 'T' : 'N', tb = trans_b ? 'T' : 'N';
  if (!deterministic()) {
    // oneDNN threads over omp_get_max_threads() (set by medtl::set_num_threads), and runs
    // single-threaded when called inside a parallel region.
    MEDTL_DNNL_CHECK(dnnl_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc), m, n, k);
    return;
  }
  // Fixed tiles of C, each a single-threaded sgemm over all of K (its own submatrices of A and B).
  const int64_t tiles_m = (m + kGemmTile - 1) / kGemmTile, tiles_n = (n + kGemmTile - 1) / kGemmTile;
  parallel_for(0, tiles_m * tiles_n, 1, [&](int64_t begin, int64_t end) {
    OmpThreadsScope one_thread(1);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t i0 = (t / tiles_n) * kGemmTile, j0 = (t % tiles_n) * kGemmTile;
      const int64_t mi = std::min(kGemmTile, m - i0), nj = std::min(kGemmTile, n - j0);
      const float* at = trans_a ? a + i0 : a + i0 * lda;  // op(A) rows i0.. : A's columns if transposed
      const float* bt = trans_b ? b + j0 * ldb : b + j0;  // op(B) columns j0.. : B's rows if transposed
      MEDTL_DNNL_CHECK(dnnl_sgemm(ta, tb, mi, nj, k, alpha, at, lda, bt, ldb, beta, c + i0 * ldc + j0, ldc), m, n, k);
    }
  });
}

// i-k-j over 64x64x64 tiles. Each C element is owned by one thread (threads split the row blocks)
// and sums its K products in ascending k order into a tile accumulator, then C = alpha*acc +
// beta*C once: the result does not depend on the thread count.
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
          const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  check_gemm_args(trans_a, trans_b, m, n, k, lda, ldb, ldc);
  if (m == 0 || n == 0) return;
  if (k == 0 || alpha == 0.0) return scale_c(m, n, beta, c, ldc);
  const int64_t row_blocks = (m + kBlock - 1) / kBlock;
  // Below ~1 MFLOP per row block, starting threads costs more than it saves.
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 20) / std::max<int64_t>(1, kBlock * n * k));
  parallel_for(0, row_blocks, grain, [&](int64_t block_begin, int64_t block_end) {
    std::vector<double> a_tile(kBlock * kBlock), b_tile(kBlock * kBlock), acc(kBlock * kBlock);
    for (int64_t ib = block_begin; ib < block_end; ++ib) {
      const int64_t i0 = ib * kBlock, mi = std::min(kBlock, m - i0);
      for (int64_t j0 = 0; j0 < n; j0 += kBlock) {
        const int64_t nj = std::min(kBlock, n - j0);
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t k0 = 0; k0 < k; k0 += kBlock) {
          const int64_t kk = std::min(kBlock, k - k0);
          // Pack op(A)[i0:i0+mi, k0:k0+kk] as (mi, kk) and op(B)[k0:k0+kk, j0:j0+nj] as (kk, nj).
          for (int64_t i = 0; i < mi; ++i)
            for (int64_t p = 0; p < kk; ++p)
              a_tile[i * kBlock + p] = trans_a ? a[(k0 + p) * lda + (i0 + i)] : a[(i0 + i) * lda + (k0 + p)];
          for (int64_t p = 0; p < kk; ++p)
            for (int64_t j = 0; j < nj; ++j)
              b_tile[p * kBlock + j] = trans_b ? b[(j0 + j) * ldb + (k0 + p)] : b[(k0 + p) * ldb + (j0 + j)];
          for (int64_t i = 0; i < mi; ++i) {
            double* acc_row = &acc[i * kBlock];
            for (int64_t p = 0; p < kk; ++p) {
              const double aip = a_tile[i * kBlock + p];
              const double* b_row = &b_tile[p * kBlock];
              for (int64_t j = 0; j < nj; ++j) acc_row[j] += aip * b_row[j];
            }
          }
        }
        for (int64_t i = 0; i < mi; ++i) {
          double* c_row = c + (i0 + i) * ldc + j0;
          const double* acc_row = &acc[i * kBlock];
          if (beta == 0.0) {
            for (int64_t j = 0; j < nj; ++j) c_row[j] = alpha * acc_row[j];
          } else {
            for (int64_t j = 0; j < nj; ++j) c_row[j] = alpha * acc_row[j] + beta * c_row[j];
          }
        }
      }
    }
  });
}

namespace {

// How one operand's matrix (its last two dims) reaches GEMM.
struct MatrixLayout {
  bool usable = false;  // false: the strides fit neither form, the operand must be copied
  bool trans = false;   // true: stored as the transpose, (cols, rows) row-major
  int64_t ld = 0;       // leading dimension of the stored form
};

// rows x cols with strides (row_stride, col_stride). Strides of size-1 dims do not matter, so
// they are replaced by whatever makes the form valid.
MatrixLayout classify(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride) {
  const int64_t rmin = std::max<int64_t>(rows, 1), cmin = std::max<int64_t>(cols, 1);
  {  // row-major: (ld, 1) with ld >= cols
    const int64_t rs = rows == 1 ? cmin : row_stride, cs = cols == 1 ? 1 : col_stride;
    if (cs == 1 && rs >= cmin) return {true, false, rs};
  }
  {  // transposed view: (1, ld) with ld >= rows
    const int64_t rs = rows == 1 ? 1 : row_stride, cs = cols == 1 ? rmin : col_stride;
    if (rs == 1 && cs >= rmin) return {true, true, cs};
  }
  return {};
}

// Broadcasts two batch shapes (NumPy rules); throws naming both full operand shapes.
Shape broadcast_batch(const Shape& x, const Shape& y, const Tensor& a, const Tensor& b) {
  const size_t nd = std::max(x.size(), y.size());
  Shape out(nd);
  for (size_t i = 0; i < nd; ++i) {
    const int64_t sx = i < nd - x.size() ? 1 : x[i - (nd - x.size())];
    const int64_t sy = i < nd - y.size() ? 1 : y[i - (nd - y.size())];
    MEDTL_CHECK(sx == sy || sx == 1 || sy == 1, "matmul: batch dims ", shape_str(x), " of a ", shape_str(a.shape()),
                " and ", shape_str(y), " of b ", shape_str(b.shape()), " do not broadcast");
    out[i] = sx == 1 ? sy : sx;
  }
  return out;
}

// Element offsets of each batch item of `t` (already expanded to the batch shape), row-major
// over the batch dims; 0 steps where the operand is broadcast.
std::vector<int64_t> batch_offsets(const Tensor& t, const Shape& batch) {
  const int64_t count = shape_numel(batch), nb = static_cast<int64_t>(batch.size());
  std::vector<int64_t> offsets(count);
  std::vector<int64_t> index(nb, 0);
  int64_t offset = 0;
  for (int64_t item = 0; item < count; ++item) {
    offsets[item] = offset;
    for (int64_t d = nb - 1; d >= 0; --d) {
      offset += t.stride(d);
      if (++index[d] < batch[d]) break;
      offset -= t.stride(d) * batch[d];
      index[d] = 0;
    }
  }
  return offsets;
}

// True when the rows of every batch item of `t` (expanded, row-major with leading dim ld) form
// one evenly spaced run of batch*rows rows, so the batch folds into GEMM's M.
bool rows_fold(const Tensor& t, const Shape& batch, int64_t rows, int64_t ld) {
  int64_t expected = rows * ld;
  for (int64_t d = static_cast<int64_t>(batch.size()) - 1; d >= 0; --d) {
    if (batch[d] == 1) continue;
    if (t.stride(d) != expected) return false;
    expected *= batch[d];
  }
  return true;
}

bool all_broadcast(const Tensor& t, const Shape& batch) {
  for (size_t d = 0; d < batch.size(); ++d)
    if (batch[d] != 1 && t.stride(static_cast<int64_t>(d)) != 0) return false;
  return true;
}

// Batches of at most this many multiply-adds per item run one single-threaded GEMM per thread
// over the batch instead of threading each GEMM. Depends on shapes only, never on the thread
// count, so a given call always takes the same path.
constexpr int64_t kSmallGemm = int64_t{1} << 21;  // 128^3

}  // namespace

// a: (..., M, K) or (K,), b: (..., K, N) or (K,) -> (broadcast(...), M, N) minus promoted dims.
Tensor matmul(const Tensor& a, const Tensor& b) {
  MEDTL_CHECK(a.defined() && b.defined(), "matmul: an operand is undefined (default-constructed)");
  MEDTL_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: operands need at least 1 dim, got a ", shape_str(a.shape()),
              " and b ", shape_str(b.shape()), "; use mul for scalars");
  MEDTL_CHECK(a.dtype() == b.dtype(), "matmul: dtypes differ: a ", shape_str(a.shape()), " is ", dtype_name(a.dtype()),
              ", b ", shape_str(b.shape()), " is ", dtype_name(b.dtype()), "; convert one with .to(DType)");

  Tensor a2 = a.dim() == 1 ? a.unsqueeze(0) : a;   // (1, K)
  Tensor b2 = b.dim() == 1 ? b.unsqueeze(1) : b;   // (K, 1)
  const int64_t m = a2.size(-2), k = a2.size(-1), n = b2.size(-1);
  MEDTL_CHECK(b2.size(-2) == k, "matmul: inner dims differ: a ", shape_str(a.shape()), " has K=", k, " but b ",
              shape_str(b.shape()), " has K=", b2.size(-2));

  const Shape batch = broadcast_batch(Shape(a2.shape().begin(), a2.shape().end() - 2),
                                      Shape(b2.shape().begin(), b2.shape().end() - 2), a, b);
  Shape out_shape = batch;
  out_shape.push_back(m);
  out_shape.push_back(n);
  add_counted_flops(matmul_flops(shape_numel(batch), m, n, k));
  if (DeviceBackend* gpu = backend_for("matmul", {&a, &b})) return gpu->matmul(a, b);
  Tensor out = empty(out_shape, a.dtype());

  if (out.numel() > 0) {
    dispatch_float(a.dtype(), "matmul", [&](auto tag) {
      using T = typename decltype(tag)::type;
      // Copy an operand only when its matrix strides fit neither row-major nor transposed form.
      MatrixLayout la = classify(m, k, a2.stride(-2), a2.stride(-1));
      if (!la.usable) {
        a2 = a2.contiguous();
        la = classify(m, k, a2.stride(-2), a2.stride(-1));
      }
      MatrixLayout lb = classify(k, n, b2.stride(-2), b2.stride(-1));
      if (!lb.usable) {
        b2 = b2.contiguous();
        lb = classify(k, n, b2.stride(-2), b2.stride(-1));
      }
      Shape a_shape = batch, b_shape = batch;
      a_shape.insert(a_shape.end(), {m, k});
      b_shape.insert(b_shape.end(), {k, n});
      const Tensor ae = a2.expand(a_shape), be = b2.expand(b_shape);  // broadcast batch dims: stride 0
      const T* pa = ae.template data<T>();
      const T* pb = be.template data<T>();
      T* pc = out.template data<T>();
      const int64_t count = shape_numel(batch);

      // (..., M, K) @ (K, N) with A's rows evenly spaced: one GEMM with M' = batch * M.
      if (count > 1 && !la.trans && all_broadcast(be, batch) && rows_fold(ae, batch, m, la.ld)) {
        gemm(false, lb.trans, count * m, n, k, T(1), pa, la.ld, pb, lb.ld, T(0), pc, n);
        return;
      }
      const std::vector<int64_t> off_a = batch_offsets(ae, batch), off_b = batch_offsets(be, batch);
      auto run = [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i)
          gemm(la.trans, lb.trans, m, n, k, T(1), pa + off_a[i], la.ld, pb + off_b[i], lb.ld, T(0), pc + i * m * n, n);
      };
      if (count > 1 && m * n * k <= kSmallGemm) {
        // Many small matrices: threads split the batch; each GEMM runs single-threaded inside.
        parallel_for(0, count, std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, m * n * k)), run);
      } else {
        run(0, count);
      }
    });
  }

  if (b.dim() == 1) out = out.squeeze(-1);           // drop N
  if (a.dim() == 1) out = out.squeeze(b.dim() == 1 ? -1 : -2);  // drop M
  return out;
}

}  // namespace medtl::ops
