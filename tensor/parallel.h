// CPU parallelism: one thread-count setting and a static-partition parallel_for over OpenMP.
//
// OpenMP, not a pool of our own, because oneDNN (Debian's build) runs on OpenMP too: one runtime
// means one set of threads and no oversubscription. Partitioning is static (contiguous equal
// pieces), and every kernel that uses it writes results that do not depend on where the pieces
// were cut, so outputs are bit-identical for any thread count.
#pragma once

#include <cstdint>
#include <functional>

namespace medtl {

// Threads used by our kernels and by oneDNN. Default: what OpenMP chose (OMP_NUM_THREADS or cores).
void set_num_threads(int threads);
int get_num_threads();

// Calls body(begin, end) on disjoint contiguous sub-ranges covering [begin, end). Runs serially
// when the range is smaller than grain (elements per thread worth the start-up cost) or when
// already inside a parallel region.
void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& body);

}  // namespace medtl
