// The caching CPU allocator behind Storage, and its counters (see allocator.h for the design).
#include "tensor/cpu/allocator.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "tensor/error.h"

namespace medtl {
namespace {

constexpr int64_t kDefaultCacheLimit = int64_t{4} << 30;  // 4 GiB

// MEDTL_CPU_CACHE_BYTES, if set: a non-negative integer number of bytes.
int64_t initial_cache_limit() {
  const char* env = std::getenv("MEDTL_CPU_CACHE_BYTES");
  if (env == nullptr || *env == '\0') return kDefaultCacheLimit;
  char* end = nullptr;
  const long long value = std::strtoll(env, &end, 10);
  MEDTL_CHECK(*end == '\0' && value >= 0, "MEDTL_CPU_CACHE_BYTES=", env,
              ": expected a number of bytes >= 0 (0 turns the CPU allocator's cache off)");
  return value;
}

bool initial_debug_fill() {
  const char* env = std::getenv("MEDTL_DEBUG_ALLOC_FILL");
  return env != nullptr && std::strcmp(env, "1") == 0;
}

struct State {
  std::mutex mutex;
  std::unordered_map<int64_t, std::vector<void*>> free_lists;  // block size -> blocks, last freed at the back
  MemoryStats stats;
  bool debug_fill = initial_debug_fill();
  State() { stats.cache_limit_bytes = initial_cache_limit(); }
};

// Never destroyed: storages held by static objects may be freed after main returns.
State& state() {
  static State* s = new State();
  return *s;
}

void note_reserved_peak(MemoryStats& s) {
  s.reserved_bytes = s.allocated_bytes + s.cached_bytes;
  if (s.reserved_bytes > s.peak_reserved_bytes) s.peak_reserved_bytes = s.reserved_bytes;
}

// Frees cached blocks (largest classes first) until the cache holds at most `target` bytes.
// Caller holds the mutex.
void trim_locked(State& st, int64_t target) {
  if (st.stats.cached_bytes <= target) return;
  std::vector<int64_t> sizes;
  for (const auto& entry : st.free_lists) sizes.push_back(entry.first);
  std::sort(sizes.begin(), sizes.end());
  for (auto it = sizes.rbegin(); it != sizes.rend() && st.stats.cached_bytes > target; ++it) {
    std::vector<void*>& list = st.free_lists[*it];
    while (!list.empty() && st.stats.cached_bytes > target) {
      std::free(list.back());
      list.pop_back();
      st.stats.cached_bytes -= *it;
    }
    if (list.empty()) st.free_lists.erase(*it);
  }
  note_reserved_peak(st.stats);
}

void* system_alloc(int64_t size) { return std::aligned_alloc(cpu::kAlignment, static_cast<size_t>(size)); }

}  // namespace

MemoryStats memory_stats() {
  State& st = state();
  std::lock_guard<std::mutex> lock(st.mutex);
  return st.stats;
}

void reset_peak_memory_stats() {
  State& st = state();
  std::lock_guard<std::mutex> lock(st.mutex);
  st.stats.peak_allocated_bytes = st.stats.allocated_bytes;
  st.stats.peak_reserved_bytes = st.stats.reserved_bytes;
}

void release_cached_memory() {
  State& st = state();
  std::lock_guard<std::mutex> lock(st.mutex);
  trim_locked(st, 0);
}

void set_cpu_cache_limit(int64_t bytes) {
  MEDTL_CHECK(bytes >= 0, "set_cpu_cache_limit: the limit must be >= 0 bytes, got ", bytes,
              " (0 turns the cache off)");
  State& st = state();
  std::lock_guard<std::mutex> lock(st.mutex);
  st.stats.cache_limit_bytes = bytes;
  trim_locked(st, bytes);
}

int64_t cpu_cache_limit() {
  State& st = state();
  std::lock_guard<std::mutex> lock(st.mutex);
  return st.stats.cache_limit_bytes;
}

void set_debug_fill(bool on) {
  State& st = state();
  std::lock_guard<std::mutex> lock(st.mutex);
  st.debug_fill = on;
}

namespace cpu {

int64_t block_size(int64_t nbytes) {
  MEDTL_CHECK(nbytes >= 0, "cpu allocator: negative size ", nbytes);
  if (nbytes < kCacheMinBytes) return std::max<int64_t>(kAlignment, (nbytes + kAlignment - 1) / kAlignment * kAlignment);
  // Four classes per power of two: multiples of 2^k / 4, where 2^k <= nbytes < 2^(k+1).
  int64_t power = kCacheMinBytes;
  while (power <= nbytes / 2) power *= 2;
  const int64_t step = power / 4;
  return (nbytes + step - 1) / step * step;
}

void* allocate(int64_t nbytes) {
  const int64_t size = block_size(nbytes);
  State& st = state();
  void* ptr = nullptr;
  bool fill = false;
  {
    std::lock_guard<std::mutex> lock(st.mutex);
    fill = st.debug_fill;
    ++st.stats.allocations;
    if (size >= kCacheMinBytes) {
      auto it = st.free_lists.find(size);
      if (it != st.free_lists.end() && !it->second.empty()) {
        ptr = it->second.back();
        it->second.pop_back();
        st.stats.cached_bytes -= size;
        ++st.stats.cache_hits;
      } else {
        ++st.stats.cache_misses;
      }
    }
    if (ptr == nullptr) {
      // From the system (outside the lock would be faster, but a miss is rare once warm, and
      // inside it a failed allocation can release the cache and retry without racing).
      ptr = system_alloc(size);
      if (ptr == nullptr && st.stats.cached_bytes > 0) {
        trim_locked(st, 0);
        ptr = system_alloc(size);
      }
      MEDTL_CHECK(ptr != nullptr, "Storage: out of memory allocating ", nbytes, " bytes on the CPU (",
                  st.stats.allocated_bytes, " bytes already in use)");
    }
    st.stats.allocated_bytes += size;
    if (st.stats.allocated_bytes > st.stats.peak_allocated_bytes) st.stats.peak_allocated_bytes = st.stats.allocated_bytes;
    note_reserved_peak(st.stats);
  }
  if (fill) std::memset(ptr, 0xFF, static_cast<size_t>(size));
  return ptr;
}

void release(void* ptr, int64_t nbytes) {
  if (ptr == nullptr) return;
  const int64_t size = block_size(nbytes);
  State& st = state();
  bool to_system = true;
  {
    std::lock_guard<std::mutex> lock(st.mutex);
    st.stats.allocated_bytes -= size;
    if (size >= kCacheMinBytes && st.stats.cached_bytes + size <= st.stats.cache_limit_bytes) {
      st.free_lists[size].push_back(ptr);
      st.stats.cached_bytes += size;
      to_system = false;
    }
    note_reserved_peak(st.stats);
  }
  if (to_system) std::free(ptr);
}

}  // namespace cpu
}  // namespace medtl
