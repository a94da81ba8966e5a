// The caching allocator's bookkeeping over a malloc stand-in for cudaMalloc: size classes,
// stream-aware reuse, stats, and the out-of-memory message. Needs no GPU: runs in every build.
#include "tensor/cuda/caching_allocator.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <set>
#include <string>

#include "tests/cuda/cuda_test_util.h"

namespace medtl::cuda {
namespace {

// A fake device with `capacity` bytes: malloc below, nullptr (out of memory) above the capacity.
struct FakeDevice {
  int64_t capacity;
  int64_t used = 0;
  int64_t allocs = 0, frees = 0;
  std::set<void*> live;
  std::unordered_map<void*, int64_t> sizes;

  RawMemory raw() {
    return RawMemory{
        [this](int64_t n) -> void* {
          if (used + n > capacity) return nullptr;
          void* p = std::malloc(static_cast<size_t>(n));
          used += n;
          ++allocs;
          live.insert(p);
          sizes[p] = n;
          return p;
        },
        [this](void* p) {
          EXPECT_EQ(live.erase(p), 1u) << "raw free of a pointer the fake device did not hand out";
          used -= sizes[p];
          ++frees;
          std::free(p);
        },
        [this] { return str_cat("fake GPU: ", capacity, " bytes total, ", capacity - used, " free"); }};
  }
};

StreamHandle stream(int i) { return reinterpret_cast<StreamHandle>(static_cast<uintptr_t>(0x1000 * i)); }

TEST(CachingAllocator, SizeClasses) {
  EXPECT_EQ(CachingAllocator::size_class(1), 512);
  EXPECT_EQ(CachingAllocator::size_class(512), 512);
  EXPECT_EQ(CachingAllocator::size_class(513), 1024);
  EXPECT_EQ(CachingAllocator::size_class(4096), 4096);
  EXPECT_EQ(CachingAllocator::size_class(4097), 5120);    // 4096 + 1024
  EXPECT_EQ(CachingAllocator::size_class(8192), 8192);
  EXPECT_EQ(CachingAllocator::size_class(8193), 10240);   // 8192 + 2048
  EXPECT_EQ(CachingAllocator::size_class(100 << 20), 112 << 20);  // 64 MiB + 3 * 16 MiB
  // Every class holds its request and wastes less than a quarter of it (above 4 KiB).
  for (int64_t n = 1; n < (int64_t{1} << 40); n = n * 3 + 7) {
    const int64_t c = CachingAllocator::size_class(n);
    EXPECT_GE(c, n);
    if (n > 4096) {
      EXPECT_LT(c - n, n / 4 + 1) << n;
    }
    EXPECT_EQ(CachingAllocator::size_class(c), c) << "a class must map to itself: " << c;
  }
  EXPECT_ERROR_CONTAINS(CachingAllocator::size_class(0), "positive");
}

TEST(CachingAllocator, ReusesBlocksOnTheSameStreamOnly) {
  FakeDevice dev{int64_t{1} << 30};
  CachingAllocator alloc(dev.raw(), "fake:0");
  void* a = alloc.allocate(1000, stream(1));
  alloc.release(a);
  EXPECT_EQ(alloc.stats().cached_bytes, 1024);
  EXPECT_EQ(alloc.stats().in_use_bytes, 0);

  // Same stream, same class (1000 and 700 both round to 1024): the same block, no raw allocation.
  void* b = alloc.allocate(700, stream(1));
  EXPECT_EQ(b, a);
  EXPECT_EQ(dev.allocs, 1);
  EXPECT_EQ(alloc.stats().cache_hits, 1);
  alloc.release(b);

  // Another stream must not get stream 1's block: its kernels may still be using it.
  void* c = alloc.allocate(1000, stream(2));
  EXPECT_NE(c, a);
  EXPECT_EQ(dev.allocs, 2);
  // A different class on the same stream: a new block as well.
  void* d = alloc.allocate(5000, stream(1));
  EXPECT_NE(d, a);
  EXPECT_EQ(dev.allocs, 3);

  const AllocatorStats s = alloc.stats();
  EXPECT_EQ(s.in_use_bytes, 1024 + 5120);
  EXPECT_EQ(s.cached_bytes, 1024);
  EXPECT_EQ(s.peak_in_use_bytes, 1024 + 5120);
  alloc.release(c);
  alloc.release(d);
  alloc.empty_cache();
  EXPECT_EQ(alloc.stats().cached_bytes, 0);
  EXPECT_EQ(dev.frees, 3);
  EXPECT_TRUE(dev.live.empty());
}

TEST(CachingAllocator, ReleaseOfUnknownPointerThrows) {
  FakeDevice dev{int64_t{1} << 20};
  CachingAllocator alloc(dev.raw(), "fake:0");
  void* a = alloc.allocate(64, nullptr);
  alloc.release(a);
  EXPECT_ERROR_CONTAINS(alloc.release(a), "not an allocated block");
  int local = 0;
  EXPECT_ERROR_CONTAINS(alloc.release(&local), "freed twice, or not from this allocator");
  alloc.release(nullptr);  // ignored, as free(nullptr)
}

TEST(CachingAllocator, OutOfMemoryFlushesTheCacheAndRetries) {
  FakeDevice dev{10 * 1024};
  CachingAllocator alloc(dev.raw(), "fake:0");
  // 8 KiB cached on stream 2 leaves 2 KiB: a 6 KiB request on stream 1 fits only after a flush.
  alloc.release(alloc.allocate(8192, stream(2)));
  void* p = alloc.allocate(6000, stream(1));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(alloc.stats().cached_bytes, 0);
  EXPECT_EQ(dev.frees, 1);
  alloc.release(p);
}

TEST(CachingAllocator, OutOfMemoryMessageReportsRequestedInUseAndCached) {
  FakeDevice dev{64 * 1024};
  CachingAllocator alloc(dev.raw(), "fake:0");
  void* held = alloc.allocate(40 * 1024, nullptr);
  alloc.release(alloc.allocate(16 * 1024, stream(3)));
  try {
    (void)alloc.allocate(int64_t{1} << 20, nullptr);
    ADD_FAILURE() << "expected an out-of-memory error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("CUDA out of memory on fake:0"), std::string::npos) << what;
    EXPECT_NE(what.find("requested 1.00 MiB (1048576 bytes)"), std::string::npos) << what;
    EXPECT_NE(what.find("in use by live tensors 40.00 KiB (40960 bytes)"), std::string::npos) << what;
    EXPECT_NE(what.find("cached for reuse 16.00 KiB (16384 bytes)"), std::string::npos) << what;
    EXPECT_NE(what.find("fake GPU: 65536 bytes total"), std::string::npos) << what;
    EXPECT_NE(what.find("lower the batch size"), std::string::npos) << what;
  }
  // The failed request changed nothing that is in use; the retry had flushed the cache.
  EXPECT_EQ(alloc.stats().in_use_bytes, 40 * 1024);
  EXPECT_EQ(alloc.stats().cached_bytes, 0);
  alloc.release(held);
}

TEST(CachingAllocator, PeakAndReset) {
  FakeDevice dev{int64_t{1} << 20};
  CachingAllocator alloc(dev.raw(), "fake:0");
  void* a = alloc.allocate(4096, nullptr);
  void* b = alloc.allocate(4096, nullptr);
  alloc.release(a);
  EXPECT_EQ(alloc.stats().peak_in_use_bytes, 8192);
  alloc.reset_peak();
  EXPECT_EQ(alloc.stats().peak_in_use_bytes, 4096);
  alloc.release(b);
}

TEST(CachingAllocator, DestructorReturnsTheCache) {
  FakeDevice dev{int64_t{1} << 20};
  {
    CachingAllocator alloc(dev.raw(), "fake:0");
    alloc.release(alloc.allocate(100, stream(1)));
    alloc.release(alloc.allocate(100000, stream(2)));
  }
  EXPECT_EQ(dev.allocs, 2);
  EXPECT_EQ(dev.frees, 2);
  EXPECT_TRUE(dev.live.empty());
}

}  // namespace
}  // namespace medtl::cuda
