// GPU memory for tensors: the per-device caching allocator, the current stream, pinned host
// buffers and asynchronous host -> device copies for the data loader. Plain C++: no CUDA headers.
// Defined only under --config=cuda (//tensor/cuda:cuda).
#pragma once

#include <cstdint>
#include <memory>

#include "tensor/cuda/caching_allocator.h"
#include "tensor/tensor.h"

namespace medtl::cuda {

// ---- Streams. Every kernel, cuBLAS and cuDNN call of the backend is queued on the calling
// thread's current stream (default: nullptr, CUDA's legacy default stream).
StreamHandle current_stream();

// A stream of its own (cudaStreamNonBlocking) on GPU `device_index`; destroyed with the object.
class Stream {
 public:
  explicit Stream(int device_index = 0);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  StreamHandle handle() const { return handle_; }
  void synchronize() const;

 private:
  StreamHandle handle_ = nullptr;
  int device_index_ = 0;
};

// Makes `stream` the calling thread's current stream for its lifetime. Tensors allocated inside
// get blocks from that stream's free lists; using them on another stream needs a synchronize().
class StreamScope {
 public:
  explicit StreamScope(StreamHandle stream);
  ~StreamScope();
  StreamScope(const StreamScope&) = delete;
  StreamScope& operator=(const StreamScope&) = delete;

 private:
  StreamHandle previous_;
};

// ---- The caching allocator of GPU `device_index` (created on first use, kept for the life of
// the process: destroying it at exit would race the CUDA runtime's own teardown).
CachingAllocator& device_allocator(int device_index);
// For tensors: a block on the current stream / back to its stream's free list. Storage calls these
// once init() (tensor_cuda.h) has registered them.
void* device_allocate(int64_t nbytes, int device_index);
void device_release(void* ptr, int device_index);
AllocatorStats memory_stats(int device_index = 0);
// Waits for the GPU, then returns every cached block to the driver.
void empty_cache(int device_index = 0);

// ---- Pinned (page-locked) host memory: the loader assembles a batch in it, so that the copy to
// the GPU is a DMA that runs asynchronously beside the compute (pageable memory forces the
// driver to stage through its own pinned buffer, synchronously).
class PinnedBuffer {
 public:
  explicit PinnedBuffer(int64_t nbytes);
  ~PinnedBuffer();
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  void* data() const { return data_; }
  int64_t nbytes() const { return nbytes_; }
  // Blocks until the last copy queued from this buffer has read it: call before overwriting it.
  // copy_to_device_async calls it itself.
  void wait_until_free() const;
  // Records on `stream` that the buffer's bytes are in use until the work queued so far is done.
  void record_use(StreamHandle stream);

 private:
  void* data_ = nullptr;
  int64_t nbytes_ = 0;
  void* event_ = nullptr;  // cudaEvent_t of the last queued copy that reads the buffer
};

// A GPU copy of a CPU tensor (any dtype, made contiguous), through `staging`: waits until the
// staging buffer is free, copies the tensor into it on the CPU, and queues the DMA to the GPU
// on the current stream. Returns at once; kernels queued later on the stream see the data.
// staging must hold at least the tensor's bytes.
Tensor copy_to_device_async(const Tensor& cpu, PinnedBuffer& staging, int device_index = 0);

}  // namespace medtl::cuda
