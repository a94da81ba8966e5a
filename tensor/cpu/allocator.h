// The CPU allocator behind Storage: 64-byte-aligned blocks, with a cache of freed large blocks,
// and the memory counters the design asks every experiment to report (peak memory).
//
// Why a cache: a large block from glibc is a fresh mmap, and the first touch of each of its pages
// costs a page fault plus zeroing by the kernel (about 3 ms per MiB on the development VM), which
// is more than many kernels' own work. A training step allocates the same sizes every iteration,
// so blocks freed by one step serve the next.
//
// How it works:
//   - Blocks of at least kCacheMinBytes (64 KiB) have their size rounded up to a size class: four
//     classes per power of two (2^k, 1.25 2^k, 1.5 2^k, 1.75 2^k), so at most 25% (about 11% on
//     average) is wasted and slightly different sizes share blocks. When freed they go onto their
//     class's free list (last freed, first reused: its pages are mapped and likely in cache)
//     instead of back to the system, unless that would put more than the cache limit in the lists.
//   - Smaller blocks go straight to aligned_alloc / free (glibc reuses those well itself).
//   - Everything is guarded by one mutex: any thread may allocate and free.
//   - The cache never changes a value: `empty` memory was never promised to be zero, and every
//     creation function fills what it promises. set_debug_fill(true) (or MEDTL_DEBUG_ALLOC_FILL=1
//     in the environment) fills every block it hands out with 0xFF bytes (NaN for floats) to flush
//     out code that reads memory it never wrote.
//
// The cache limit defaults to 4 GiB; MEDTL_CPU_CACHE_BYTES=<bytes> in the environment sets another
// (0 turns the cache off: every block then comes from and goes back to the system, as before).
#pragma once

#include <cstdint>

namespace medtl {

struct MemoryStats {
  int64_t allocated_bytes = 0;       // bytes in blocks held by live CPU storages (size-class rounded)
  int64_t peak_allocated_bytes = 0;  // the most allocated_bytes has been since start or the last reset
  int64_t cached_bytes = 0;          // bytes in free lists, ready for reuse
  int64_t reserved_bytes = 0;        // allocated + cached: what the allocator holds from the system
  int64_t peak_reserved_bytes = 0;
  int64_t cache_limit_bytes = 0;     // the most cached_bytes may reach
  int64_t cache_hits = 0;            // large allocations served from a free list
  int64_t cache_misses = 0;          // large allocations that went to the system
  int64_t allocations = 0;           // all CPU allocations, small and large
};

// A snapshot of the CPU allocator's counters.
MemoryStats memory_stats();
// Restarts both peaks at the current values (e.g. to measure one phase's peak).
void reset_peak_memory_stats();
// Returns every cached block to the system. Blocks in use are not affected.
void release_cached_memory();
// The most bytes the free lists may hold; lowering it below what they hold releases blocks until
// they fit. 0 turns caching off. Must be >= 0.
void set_cpu_cache_limit(int64_t bytes);
int64_t cpu_cache_limit();
// Fills every block handed out from now on with 0xFF bytes (a debugging aid; slow).
void set_debug_fill(bool on);

namespace cpu {

constexpr int64_t kAlignment = 64;           // one cache line, one AVX-512 vector
constexpr int64_t kCacheMinBytes = 64 << 10;  // blocks this large or larger are cached

// The size of the block that serves a request of nbytes: a multiple of kAlignment (at least one),
// and for large requests the size class, which is what the block really holds.
int64_t block_size(int64_t nbytes);

// A block of at least nbytes bytes (0 allowed), 64-byte aligned; never null (throws medtl::Error
// when even after releasing the cache the system has no memory).
void* allocate(int64_t nbytes);
// Gives back a block from allocate(); nbytes must be the size it was allocated with.
void release(void* ptr, int64_t nbytes);

}  // namespace cpu
}  // namespace medtl
