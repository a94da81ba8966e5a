// The caching device-memory allocator's bookkeeping: size classes, per-stream free lists, stats and
// the out-of-memory message. Plain C++ with the raw allocate/free injected, so that the same code
// serves cudaMalloc under --config=cuda and a malloc stand-in in tests that need no GPU.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace medtl::cuda {

// A CUDA stream as an opaque pointer (cudaStream_t is `CUstream_st*`); nullptr is the default
// stream. Plain C++ headers use this so that they need no CUDA include.
using StreamHandle = void*;

struct AllocatorStats {
  int64_t in_use_bytes = 0;       // blocks handed out and not yet released (size-class bytes)
  int64_t cached_bytes = 0;       // released blocks kept for reuse, still held from the device
  int64_t peak_in_use_bytes = 0;  // the most in_use_bytes ever reached (reset_peak() restarts it)
  int64_t device_allocs = 0;      // successful raw allocations (cudaMalloc calls)
  int64_t device_frees = 0;       // raw frees (cache flushes)
  int64_t cache_hits = 0;         // allocations served from a free list
};

// The raw device memory below the cache.
struct RawMemory {
  // nullptr when the device is out of memory (the cache is then flushed and the call retried);
  // throws medtl::Error for any other failure.
  std::function<void*(int64_t nbytes)> allocate;
  std::function<void(void* ptr)> release;
  // One line on the device's memory for the out-of-memory message, e.g.
  // "NVIDIA H200: 139.8 GiB total, 0.4 GiB free (other processes included)".
  std::function<std::string()> describe;
};

// Hands out device blocks by size class and keeps released blocks on a free list per
// (stream, size class). A block released on stream S is only handed out again for stream S:
// work queued on S runs in order, so a later kernel on S cannot touch the block before the earlier
// kernels that used it are done, and no synchronisation is needed. Using a block on another
// stream than the one it was allocated for is the caller's business (synchronise first).
// Thread-safe.
class CachingAllocator {
 public:
  CachingAllocator(RawMemory raw, std::string device_name);
  // Returns the cached blocks to the device. Blocks still in use are left alone (their owners
  // free them through release(), which must not happen after destruction).
  ~CachingAllocator();
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // A block of at least nbytes (nbytes > 0) for use on `stream`. When the device is out of
  // memory, flushes the cache and retries once; then throws medtl::Error saying how many bytes
  // were requested, in use and cached, and what to do.
  void* allocate(int64_t nbytes, StreamHandle stream);
  // Puts a block from allocate() on its stream's free list. nullptr is ignored; a pointer this
  // allocator did not hand out throws medtl::Error (a double free or a foreign pointer).
  void release(void* ptr);
  // Returns every cached block to the device (e.g. before handing the GPU to another process).
  void empty_cache();
  AllocatorStats stats() const;
  void reset_peak();

  // The size class of a request: multiples of 512 bytes up to 4 KiB, then four classes per power
  // of two (2^k + j 2^(k-2), j = 1..4), so a block wastes less than a quarter of its size and
  // similar requests (batch shapes that vary a little) share a class.
  static int64_t size_class(int64_t nbytes);

 private:
  void flush_locked();

  RawMemory raw_;
  std::string device_name_;
  mutable std::mutex mutex_;
  // Free blocks by (stream, size class): exact-class reuse keeps lookups O(log n) and never splits.
  std::map<std::pair<StreamHandle, int64_t>, std::vector<void*>> free_;
  struct Block {
    int64_t size;
    StreamHandle stream;
  };
  std::unordered_map<void*, Block> in_use_;
  AllocatorStats stats_;
};

// "1.50 GiB (1610612736 bytes)": for messages.
std::string format_bytes(int64_t nbytes);

}  // namespace medtl::cuda
