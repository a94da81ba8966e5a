// The CUDA caching allocator behind GPU tensors, streams, pinned buffers and asynchronous copies.
// Skips, saying why, without --config=cuda or without a GPU.
#include <gtest/gtest.h>

#include <cstring>

#include "tensor/cuda/device_info.h"
#include "tensor/cuda/memory.h"
#include "tensor/cuda/tensor_cuda.h"
#include "tests/cuda/cuda_test_util.h"

namespace medtl {
namespace {

using cuda_test::bit_identical;

#ifndef MEDTL_WITH_CUDA

TEST(MemoryCuda, SkippedWithoutCudaBuild) { GTEST_SKIP() << MEDTL_NO_CUDA_BUILD_MESSAGE; }

#else

TEST(MemoryCuda, NoGpuErrorSaysWhy) {
  if (cuda::device_count() > 0) GTEST_SKIP() << "a GPU is present: this test checks the message without one";
  cuda::init();
  EXPECT_ERROR_CONTAINS((void)empty({16}, DType::Float32, Device::cuda(0)), "cannot use cuda:0");
  EXPECT_ERROR_CONTAINS(cuda::PinnedBuffer(1024), "pinned host memory needs a CUDA driver and GPU");
}

TEST(MemoryCuda, TensorsReuseCachedBlocks) {
  SKIP_WITHOUT_GPU();
  cuda::init();
  cuda::synchronize();
  const cuda::AllocatorStats before = cuda::memory_stats(0);
  void* first = nullptr;
  {
    const Tensor t = empty({1000, 1000}, DType::Float32, Device::cuda(0));
    first = t.device_raw_data();
    EXPECT_GE(cuda::memory_stats(0).in_use_bytes, before.in_use_bytes + 4000000);
  }
  // Freed into the default stream's free list, then handed out again for the same size class.
  const cuda::AllocatorStats freed = cuda::memory_stats(0);
  EXPECT_EQ(freed.in_use_bytes, before.in_use_bytes);
  EXPECT_GE(freed.cached_bytes, 4000000);
  const Tensor again = empty({999, 1001}, DType::Float32, Device::cuda(0));  // same class as 1000 x 1000
  EXPECT_EQ(again.device_raw_data(), first);
  EXPECT_EQ(cuda::memory_stats(0).cache_hits, freed.cache_hits + 1);
}

TEST(MemoryCuda, StreamsDoNotShareFreedBlocks) {
  SKIP_WITHOUT_GPU();
  cuda::init();
  cuda::Stream side(0);
  void* on_side = nullptr;
  {
    cuda::StreamScope scope(side.handle());
    EXPECT_EQ(cuda::current_stream(), side.handle());
    on_side = empty({1 << 18}, DType::Float32, Device::cuda(0)).device_raw_data();  // freed at once, on `side`
  }
  EXPECT_EQ(cuda::current_stream(), nullptr);
  // The default stream must not receive the block `side` freed; `side` gets it back.
  const Tensor on_default = empty({1 << 18}, DType::Float32, Device::cuda(0));
  EXPECT_NE(on_default.device_raw_data(), on_side);
  {
    cuda::StreamScope scope(side.handle());
    const Tensor back = empty({1 << 18}, DType::Float32, Device::cuda(0));
    EXPECT_EQ(back.device_raw_data(), on_side);
    side.synchronize();
  }
}

TEST(MemoryCuda, OutOfMemoryReportsBytes) {
  SKIP_WITHOUT_GPU();
  cuda::init();
  // More than any GPU has: cudaMalloc fails, the cache is flushed, the retry fails too.
  try {
    (void)empty({int64_t{1} << 48}, DType::Float32, Device::cuda(0));
    ADD_FAILURE() << "expected an out-of-memory error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("CUDA out of memory on cuda:0: requested 1048576.00 GiB"), std::string::npos) << what;
    EXPECT_NE(what.find("in use by live tensors"), std::string::npos) << what;
    EXPECT_NE(what.find("cached for reuse"), std::string::npos) << what;
    EXPECT_NE(what.find("lower the batch size"), std::string::npos) << what;
  }
  // The allocator still works afterwards.
  const Tensor t = cuda::copy_to_device(ones({3}));
  EXPECT_TRUE(bit_identical(cuda::copy_to_host(t), ones({3})));
}

TEST(MemoryCuda, PinnedStagingIsReusedSafely) {
  SKIP_WITHOUT_GPU();
  Generator gen(5);
  const Tensor a = normal({256, 1024}, gen), b = normal({256, 1024}, gen), c = arange(1000);
  cuda::PinnedBuffer staging(256 * 1024 * 4);
  // The second copy overwrites the staging buffer: it must wait until the first DMA has read it.
  const Tensor da = cuda::copy_to_device_async(a, staging);
  const Tensor db = cuda::copy_to_device_async(b, staging);
  const Tensor dc = cuda::copy_to_device_async(c, staging);  // int64, fewer bytes
  EXPECT_TRUE(bit_identical(cuda::copy_to_host(da), a));
  EXPECT_TRUE(bit_identical(cuda::copy_to_host(db), b));
  EXPECT_TRUE(bit_identical(cuda::copy_to_host(dc), c));
  EXPECT_ERROR_CONTAINS(cuda::copy_to_device_async(normal({257, 1024}, gen), staging), "make it as large as the largest batch");
}

TEST(MemoryCuda, EmptyCacheReturnsBlocks) {
  SKIP_WITHOUT_GPU();
  cuda::init();
  { const Tensor t = empty({1 << 20}, DType::Float32, Device::cuda(0)); }
  EXPECT_GT(cuda::memory_stats(0).cached_bytes, 0);
  cuda::empty_cache(0);
  EXPECT_EQ(cuda::memory_stats(0).cached_bytes, 0);
}

#endif  // MEDTL_WITH_CUDA

}  // namespace
}  // namespace medtl
