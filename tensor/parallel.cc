// The thread-count setting and parallel_for, over OpenMP (shared with oneDNN).
#include "tensor/parallel.h"

#include <omp.h>

#include <algorithm>

#include "tensor/error.h"

namespace medtl {

void set_num_threads(int threads) {
  MEDTL_CHECK(threads >= 1, "set_num_threads: need at least 1 thread, got ", threads);
  omp_set_num_threads(threads);
}

int get_num_threads() { return omp_get_max_threads(); }

void parallel_for(int64_t begin, int64_t end, int64_t grain, const std::function<void(int64_t, int64_t)>& body) {
  const int64_t n = end - begin;
  if (n <= 0) return;
  const int64_t threads = std::min<int64_t>(get_num_threads(), std::max<int64_t>(1, n / std::max<int64_t>(grain, 1)));
  if (threads <= 1 || omp_in_parallel()) {
    body(begin, end);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), count = omp_get_num_threads();
    const int64_t piece_begin = begin + n * t / count, piece_end = begin + n * (t + 1) / count;
    if (piece_begin < piece_end) body(piece_begin, piece_end);
  }
}

}  // namespace medtl
