// The deterministic-mode setting, the conv chunk size, and OmpThreadsScope.
#include "tensor/determinism.h"

#include <omp.h>

#include <atomic>

#include "tensor/error.h"

namespace medtl {
namespace {

std::atomic<bool> g_deterministic{true};
std::atomic<int64_t> g_conv_chunk{kDefaultConvChunk};

}  // namespace

void set_deterministic(bool on) { g_deterministic.store(on); }
bool deterministic() { return g_deterministic.load(); }

void set_deterministic_conv_chunk(int64_t samples) {
  MEDTL_CHECK(samples >= 1, "set_deterministic_conv_chunk: need at least 1 sample per chunk, got ", samples);
  g_conv_chunk.store(samples);
}
int64_t deterministic_conv_chunk() { return g_conv_chunk.load(); }

OmpThreadsScope::OmpThreadsScope(int threads) : previous_(omp_get_max_threads()) {
  MEDTL_CHECK(threads >= 1, "OmpThreadsScope: need at least 1 thread, got ", threads);
  if (threads != previous_) omp_set_num_threads(threads);
}
OmpThreadsScope::~OmpThreadsScope() {
  if (omp_get_max_threads() != previous_) omp_set_num_threads(previous_);
}

}  // namespace medtl
