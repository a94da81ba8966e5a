// Deterministic mode: one process-wide setting that makes every float32 kernel whose library
// implementation may split a reduction by the thread count (oneDNN convolutions and sgemm) run in
// a thread-count-independent form instead. Default ON. Run manifests report it.
//
// What it changes (tensor/cpu/conv2d_onednn.cc, tensor/cpu/matmul_onednn.cc):
//   conv2d (forward, backward-data, backward-weights): the batch is cut into fixed chunks of
//     deterministic_conv_chunk() samples (a constant, never derived from the thread count); each
//     chunk runs through a oneDNN primitive built and executed for exactly one thread, chunks are
//     spread over medtl::parallel_for. Forward and backward-data write their chunk's slice of the
//     output; backward-weights sums the per-chunk partial gradients in ascending chunk order.
//   float32 GEMM: C is cut into fixed tiles (kGemmTile rows x kGemmTile columns), each tile one
//     single-threaded sgemm over the whole K; threads only pick tiles.
// Both make the result a function of the shapes (and the CPU's instruction set, which picks
// oneDNN's kernels) alone: bit-identical for 1, 2, 3, ... threads. Fast mode (false) lets oneDNN
// thread each call as it likes: faster, but e.g. backward-weights sums its batch partials in an
// order that depends on the thread count. See docs/reproducibility.md.
//
// Set it before running kernels, not while they run on other threads.
#pragma once

#include <cstdint>

namespace medtl {

void set_deterministic(bool on);
bool deterministic();

// Sets the mode for its lifetime, then restores the previous one.
class DeterministicScope {
 public:
  explicit DeterministicScope(bool on) : previous_(deterministic()) { set_deterministic(on); }
  ~DeterministicScope() { set_deterministic(previous_); }
  DeterministicScope(const DeterministicScope&) = delete;
  DeterministicScope& operator=(const DeterministicScope&) = delete;

 private:
  bool previous_;
};

// Samples per convolution chunk in deterministic mode (default kDefaultConvChunk). Changing it
// changes the float32 bits of backward-weights (the partial sums are grouped differently), so a
// run that must be reproduced records it (the run manifest does). For benchmarks and tests.
constexpr int64_t kDefaultConvChunk = 2;
void set_deterministic_conv_chunk(int64_t samples);
int64_t deterministic_conv_chunk();

// The rows and columns of one deterministic float32 GEMM tile.
constexpr int64_t kGemmTile = 256;

// Sets OpenMP's thread count for the calling thread only (its own ICV: inside a parallel region
// that is this thread's task; outside, the caller's) for its lifetime, then restores it. oneDNN
// reads this count when it builds a primitive or runs sgemm, so a kernel called inside the scope
// with threads = 1 is built and run for exactly one thread, in or out of a parallel region.
class OmpThreadsScope {
 public:
  explicit OmpThreadsScope(int threads);
  ~OmpThreadsScope();
  OmpThreadsScope(const OmpThreadsScope&) = delete;
  OmpThreadsScope& operator=(const OmpThreadsScope&) = delete;

 private:
  int previous_;
};

}  // namespace medtl
