// The per-device caching allocators over cudaMalloc, the current stream, pinned host buffers and
// asynchronous host -> device copies (tensor/cuda/memory.h).
#include "tensor/cuda/memory.h"

#include <cstdio>
#include <cstring>
#include <mutex>
#include <vector>

#include "tensor/cuda/device_info.h"
#include "tensor/cuda/launch.h"
#include "tensor/cuda/tensor_cuda.h"

namespace medtl::cuda {
namespace {

thread_local StreamHandle t_current_stream = nullptr;

std::string describe_device(int index) {
  size_t free_bytes = 0, total_bytes = 0;
  if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) {
    (void)cudaGetLastError();
    return str_cat("cuda:", index, " (cudaMemGetInfo failed)");
  }
  return str_cat(device_name(index), ": ", format_bytes(static_cast<int64_t>(total_bytes)), " total, ",
                 format_bytes(static_cast<int64_t>(free_bytes)), " free (other processes included)");
}

RawMemory cuda_raw_memory(int index) {
  return RawMemory{
      [index](int64_t nbytes) -> void* {
        detail::DeviceGuard guard(index);
        void* ptr = nullptr;
        const cudaError_t status = cudaMalloc(&ptr, static_cast<size_t>(nbytes));
        if (status == cudaErrorMemoryAllocation) {
          (void)cudaGetLastError();  // the allocator flushes its cache and retries, or reports
          return nullptr;
        }
        MEDTL_CUDA_CHECK(status);
        return ptr;
      },
      [index](void* ptr) {
        detail::DeviceGuard guard(index);
        MEDTL_CUDA_CHECK(cudaFree(ptr));
      },
      [index] {
        detail::DeviceGuard guard(index);
        return describe_device(index);
      }};
}

}  // namespace

StreamHandle current_stream() { return t_current_stream; }

Stream::Stream(int device_index) : device_index_(device_index) {
  detail::DeviceGuard guard(device_index);
  cudaStream_t s = nullptr;
  MEDTL_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  handle_ = s;
}

Stream::~Stream() {
  // Blocks freed on this stream stay on free lists keyed by its handle, and CUDA may give a later
  // stream the same handle value: its work must be finished before that can happen.
  cudaStream_t s = static_cast<cudaStream_t>(handle_);
  cudaError_t status = cudaStreamSynchronize(s);
  if (status == cudaSuccess) status = cudaStreamDestroy(s);
  if (status != cudaSuccess && status != cudaErrorCudartUnloading) {
    (void)cudaGetLastError();
    std::fprintf(stderr, "medtl: warning: destroying a CUDA stream failed: %s\n", cudaGetErrorString(status));
  }
}

void Stream::synchronize() const { MEDTL_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(handle_))); }

StreamScope::StreamScope(StreamHandle stream) : previous_(t_current_stream) { t_current_stream = stream; }
StreamScope::~StreamScope() { t_current_stream = previous_; }

CachingAllocator& device_allocator(int device_index) {
  static std::mutex mutex;
  static std::vector<CachingAllocator*> allocators;  // never deleted: see memory.h
  std::lock_guard<std::mutex> lock(mutex);
  if (allocators.empty()) {
    // Counted once: the runtime's view of the GPUs does not change within a process.
    const int count = device_count();
    MEDTL_CHECK(count > 0, "cannot use cuda:", device_index, ": ", no_device_reason());
    allocators.resize(static_cast<size_t>(count), nullptr);
  }
  MEDTL_CHECK(device_index >= 0 && device_index < static_cast<int>(allocators.size()), "cannot use cuda:",
              device_index, ": this process sees ", allocators.size(), " GPU(s) (CUDA_VISIBLE_DEVICES can hide some)");
  CachingAllocator*& slot = allocators[static_cast<size_t>(device_index)];
  if (slot == nullptr) slot = new CachingAllocator(cuda_raw_memory(device_index), str_cat("cuda:", device_index));
  return *slot;
}

void* device_allocate(int64_t nbytes, int device_index) {
  if (nbytes == 0) return nullptr;
  return device_allocator(device_index).allocate(nbytes, current_stream());
}

// Called from Storage's destructor: must not throw.
void device_release(void* ptr, int device_index) {
  if (ptr == nullptr) return;
  try {
    device_allocator(device_index).release(ptr);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "medtl: warning: releasing GPU memory failed: %s\n", e.what());
  }
}

AllocatorStats memory_stats(int device_index) { return device_allocator(device_index).stats(); }

void empty_cache(int device_index) {
  detail::DeviceGuard guard(device_index);
  // Freed blocks may still be read by queued kernels; cudaFree would wait for them anyway, but
  // synchronising first makes that explicit.
  MEDTL_CUDA_CHECK(cudaDeviceSynchronize());
  device_allocator(device_index).empty_cache();
}

// ---------------------------------------------------------------- pinned host buffers

PinnedBuffer::PinnedBuffer(int64_t nbytes) : nbytes_(nbytes) {
  MEDTL_CHECK(nbytes >= 0, "PinnedBuffer: negative size ", nbytes);
  const int count = device_count();
  MEDTL_CHECK(count > 0, "PinnedBuffer: pinned host memory needs a CUDA driver and GPU: ", no_device_reason());
  if (nbytes > 0) MEDTL_CUDA_CHECK(cudaHostAlloc(&data_, static_cast<size_t>(nbytes), cudaHostAllocDefault));
  cudaEvent_t event = nullptr;
  // No timing: the event only orders, and timing events cost a little on every record.
  MEDTL_CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
  event_ = event;
}

PinnedBuffer::~PinnedBuffer() {
  if (event_ != nullptr) {
    // The memory must not be freed while a queued copy still reads it.
    (void)cudaEventSynchronize(static_cast<cudaEvent_t>(event_));
    (void)cudaEventDestroy(static_cast<cudaEvent_t>(event_));
  }
  if (data_ != nullptr) {
    const cudaError_t status = cudaFreeHost(data_);
    if (status != cudaSuccess && status != cudaErrorCudartUnloading) {
      (void)cudaGetLastError();
      std::fprintf(stderr, "medtl: warning: cudaFreeHost failed: %s\n", cudaGetErrorString(status));
    }
  }
}

void PinnedBuffer::wait_until_free() const { MEDTL_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(event_))); }

void PinnedBuffer::record_use(StreamHandle stream) {
  MEDTL_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(event_), static_cast<cudaStream_t>(stream)));
}

Tensor copy_to_device_async(const Tensor& cpu, PinnedBuffer& staging, int device_index) {
  MEDTL_CHECK(cpu.defined() && cpu.device().is_cpu(), "cuda::copy_to_device_async: expected a CPU tensor, got ",
              cpu.defined() ? cpu.str() : std::string("an undefined tensor"));
  init();
  const Tensor src = cpu.contiguous();
  const int64_t nbytes = src.numel() * dtype_size(src.dtype());
  MEDTL_CHECK(nbytes <= staging.nbytes(), "cuda::copy_to_device_async: ", src.str(), " needs ", format_bytes(nbytes),
              " but the pinned staging buffer holds ", format_bytes(staging.nbytes()),
              "; make it as large as the largest batch");
  Tensor out = empty(src.shape(), src.dtype(), Device::cuda(device_index));
  if (nbytes == 0) return out;
  detail::DeviceGuard guard(device_index);
  staging.wait_until_free();
  std::memcpy(staging.data(), src.device_raw_data(), static_cast<size_t>(nbytes));
  MEDTL_CUDA_CHECK(cudaMemcpyAsync(out.device_raw_data(), staging.data(), static_cast<size_t>(nbytes),
                                   cudaMemcpyHostToDevice, detail::stream()));
  staging.record_use(current_stream());
  return out;
}

}  // namespace medtl::cuda
