// The caching CPU allocator (tensor/cpu/allocator.h): size classes, reuse of freed blocks,
// alignment, counters, the cache limit, release_cached_memory, concurrent use from many threads,
// and that caching changes no value.
#include "tensor/cpu/allocator.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "tensor/ops/copy.h"
#include "tensor/tensor.h"
#include "tests/test_util.h"

namespace medtl {
namespace {

using ::medtl::testing::tensors_identical;

constexpr int64_t kMiB = 1 << 20;

bool aligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % cpu::kAlignment == 0; }

// Every test starts with an empty cache and the default limit, and leaves things that way.
class Allocator : public ::testing::Test {
 protected:
  void SetUp() override {
    limit_ = cpu_cache_limit();
    set_cpu_cache_limit(int64_t{4} << 30);
    release_cached_memory();
  }
  void TearDown() override {
    set_debug_fill(false);
    set_cpu_cache_limit(limit_);
    release_cached_memory();
  }
  int64_t limit_ = 0;
};

TEST_F(Allocator, BlockSizesAreAlignedSizeClasses) {
  EXPECT_EQ(cpu::block_size(0), 64);
  EXPECT_EQ(cpu::block_size(1), 64);
  EXPECT_EQ(cpu::block_size(64), 64);
  EXPECT_EQ(cpu::block_size(65), 128);
  EXPECT_EQ(cpu::block_size(cpu::kCacheMinBytes - 1), cpu::kCacheMinBytes);
  EXPECT_EQ(cpu::block_size(cpu::kCacheMinBytes), cpu::kCacheMinBytes);
  EXPECT_EQ(cpu::block_size(cpu::kCacheMinBytes + 1), cpu::kCacheMinBytes * 5 / 4);
  EXPECT_EQ(cpu::block_size(kMiB), kMiB);
  EXPECT_EQ(cpu::block_size(kMiB + 1), kMiB * 5 / 4);
  EXPECT_EQ(cpu::block_size(kMiB * 13 / 10), kMiB * 3 / 2);
  EXPECT_EQ(cpu::block_size(kMiB * 7 / 4 + 1), 2 * kMiB);
  // Large sizes: never smaller than asked, at most 25% more, a multiple of the alignment.
  for (int64_t n = cpu::kCacheMinBytes; n < (int64_t{1} << 34); n = n * 11 / 10 + 12345) {
    const int64_t b = cpu::block_size(n);
    EXPECT_GE(b, n);
    EXPECT_LE(b, n + n / 4) << n;
    EXPECT_EQ(b % cpu::kAlignment, 0) << n;
  }
}

TEST_F(Allocator, FreedLargeBlockIsReusedForTheSameSize) {
  const MemoryStats before = memory_stats();
  void* p = cpu::allocate(3 * kMiB);
  cpu::release(p, 3 * kMiB);
  void* q = cpu::allocate(3 * kMiB);
  EXPECT_EQ(p, q);
  const MemoryStats after = memory_stats();
  EXPECT_EQ(after.cache_misses - before.cache_misses, 1);
  EXPECT_EQ(after.cache_hits - before.cache_hits, 1);
  cpu::release(q, 3 * kMiB);
}

TEST_F(Allocator, SlightlyDifferentSizesShareABlockButOtherClassesDoNot) {
  void* p = cpu::allocate(1000000);
  cpu::release(p, 1000000);
  void* q = cpu::allocate(1000100);  // same class (1 MiB) as 1000000
  EXPECT_EQ(p, q);
  cpu::release(q, 1000100);
  void* r = cpu::allocate(600000);  // another class: not the cached 1 MiB block
  EXPECT_NE(r, q);
  cpu::release(r, 600000);
}

TEST_F(Allocator, LastFreedIsFirstReused) {
  void* a = cpu::allocate(kMiB);
  void* b = cpu::allocate(kMiB);
  cpu::release(a, kMiB);
  cpu::release(b, kMiB);
  void* c = cpu::allocate(kMiB);
  void* d = cpu::allocate(kMiB);
  EXPECT_EQ(c, b);
  EXPECT_EQ(d, a);
  cpu::release(c, kMiB);
  cpu::release(d, kMiB);
}

TEST_F(Allocator, TensorStorageReusesFreedMemory) {
  void* first = nullptr;
  {
    Tensor a = empty({512, 1024});  // 2 MiB of float32
    first = a.raw_data();
  }
  Tensor b = empty({1024, 512});
  EXPECT_EQ(b.raw_data(), first);
  Tensor c = empty({1024, 512});  // b still holds the block: c needs another
  EXPECT_NE(c.raw_data(), first);
}

TEST_F(Allocator, SmallBlocksAreNotCached) {
  const int64_t cached = memory_stats().cached_bytes;
  void* p = cpu::allocate(1000);
  cpu::release(p, 1000);
  EXPECT_EQ(memory_stats().cached_bytes, cached);
}

TEST_F(Allocator, EveryBlockIs64ByteAligned) {
  std::vector<std::pair<void*, int64_t>> blocks;
  for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{63}, int64_t{64}, int64_t{65}, int64_t{1000}, int64_t{65535},
                    int64_t{65536}, int64_t{65537}, kMiB + 3, 5 * kMiB + 1, 40 * kMiB + 7}) {
    void* p = cpu::allocate(n);
    EXPECT_TRUE(aligned(p)) << n;
    blocks.push_back({p, n});
  }
  for (auto& [p, n] : blocks) cpu::release(p, n);
  for (auto& [p, n] : blocks) {  // again, now partly from the cache
    void* q = cpu::allocate(n);
    EXPECT_TRUE(aligned(q)) << n;
    cpu::release(q, n);
  }
  for (const Shape& shape : std::vector<Shape>{{}, {0}, {3}, {17, 5}, {1000, 1000}}) {
    EXPECT_TRUE(aligned(empty(shape, DType::Float64).raw_data())) << shape_str(shape);
  }
  void* zero = cpu::allocate(0);  // a zero-byte block is a real (64-byte) one
  EXPECT_TRUE(aligned(zero));
  cpu::release(zero, 0);
}

TEST_F(Allocator, CountersTrackAllocatedCachedReservedAndPeak) {
  const MemoryStats s0 = memory_stats();
  EXPECT_EQ(s0.cached_bytes, 0);
  EXPECT_EQ(s0.reserved_bytes, s0.allocated_bytes + s0.cached_bytes);
  reset_peak_memory_stats();
  EXPECT_EQ(memory_stats().peak_allocated_bytes, s0.allocated_bytes);

  void* a = cpu::allocate(2 * kMiB);
  void* b = cpu::allocate(1000);
  MemoryStats s = memory_stats();
  EXPECT_EQ(s.allocated_bytes - s0.allocated_bytes, 2 * kMiB + 1024);
  EXPECT_EQ(s.peak_allocated_bytes, s.allocated_bytes);
  EXPECT_EQ(s.allocations - s0.allocations, 2);

  cpu::release(a, 2 * kMiB);
  cpu::release(b, 1000);
  s = memory_stats();
  EXPECT_EQ(s.allocated_bytes, s0.allocated_bytes);
  EXPECT_EQ(s.cached_bytes, 2 * kMiB);
  EXPECT_EQ(s.reserved_bytes, s.allocated_bytes + 2 * kMiB);
  EXPECT_EQ(s.peak_allocated_bytes - s0.allocated_bytes, 2 * kMiB + 1024);  // the peak stays
  EXPECT_GE(s.peak_reserved_bytes, s.reserved_bytes);

  reset_peak_memory_stats();
  s = memory_stats();
  EXPECT_EQ(s.peak_allocated_bytes, s.allocated_bytes);
  EXPECT_EQ(s.peak_reserved_bytes, s.reserved_bytes);

  {
    Tensor t = empty({kMiB / 4});  // 1 MiB of float32, through Storage
    EXPECT_EQ(memory_stats().allocated_bytes - s0.allocated_bytes, kMiB);
  }
  EXPECT_EQ(memory_stats().allocated_bytes, s0.allocated_bytes);
}

TEST_F(Allocator, CacheLimitIsRespected) {
  set_cpu_cache_limit(3 * kMiB);
  EXPECT_EQ(cpu_cache_limit(), 3 * kMiB);
  EXPECT_EQ(memory_stats().cache_limit_bytes, 3 * kMiB);
  std::vector<void*> blocks;
  for (int i = 0; i < 5; ++i) blocks.push_back(cpu::allocate(kMiB));
  for (void* p : blocks) cpu::release(p, kMiB);
  EXPECT_EQ(memory_stats().cached_bytes, 3 * kMiB);  // two went back to the system

  // A block larger than the whole limit is never cached.
  void* big = cpu::allocate(8 * kMiB);
  cpu::release(big, 8 * kMiB);
  EXPECT_EQ(memory_stats().cached_bytes, 3 * kMiB);

  // Lowering the limit releases blocks until the cache fits.
  set_cpu_cache_limit(kMiB + kMiB / 2);
  EXPECT_LE(memory_stats().cached_bytes, kMiB + kMiB / 2);

  // 0 turns caching off.
  set_cpu_cache_limit(0);
  EXPECT_EQ(memory_stats().cached_bytes, 0);
  const int64_t hits = memory_stats().cache_hits;
  for (int i = 0; i < 3; ++i) cpu::release(cpu::allocate(kMiB), kMiB);
  EXPECT_EQ(memory_stats().cached_bytes, 0);
  EXPECT_EQ(memory_stats().cache_hits, hits);

  EXPECT_ERROR_CONTAINS(set_cpu_cache_limit(-1), "must be >= 0");
}

TEST_F(Allocator, ReleaseCachedMemoryEmptiesTheCache) {
  std::vector<void*> blocks;
  for (int i = 0; i < 4; ++i) blocks.push_back(cpu::allocate((i + 1) * kMiB));
  void* kept = cpu::allocate(kMiB);
  for (int i = 0; i < 4; ++i) cpu::release(blocks[i], (i + 1) * kMiB);
  EXPECT_EQ(memory_stats().cached_bytes, 10 * kMiB);
  release_cached_memory();
  const MemoryStats s = memory_stats();
  EXPECT_EQ(s.cached_bytes, 0);
  EXPECT_EQ(s.reserved_bytes, s.allocated_bytes);
  const int64_t misses = s.cache_misses;
  void* again = cpu::allocate(2 * kMiB);
  EXPECT_EQ(memory_stats().cache_misses, misses + 1);
  std::memset(kept, 1, kMiB);  // blocks in use are untouched by the release
  cpu::release(again, 2 * kMiB);
  cpu::release(kept, kMiB);
}

TEST_F(Allocator, ManyThreadsAllocatingAndFreeingConcurrently) {
  set_cpu_cache_limit(24 * kMiB);  // small enough that blocks also go back to the system
  const int64_t allocated_before = memory_stats().allocated_bytes;
  const int64_t sizes[] = {100, 4000, 65536, 70000, 300000, kMiB, kMiB + 5, 3 * kMiB};
  constexpr int kThreads = 8, kIterations = 3000, kHeld = 6;
  std::atomic<int> corrupted{0}, misaligned{0};
  auto worker = [&](int t) {
    struct Block {
      unsigned char* p;
      int64_t n;
      unsigned char tag;
    };
    std::vector<Block> held;
    uint64_t rng = 0x9E3779B97F4A7C15ull * (t + 1);
    auto check_and_release = [&](const Block& b) {
      // Each block carries its owner's tag at both ends and in the middle: a block handed to two
      // owners at once, or freed under its owner, shows as a wrong tag.
      if (b.p[0] != b.tag || b.p[b.n / 2] != b.tag || b.p[b.n - 1] != b.tag) ++corrupted;
      cpu::release(b.p, b.n);
    };
    for (int i = 0; i < kIterations; ++i) {
      rng = rng * 6364136223846793005ull + 1442695040888963407ull;
      const int64_t n = sizes[(rng >> 33) % (sizeof(sizes) / sizeof(sizes[0]))];
      auto* p = static_cast<unsigned char*>(cpu::allocate(n));
      if (!aligned(p)) ++misaligned;
      const auto tag = static_cast<unsigned char>(t * 31 + i);
      p[0] = p[n / 2] = p[n - 1] = tag;
      held.push_back({p, n, tag});
      if (static_cast<int>(held.size()) > kHeld) {
        const size_t victim = (rng >> 17) % held.size();
        check_and_release(held[victim]);
        held.erase(held.begin() + static_cast<std::ptrdiff_t>(victim));
      }
      if (t == 0 && i % 500 == 250) release_cached_memory();
      if (t == 1 && i % 700 == 350) set_cpu_cache_limit(i % 1400 == 350 ? 8 * kMiB : 24 * kMiB);
    }
    for (const Block& b : held) check_and_release(b);
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(worker, t);
  for (auto& th : threads) th.join();
  EXPECT_EQ(corrupted.load(), 0);
  EXPECT_EQ(misaligned.load(), 0);
  const MemoryStats s = memory_stats();
  EXPECT_EQ(s.allocated_bytes, allocated_before);
  EXPECT_LE(s.cached_bytes, s.cache_limit_bytes);
  EXPECT_EQ(s.reserved_bytes, s.allocated_bytes + s.cached_bytes);
  EXPECT_GT(s.cache_hits, 0);
}

// Runs a few creations, copies and conversions over tensors large enough to be cached.
Tensor some_work() {
  Generator gen(7);
  Tensor a = uniform({300, 700}, gen, -1.0, 1.0);
  Tensor b = a.transpose(0, 1).contiguous();
  Tensor c = normal({700, 300}, gen, 0.0, 2.0, DType::Float64);
  Tensor d = empty({700, 300}, DType::Float64);
  ops::copy_(d, b);
  Tensor out = zeros({2, 700, 300}, DType::Float64);
  ops::copy_(out.select(0, 0), d);
  ops::copy_(out.select(0, 1), c);
  return out;
}

TEST_F(Allocator, CachingChangesNoValue) {
  set_cpu_cache_limit(0);
  const Tensor uncached = some_work();
  set_cpu_cache_limit(int64_t{4} << 30);
  some_work();  // fills the cache with this work's blocks, and their old contents
  const int64_t hits = memory_stats().cache_hits;
  const Tensor cached = some_work();
  EXPECT_GT(memory_stats().cache_hits, hits);
  EXPECT_TRUE(tensors_identical(cached, uncached));
  set_debug_fill(true);  // every new block starts as 0xFF bytes: NaN where a value was never written
  EXPECT_TRUE(tensors_identical(some_work(), uncached));
}

TEST_F(Allocator, DebugFillMarksNewBlocksAndCreationFunctionsStillFill) {
  set_debug_fill(true);
  const Tensor e = empty({kMiB / 8}, DType::Int32);
  for (int32_t v : e.to_vector<int32_t>()) ASSERT_EQ(v, -1);  // 0xFFFFFFFF
  for (float v : zeros({kMiB / 8}).to_vector<float>()) ASSERT_EQ(v, 0.0f);
  for (float v : zeros({3}).to_vector<float>()) ASSERT_EQ(v, 0.0f);
}

TEST_F(Allocator, ReleaseOfNullIsANoOp) {
  const MemoryStats before = memory_stats();
  cpu::release(nullptr, kMiB);
  EXPECT_EQ(memory_stats().allocated_bytes, before.allocated_bytes);
  EXPECT_EQ(memory_stats().cached_bytes, before.cached_bytes);
}

}  // namespace
}  // namespace medtl
