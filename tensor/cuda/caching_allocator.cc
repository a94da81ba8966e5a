// The caching allocator's bookkeeping (tensor/cuda/caching_allocator.h): no CUDA here.
#include "tensor/cuda/caching_allocator.h"

#include <algorithm>
#include <cstdio>

#include "tensor/error.h"

namespace medtl::cuda {

std::string format_bytes(int64_t nbytes) {
  char buf[64];
  const double b = static_cast<double>(nbytes);
  if (nbytes >= (int64_t{1} << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", b / (1 << 30));
  else if (nbytes >= (int64_t{1} << 20)) std::snprintf(buf, sizeof buf, "%.2f MiB", b / (1 << 20));
  else if (nbytes >= 1024) std::snprintf(buf, sizeof buf, "%.2f KiB", b / 1024);
  else return str_cat(nbytes, " bytes");
  return str_cat(buf, " (", nbytes, " bytes)");
}

CachingAllocator::CachingAllocator(RawMemory raw, std::string device_name)
    : raw_(std::move(raw)), device_name_(std::move(device_name)) {
  MEDTL_CHECK(raw_.allocate && raw_.release, "CachingAllocator(", device_name_, "): raw allocate/release missing");
}

CachingAllocator::~CachingAllocator() {
  std::lock_guard<std::mutex> lock(mutex_);
  flush_locked();
}

int64_t CachingAllocator::size_class(int64_t nbytes) {
  MEDTL_CHECK(nbytes > 0, "CachingAllocator::size_class: size must be positive, got ", nbytes);
  constexpr int64_t kMin = 512;  // cudaMalloc aligns to 256; 512 keeps small classes few
  if (nbytes <= 4096) return (nbytes + kMin - 1) / kMin * kMin;
  // k with 2^k < nbytes <= 2^(k+1); classes are 2^k + j 2^(k-2).
  int k = 0;
  while ((int64_t{1} << (k + 1)) < nbytes) ++k;
  const int64_t step = int64_t{1} << (k - 2);
  return (nbytes + step - 1) / step * step;
}

void* CachingAllocator::allocate(int64_t nbytes, StreamHandle stream) {
  MEDTL_CHECK(nbytes > 0, "CachingAllocator(", device_name_, "): cannot allocate ", nbytes, " bytes");
  const int64_t size = size_class(nbytes);
  std::lock_guard<std::mutex> lock(mutex_);

  auto it = free_.find({stream, size});
  if (it != free_.end() && !it->second.empty()) {
    void* ptr = it->second.back();
    it->second.pop_back();
    stats_.cached_bytes -= size;
    stats_.cache_hits += 1;
    in_use_[ptr] = Block{size, stream};
    stats_.in_use_bytes += size;
    stats_.peak_in_use_bytes = std::max(stats_.peak_in_use_bytes, stats_.in_use_bytes);
    return ptr;
  }

  void* ptr = raw_.allocate(size);
  const int64_t cached_at_failure = stats_.cached_bytes;
  if (ptr == nullptr && stats_.cached_bytes > 0) {
    // Blocks cached for other size classes or streams may be what the device is short of.
    flush_locked();
    ptr = raw_.allocate(size);
  }
  if (ptr == nullptr) {
    const std::string device = raw_.describe ? raw_.describe() : std::string("(no device description)");
    ::medtl::detail::throw_error(
        __FILE__, __LINE__,
        str_cat("CUDA out of memory on ", device_name_, ": requested ", format_bytes(nbytes), ", size class ",
                format_bytes(size), "; in use by live tensors ", format_bytes(stats_.in_use_bytes),
                " (peak ", format_bytes(stats_.peak_in_use_bytes), "); cached for reuse ",
                format_bytes(cached_at_failure), ", all returned to the device before one retry; device: ", device,
                ". To fix: lower the batch size (--batch), drop references to tensors no longer needed "
                "(activations kept for backward dominate training), or check `nvidia-smi` for other processes "
                "on this GPU."));
  }
  stats_.device_allocs += 1;
  in_use_[ptr] = Block{size, stream};
  stats_.in_use_bytes += size;
  stats_.peak_in_use_bytes = std::max(stats_.peak_in_use_bytes, stats_.in_use_bytes);
  return ptr;
}

void CachingAllocator::release(void* ptr) {
  if (ptr == nullptr) return;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = in_use_.find(ptr);
  MEDTL_CHECK(it != in_use_.end(), "CachingAllocator(", device_name_, "): release of ", ptr,
              ", which is not an allocated block (freed twice, or not from this allocator)");
  const Block block = it->second;
  in_use_.erase(it);
  stats_.in_use_bytes -= block.size;
  stats_.cached_bytes += block.size;
  free_[{block.stream, block.size}].push_back(ptr);
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mutex_);
  flush_locked();
}

void CachingAllocator::flush_locked() {
  for (auto& entry : free_) {
    for (void* ptr : entry.second) {
      raw_.release(ptr);
      stats_.device_frees += 1;
    }
  }
  free_.clear();
  stats_.cached_bytes = 0;
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.peak_in_use_bytes = stats_.in_use_bytes;
}

}  // namespace medtl::cuda
