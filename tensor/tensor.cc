// Tensor and Storage: shapes, strides, views, creation, conversion.
#include "tensor/tensor.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numeric>

#include "tensor/backend.h"
#include "tensor/cpu/allocator.h"
#include "tensor/dispatch.h"
#include "tensor/ops/copy.h"

namespace medtl {

// ---------------------------------------------------------------- shapes

std::string shape_str(const Shape& shape) {
  std::string out = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + (shape.size() == 1 ? ",)" : ")");
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t running = 1;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    strides[d] = running;
    running *= std::max<int64_t>(shape[d], 1);
  }
  return strides;
}

int64_t wrap_dim(int64_t dim, int64_t ndim, const char* what) {
  const int64_t wrapped = dim < 0 ? dim + ndim : dim;
  MEDTL_CHECK(wrapped >= 0 && wrapped < ndim, what, ": dim ", dim, " is out of range for a tensor with ",
              ndim, " dims (valid: ", -ndim, " to ", ndim - 1, ")");
  return wrapped;
}

// ---------------------------------------------------------------- storage

namespace {
Storage::Allocator g_allocators[2] = {};
}  // namespace

Storage::Allocator Storage::register_allocator(DeviceType type, Allocator allocator) {
  Allocator previous = g_allocators[static_cast<int>(type)];
  g_allocators[static_cast<int>(type)] = allocator;
  return previous;
}

Storage::Storage(int64_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  MEDTL_CHECK(nbytes >= 0, "Storage: negative size ", nbytes);
  if (device.is_cpu()) {
    // 64-byte aligned, large blocks reused from the cache of freed ones (tensor/cpu/allocator.h).
    data_ = cpu::allocate(nbytes);
  } else {
    allocator_ = g_allocators[static_cast<int>(device.type)];
    MEDTL_CHECK(allocator_.allocate != nullptr, "Storage: no allocator for ", device.str(),
                "; this binary was built without the CUDA backend: rebuild with --config=cuda to use the GPU");
    data_ = allocator_.allocate(nbytes, device.index);
  }
}

Storage::~Storage() {
  if (device_.is_cpu()) cpu::release(data_, nbytes_);
  else allocator_.release(data_, device_.index);
}

void Storage::relocate(Device device) {
  if (device == device_) return;
  DeviceBackend* backend = find_device_backend((device.is_cpu() ? device_ : device).type);
  MEDTL_CHECK(backend != nullptr, "Storage::relocate to ", device.str(), ": no backend for ",
              (device.is_cpu() ? device_ : device).str(), " in this binary; rebuild with --config=cuda");
  Storage moved(nbytes_, device);
  if (nbytes_ > 0) backend->copy_bytes(moved.data_, device, data_, device_, nbytes_);
  std::swap(data_, moved.data_);
  std::swap(device_, moved.device_);
  std::swap(allocator_, moved.allocator_);
  // `moved` now holds the old bytes and frees them with the allocator that made them.
}

// ---------------------------------------------------------------- tensor basics

Tensor::Tensor(std::shared_ptr<Storage> storage, Shape shape, Shape strides, int64_t offset, DType dtype)
    : storage_(std::move(storage)), shape_(std::move(shape)), strides_(std::move(strides)), offset_(offset), dtype_(dtype) {
  MEDTL_CHECK(shape_.size() == strides_.size(), "Tensor: shape ", shape_str(shape_), " and strides ",
              shape_str(strides_), " differ in rank");
  for (int64_t s : shape_) MEDTL_CHECK(s >= 0, "Tensor: negative size in shape ", shape_str(shape_));
}

int64_t Tensor::size(int64_t dim) const { return shape_[wrap_dim(dim, this->dim(), "size")]; }
int64_t Tensor::stride(int64_t dim) const { return strides_[wrap_dim(dim, this->dim(), "stride")]; }
Device Tensor::device() const { return storage_ ? storage_->device() : Device::cpu(); }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int64_t d = dim() - 1; d >= 0; --d) {
    if (shape_[d] == 1) continue;
    if (strides_[d] != expected) return false;
    expected *= shape_[d];
  }
  return true;
}

void* Tensor::device_raw_data() const {
  MEDTL_CHECK(defined(), "device_raw_data(): the tensor is undefined (default-constructed)");
  return static_cast<char*>(storage_->data()) + offset_ * dtype_size(dtype_);
}

void* Tensor::raw_data() const {
  MEDTL_CHECK(defined(), "raw_data(): the tensor is undefined (default-constructed)");
  MEDTL_CHECK(device().is_cpu(), "raw_data(): ", str(), " is not in CPU memory; copy it with .to(Device::cpu()) first");
  return static_cast<char*>(storage_->data()) + offset_ * dtype_size(dtype_);
}

std::string Tensor::str() const {
  if (!defined()) return "Tensor(undefined)";
  return str_cat("Tensor(", dtype_name(dtype_), ", ", shape_str(shape_), ", ", device().str(), ")");
}

// ---------------------------------------------------------------- views

namespace {

// Resolves one -1 in a requested shape against numel, and checks the element count.
Shape infer_shape(const Shape& requested, int64_t numel, const char* what, const Shape& from) {
  Shape shape = requested;
  int64_t known = 1, infer_at = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      MEDTL_CHECK(infer_at < 0, what, ": only one dim may be -1, got ", shape_str(requested));
      infer_at = static_cast<int64_t>(i);
    } else {
      MEDTL_CHECK(shape[i] >= 0, what, ": invalid size ", shape[i], " in ", shape_str(requested));
      known *= shape[i];
    }
  }
  if (infer_at >= 0) {
    MEDTL_CHECK(known != 0 && numel % known == 0, what, ": cannot infer -1 in ", shape_str(requested),
                " for ", numel, " elements (from shape ", shape_str(from), ")");
    shape[infer_at] = numel / known;
  }
  MEDTL_CHECK(shape_numel(shape) == numel, what, ": shape ", shape_str(requested), " holds ",
              shape_numel(shape), " elements but the tensor of shape ", shape_str(from), " has ", numel);
  return shape;
}

// Strides that let the existing memory be read as `shape`, or empty if no such strides exist
// (the same rule as PyTorch's view: each group of old dims that merges into new dims must be
// contiguous within itself).
bool view_strides(const Shape& old_shape, const Shape& old_strides, const Shape& shape, Shape* out) {
  Shape strides(shape.size());
  if (shape_numel(shape) == 0 || old_shape.empty()) {
    *out = contiguous_strides(shape);
    return true;
  }
  int64_t view_d = static_cast<int64_t>(shape.size()) - 1;
  int64_t chunk_base_stride = old_strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(old_shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= old_shape[d];
    if (d == 0 || (old_shape[d - 1] != 1 && old_strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
        strides[view_d] = view_numel * chunk_base_stride;
        view_numel *= shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (d > 0) {
        chunk_base_stride = old_strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return false;
  *out = strides;
  return true;
}

}  // namespace

Tensor Tensor::view(const Shape& requested) const {
  const Shape shape = infer_shape(requested, numel(), "view", shape_);
  Shape strides;
  MEDTL_CHECK(view_strides(shape_, strides_, shape, &strides), "view: a tensor of shape ", shape_str(shape_),
              " with strides ", shape_str(strides_), " cannot be viewed as ", shape_str(shape),
              " without copying; use reshape() (which copies) or contiguous() first");
  Tensor out = *this;
  out.shape_ = shape;
  out.strides_ = strides;
  out.autograd_meta_ = nullptr;
  return out;
}

Tensor Tensor::reshape(const Shape& requested) const {
  const Shape shape = infer_shape(requested, numel(), "reshape", shape_);
  Shape strides;
  if (view_strides(shape_, strides_, shape, &strides)) return view(shape);
  return contiguous().view(shape);
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  MEDTL_CHECK(static_cast<int64_t>(dims.size()) == dim(), "permute: got ", dims.size(),
              " dims for a tensor with ", dim(), " dims");
  std::vector<bool> seen(dims.size(), false);
  Tensor out = *this;
  out.autograd_meta_ = nullptr;
  for (size_t i = 0; i < dims.size(); ++i) {
    const int64_t d = wrap_dim(dims[i], dim(), "permute");
    MEDTL_CHECK(!seen[d], "permute: dim ", d, " appears twice in ", shape_str(dims));
    seen[d] = true;
    out.shape_[i] = shape_[d];
    out.strides_[i] = strides_[d];
  }
  return out;
}

Tensor Tensor::transpose(int64_t dim0, int64_t dim1) const {
  std::vector<int64_t> dims(dim());
  std::iota(dims.begin(), dims.end(), 0);
  std::swap(dims[wrap_dim(dim0, dim(), "transpose")], dims[wrap_dim(dim1, dim(), "transpose")]);
  return permute(dims);
}

Tensor Tensor::narrow(int64_t dim, int64_t start, int64_t length) const {
  const int64_t d = wrap_dim(dim, this->dim(), "narrow");
  MEDTL_CHECK(start >= 0 && length >= 0 && start + length <= shape_[d], "narrow: [", start, ", ",
              start + length, ") is outside dim ", d, " of size ", shape_[d], " (shape ", shape_str(shape_), ")");
  Tensor out = *this;
  out.autograd_meta_ = nullptr;
  out.shape_[d] = length;
  out.offset_ += start * strides_[d];
  return out;
}

Tensor Tensor::slice(int64_t dim, int64_t start, int64_t end, int64_t step) const {
  const int64_t d = wrap_dim(dim, this->dim(), "slice");
  MEDTL_CHECK(step > 0, "slice: step must be positive, got ", step);
  const int64_t n = shape_[d];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Tensor out = narrow(d, start, end - start);
  out.shape_[d] = (end - start + step - 1) / step;
  out.strides_[d] *= step;
  return out;
}

Tensor Tensor::select(int64_t dim, int64_t index) const {
  const int64_t d = wrap_dim(dim, this->dim(), "select");
  const int64_t n = shape_[d];
  MEDTL_CHECK(index >= -n && index < n, "select: index ", index, " is out of range for dim ", d, " of size ", n);
  Tensor out = narrow(d, index < 0 ? index + n : index, 1);
  out.shape_.erase(out.shape_.begin() + d);
  out.strides_.erase(out.strides_.begin() + d);
  return out;
}

Tensor Tensor::expand(const Shape& shape) const {
  const int64_t new_dim = static_cast<int64_t>(shape.size());
  MEDTL_CHECK(new_dim >= dim(), "expand: cannot expand shape ", shape_str(shape_), " to fewer dims ", shape_str(shape));
  Tensor out = *this;
  out.autograd_meta_ = nullptr;
  out.shape_ = shape;
  out.strides_.assign(new_dim, 0);
  const int64_t lead = new_dim - dim();
  for (int64_t d = 0; d < new_dim; ++d) {
    MEDTL_CHECK(shape[d] >= 0, "expand: size ", shape[d], " in ", shape_str(shape));
    if (d < lead) continue;  // new leading dims broadcast with stride 0
    const int64_t old = shape_[d - lead];
    if (old == shape[d]) out.strides_[d] = strides_[d - lead];
    else MEDTL_CHECK(old == 1, "expand: shape ", shape_str(shape_), " cannot broadcast to ", shape_str(shape),
                     " (dim ", d, ": ", old, " vs ", shape[d], "; only size-1 dims broadcast)");
  }
  return out;
}

Tensor Tensor::squeeze() const {
  Tensor out = *this;
  out.autograd_meta_ = nullptr;
  out.shape_.clear();
  out.strides_.clear();
  for (int64_t d = 0; d < dim(); ++d) {
    if (shape_[d] == 1) continue;
    out.shape_.push_back(shape_[d]);
    out.strides_.push_back(strides_[d]);
  }
  return out;
}

Tensor Tensor::squeeze(int64_t dim) const {
  const int64_t d = wrap_dim(dim, this->dim(), "squeeze");
  MEDTL_CHECK(shape_[d] == 1, "squeeze: dim ", d, " has size ", shape_[d], ", not 1 (shape ", shape_str(shape_), ")");
  return select(d, 0);
}

Tensor Tensor::unsqueeze(int64_t dim) const {
  const int64_t d = wrap_dim(dim, this->dim() + 1, "unsqueeze");
  Tensor out = *this;
  out.autograd_meta_ = nullptr;
  const int64_t stride = d < this->dim() ? strides_[d] * shape_[d] : 1;
  out.shape_.insert(out.shape_.begin() + d, 1);
  out.strides_.insert(out.strides_.begin() + d, stride);
  return out;
}

Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  if (dim() == 0) return reshape({1});
  const int64_t s = wrap_dim(start_dim, dim(), "flatten"), e = wrap_dim(end_dim, dim(), "flatten");
  MEDTL_CHECK(s <= e, "flatten: start_dim ", s, " is after end_dim ", e);
  Shape shape(shape_.begin(), shape_.begin() + s);
  int64_t merged = 1;
  for (int64_t d = s; d <= e; ++d) merged *= shape_[d];
  shape.push_back(merged);
  shape.insert(shape.end(), shape_.begin() + e + 1, shape_.end());
  return reshape(shape);
}

// ---------------------------------------------------------------- copies

Tensor Tensor::contiguous() const {
  if (is_contiguous()) {
    Tensor out = *this;
    out.autograd_meta_ = nullptr;
    return out;
  }
  return clone();
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape_, dtype_, device());
  ops::copy_(out, *this);
  return out;
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) {
    Tensor out = *this;
    out.autograd_meta_ = nullptr;
    return out;
  }
  Tensor out = empty(shape_, dtype, device());
  ops::copy_(out, *this);
  return out;
}

Tensor Tensor::to(Device device) const {
  if (device == this->device()) {
    Tensor out = *this;
    out.autograd_meta_ = nullptr;
    return out;
  }
  Tensor out = empty(shape_, dtype_, device);
  ops::copy_(out, *this);  // across devices: tensor/device_copy.cc
  return out;
}

double Tensor::at(const std::vector<int64_t>& index) const {
  MEDTL_CHECK(static_cast<int64_t>(index.size()) == dim(), "at: ", index.size(), " indices for ", dim(), " dims");
  Tensor element = *this;
  for (int64_t d = dim() - 1; d >= 0; --d) element = element.select(d, index[d]);
  return element.item();
}

double Tensor::item() const {
  MEDTL_CHECK(numel() == 1, "item: the tensor has ", numel(), " elements (shape ", shape_str(shape_), "), not 1");
  Tensor as_double = empty({}, DType::Float64);
  ops::copy_(as_double, reshape({}));
  return *as_double.data<double>();
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  Tensor converted = empty(shape_, dtype_of<T>());
  ops::copy_(converted, *this);
  const T* p = converted.data<T>();
  return std::vector<T>(p, p + numel());
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<int32_t> Tensor::to_vector<int32_t>() const;
template std::vector<uint8_t> Tensor::to_vector<uint8_t>() const;

// ---------------------------------------------------------------- creation

Tensor empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t s : shape) MEDTL_CHECK(s >= 0, "empty: negative size in shape ", shape_str(shape));
  auto storage = std::make_shared<Storage>(shape_numel(shape) * dtype_size(dtype), device);
  return Tensor(std::move(storage), shape, contiguous_strides(shape), 0, dtype);
}

Tensor full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor out = empty(shape, dtype, device);
  ops::fill_(out, value);
  return out;
}
Tensor zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }
Tensor ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }
Tensor empty_like(const Tensor& t) { return empty(t.shape(), t.dtype(), t.device()); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype(), t.device()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.dtype(), t.device()); }
Tensor scalar_tensor(double value, DType dtype) { return full({}, value, dtype); }

Tensor arange(double start, double end, double step, DType dtype) {
  MEDTL_CHECK(step != 0.0, "arange: step must not be 0");
  const int64_t n = std::max<int64_t>(0, static_cast<int64_t>(std::ceil((end - start) / step)));
  Tensor values = empty({n}, DType::Float64);
  double* p = values.data<double>();
  for (int64_t i = 0; i < n; ++i) p[i] = start + static_cast<double>(i) * step;
  return values.to(dtype);
}

Tensor arange(int64_t n, DType dtype) {
  MEDTL_CHECK(n >= 0, "arange: negative length ", n);
  Tensor values = empty({n}, DType::Int64);
  int64_t* p = values.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  return values.to(dtype);
}

template <typename T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape) {
  MEDTL_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_vector: ", values.size(),
              " values do not fill shape ", shape_str(shape), " (", shape_numel(shape), " elements)");
  Tensor out = empty(shape, dtype_of<T>());
  std::copy(values.begin(), values.end(), out.data<T>());
  return out;
}
template Tensor from_vector<float>(const std::vector<float>&, const Shape&);
template Tensor from_vector<double>(const std::vector<double>&, const Shape&);
template Tensor from_vector<int64_t>(const std::vector<int64_t>&, const Shape&);
template Tensor from_vector<int32_t>(const std::vector<int32_t>&, const Shape&);
template Tensor from_vector<uint8_t>(const std::vector<uint8_t>&, const Shape&);

}  // namespace medtl
