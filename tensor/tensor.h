// Tensor: a typed, strided view onto reference-counted storage. The one data type of the framework.
//
// A Tensor is cheap to copy: copies share the same Storage (like torch.Tensor). Views (reshape,
// permute, narrow, expand, ...) make a new Tensor with new shape/strides/offset over the same
// Storage, so writing through one is visible through the other. Nothing here knows about
// gradients: autograd/ keeps its bookkeeping in the opaque `autograd_meta` slot.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "tensor/device.h"
#include "tensor/dtype.h"
#include "tensor/error.h"
#include "tensor/philox.h"

namespace medtl {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& shape);  // "(2, 3, 4)"
int64_t shape_numel(const Shape& shape);
Shape contiguous_strides(const Shape& shape);  // row-major strides in elements
// Turns a possibly negative dim into [0, ndim); throws naming `what` if out of range.
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* what);

// A block of device memory. CPU blocks are 64-byte aligned (one cache line, one AVX-512 vector)
// and zero-initialised is NOT promised: creation functions fill what they promise.
class Storage {
 public:
  Storage(int64_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  int64_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

  // Moves the bytes to `device` in place: every tensor viewing this storage now lives there
  // (how nn::Module::to moves a model whose layers hold their own copies of the tensors).
  void relocate(Device device);

  // How a device other than the CPU allocates: set by the CUDA backend when it is linked in.
  struct Allocator {
    void* (*allocate)(int64_t nbytes, int device_index);
    void (*release)(void* ptr, int device_index);
  };
  // Returns the previous one, so that a test can install a stand-in and put the original back.
  static Allocator register_allocator(DeviceType type, Allocator allocator);

 private:
  void* data_ = nullptr;
  int64_t nbytes_ = 0;
  Device device_;
  Allocator allocator_{};  // the one that allocated data_ (GPU only): frees it, even if replaced since
};

// Opaque slot for autograd's per-tensor record (defined in autograd/). tensor/ only stores it.
struct AutogradMetaBase {
  virtual ~AutogradMetaBase() = default;
};

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor: defined() is false
  Tensor(std::shared_ptr<Storage> storage, Shape shape, Shape strides, int64_t offset, DType dtype);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  int64_t size(int64_t dim) const;    // negative dims count from the end
  int64_t stride(int64_t dim) const;
  int64_t offset() const { return offset_; }  // in elements, from the start of storage
  int64_t numel() const { return shape_numel(shape_); }
  DType dtype() const { return dtype_; }
  Device device() const;
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  bool shares_storage_with(const Tensor& other) const { return storage_ == other.storage_; }

  // Pointer to the first element (storage start + offset), for CPU code. Throws if T is not the
  // dtype's type, or if the tensor is on a GPU (its memory cannot be read from the CPU).
  template <typename T> T* data() const;
  // The same pointer on any device: for kernels that run where the memory is (tensor/cuda/).
  template <typename T> T* device_data() const;
  void* raw_data() const;  // CPU only, untyped (HDF5 reads and writes)
  void* device_raw_data() const;  // untyped, any device (cudaMemcpy, cudaMemset)

  // ---- Views: share storage, never copy. ----
  Tensor view(const Shape& shape) const;     // needs strides compatible with the new shape; one -1 allowed
  Tensor reshape(const Shape& shape) const;  // a view when possible, else a contiguous copy
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor transpose(int64_t dim0, int64_t dim1) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;  // drops `dim`
  Tensor expand(const Shape& shape) const;          // size-1 dims broadcast with stride 0
  Tensor squeeze() const;                           // drops every size-1 dim
  Tensor squeeze(int64_t dim) const;                // drops `dim`, which must have size 1
  Tensor unsqueeze(int64_t dim) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;

  // ---- Copies. ----
  Tensor contiguous() const;  // itself if already contiguous, else a row-major copy
  Tensor clone() const;       // always a new row-major copy
  Tensor to(DType dtype) const;  // a converted copy (itself if the dtype already matches)
  Tensor to(Device device) const;  // a contiguous copy on `device` (itself if already there)

  // ---- Small conveniences, mostly for tests and printing (slow: element by element). ----
  double item() const;  // the value of a one-element tensor, as double
  double at(const std::vector<int64_t>& index) const;
  template <typename T> std::vector<T> to_vector() const;  // in row-major order
  std::string str() const;  // "Tensor(float32, (2, 3), cpu)"

  const std::shared_ptr<AutogradMetaBase>& autograd_meta() const { return autograd_meta_; }
  void set_autograd_meta(std::shared_ptr<AutogradMetaBase> meta) { autograd_meta_ = std::move(meta); }

 private:
  std::shared_ptr<Storage> storage_;
  Shape shape_;
  Shape strides_;
  int64_t offset_ = 0;
  DType dtype_ = DType::Float32;
  std::shared_ptr<AutogradMetaBase> autograd_meta_;
};

// ---- Creation. ----
Tensor empty(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor zeros(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor ones(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor full(const Shape& shape, double value, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor empty_like(const Tensor& t);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
// [start, start + step, ...) up to but excluding end, like numpy.arange.
Tensor arange(double start, double end, double step = 1.0, DType dtype = DType::Float32);
Tensor arange(int64_t n, DType dtype = DType::Int64);
// A tensor holding a copy of `values` with the given shape (numel must match).
template <typename T> Tensor from_vector(const std::vector<T>& values, const Shape& shape);
Tensor scalar_tensor(double value, DType dtype = DType::Float32);

// Random tensors. Element i (row-major) takes its values from philox_random(seed, stream, i),
// where stream is taken from the generator; so the result depends only on the seed, the
// generator's stream count and the shape.
Tensor uniform(const Shape& shape, Generator& gen, double low = 0.0, double high = 1.0,
               DType dtype = DType::Float32);
Tensor normal(const Shape& shape, Generator& gen, double mean = 0.0, double stddev = 1.0,
              DType dtype = DType::Float32);
// Same, keyed directly by (seed, stream) with no Generator: for per-sample augmentation seeds.
Tensor uniform_keyed(const Shape& shape, uint64_t seed, uint64_t stream, double low, double high, DType dtype);
Tensor normal_keyed(const Shape& shape, uint64_t seed, uint64_t stream, double mean, double stddev, DType dtype);

// ---- Template definitions. ----
template <typename T>
T* Tensor::device_data() const {
  MEDTL_CHECK(defined(), "data(): the tensor is undefined (default-constructed)");
  MEDTL_CHECK(dtype_of<T>() == dtype_, "data<", dtype_name(dtype_of<T>()), ">(): the tensor holds ",
              dtype_name(dtype_), "; convert it with .to(DType) first");
  return static_cast<T*>(storage_->data()) + offset_;
}

template <typename T>
T* Tensor::data() const {
  MEDTL_CHECK(!defined() || storage_->device().is_cpu(), "data<", dtype_name(dtype_of<T>()), ">(): ", str(),
              " is not in CPU memory; copy it with .to(Device::cpu()) before reading it on the CPU");
  return device_data<T>();
}

}  // namespace medtl
