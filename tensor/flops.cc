// The process-wide FLOP counter of tensor/flops.h.
#include "tensor/flops.h"

#include <atomic>

namespace medtl {
namespace {
std::atomic<int64_t> g_flops{0};
}  // namespace

int64_t conv2d_flops(const Shape& y_shape, const Shape& w_shape) {
  return 2 * shape_numel(y_shape) * w_shape[1] * w_shape[2] * w_shape[3];
}

int64_t matmul_flops(int64_t batch, int64_t m, int64_t n, int64_t k) { return 2 * batch * m * n * k; }

void add_counted_flops(int64_t flops) { g_flops.fetch_add(flops, std::memory_order_relaxed); }

int64_t counted_flops() { return g_flops.load(std::memory_order_relaxed); }

}  // namespace medtl
