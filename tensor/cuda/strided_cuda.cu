// Generic copies and the ops that only move or accumulate elements (strided_cuda.h): copy_, fill_,
// where, add_scaled_, mul_. Each is one launch of detail::strided_kernel with a small functor.
#include "tensor/cuda/strided_cuda.h"

#include "tensor/cuda/strided_kernels.h"

namespace medtl::cuda {
namespace {

using detail::BitsOf;
using detail::element_ptr;
using detail::launch_strided;

// ---------------------------------------------------------------- functors
// Each gets the element offsets of its operands, in the order they were given to the indexer.

// Same dtype: the bits are moved, so every value (NaN payloads too) arrives unchanged.
template <typename B>
struct MoveBits {
  B* dst;
  const B* src;
  __device__ void operator()(const int64_t* off) const { dst[off[0]] = src[off[1]]; }
};

template <typename To, typename From>
struct Convert {
  To* dst;
  const From* src;
  __device__ void operator()(const int64_t* off) const { dst[off[0]] = detail::convert_element<To>(src[off[1]]); }
};

template <typename B>
struct FillBits {
  B* dst;
  B value;
  __device__ void operator()(const int64_t* off) const { dst[off[0]] = value; }
};

// a and b are only moved (as bits), so nothing is rounded: the CPU's select, bit for bit.
template <typename C, typename B>
struct WhereApply {
  B* out;
  const C* cond;
  const B* a;
  const B* b;
  __device__ void operator()(const int64_t* off) const { out[off[0]] = cond[off[1]] != C(0) ? a[off[2]] : b[off[3]]; }
};

// dst += src: add_, and add_scaled_ with alpha 1 (the CPU's d + 1 * s is d + s exactly).
template <typename T>
struct AddInPlace {
  T* dst;
  const T* src;
  __device__ void operator()(const int64_t* off) const { dst[off[0]] = detail::add_rn(dst[off[0]], src[off[1]]); }
};

// dst += alpha * src with two roundings, as the CPU's d + a * s (never one FMA).
template <typename T>
struct AddScaledInPlace {
  T* dst;
  const T* src;
  T alpha;
  __device__ void operator()(const int64_t* off) const {
    dst[off[0]] = detail::add_rn(dst[off[0]], detail::mul_rn(alpha, src[off[1]]));
  }
};

template <typename T>
struct MulInPlace {
  T* dst;
  T factor;
  __device__ void operator()(const int64_t* off) const { dst[off[0]] = detail::mul_rn(dst[off[0]], factor); }
};

// Checks of the in-place ops: dst and src on one GPU, one dtype, src broadcasting to dst's shape.
void check_in_place(const char* op, const Tensor& dst, const Tensor& src) {
  detail::check_gpu(op, "dst", dst);
  detail::check_gpu(op, "src", src);
  detail::check_same_device(op, dst, src);
  detail::check_same_dtype(op, dst, "dst", src, "src");
  detail::check_writable(op, dst);
  const Shape shape = broadcast_shape(op, dst.shape(), src.shape());
  MEDTL_CHECK(shape == dst.shape(), op, ": src ", shape_str(src.shape()), " broadcasts with dst ",
              shape_str(dst.shape()), " to ", shape_str(shape), ", which is not dst's shape (dst cannot grow)");
}

}  // namespace

// dst: (shape), src: (broadcastable to shape)
void copy_(const Tensor& dst, const Tensor& src) {
  const char* op = "cuda::copy_";
  detail::check_gpu(op, "dst", dst);
  detail::check_gpu(op, "src", src);
  detail::check_same_device(op, dst, src);
  detail::check_writable(op, dst);
  init();
  detail::DeviceGuard guard(dst.device().index);
  const auto idx = detail::indexer_over<2>(op, dst.shape(), {&dst, &src});
  if (idx.numel == 0) return;
  // The common case, a contiguous copy within one dtype: one copy-engine transfer, same bits.
  if (dst.dtype() == src.dtype() && dst.shape() == src.shape() && dst.is_contiguous() && src.is_contiguous()) {
    MEDTL_CUDA_CHECK(cudaMemcpyAsync(detail::byte_ptr(dst), detail::byte_ptr(src),
                                     static_cast<size_t>(dst.numel() * dtype_size(dst.dtype())),
                                     cudaMemcpyDeviceToDevice, detail::stream()));
    return;
  }
  detail::dispatch_any(dst.dtype(), op, [&](auto dst_tag) {
    using To = typename decltype(dst_tag)::type;
    detail::dispatch_any(src.dtype(), op, [&](auto src_tag) {
      using From = typename decltype(src_tag)::type;
      if constexpr (std::is_same_v<To, From>) {
        using B = typename BitsOf<sizeof(To)>::type;
        launch_strided<2>(idx, MoveBits<B>{element_ptr<B>(dst), element_ptr<B>(src)});
      } else {
        launch_strided<2>(idx, Convert<To, From>{element_ptr<To>(dst), element_ptr<From>(src)});
      }
    });
  });
}

// dst: (...), any strides. An expanded dst is allowed here (unlike copy_): every thread that
// writes a shared element writes the same value.
void fill_(const Tensor& dst, double value) {
  const char* op = "cuda::fill_";
  detail::check_gpu(op, "dst", dst);
  init();
  detail::DeviceGuard guard(dst.device().index);
  const auto idx = make_indexer<1>(dst.shape(), {dst.strides()});
  detail::dispatch_any(dst.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using B = typename BitsOf<sizeof(T)>::type;
    // Converted on the host with the CPU's rules (from_double is the same code on both sides).
    const T typed = detail::from_double<T>(value);
    B bits;
    std::memcpy(&bits, &typed, sizeof(T));
    launch_strided<1>(idx, FillBits<B>{element_ptr<B>(dst), bits});
  });
}

// cond: (...), a: (...), b: (...) -> (broadcast of all three), a's dtype.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  const char* op = "cuda::where";
  detail::check_gpu(op, "cond", cond);
  detail::check_gpu(op, "a", a);
  detail::check_gpu(op, "b", b);
  detail::check_same_device(op, cond, a);
  detail::check_same_device(op, a, b);
  detail::check_same_dtype(op, a, "a", b, "b");
  const Shape shape = broadcast_shape(op, broadcast_shape(op, cond.shape(), a.shape()), b.shape());
  init();
  detail::DeviceGuard guard(a.device().index);
  Tensor out;
  dispatch_kinds<Kinds::All>(a.dtype(), op, [&](auto tag) {
    using B = typename BitsOf<sizeof(typename decltype(tag)::type)>::type;
    dispatch_kinds<Kinds::All>(cond.dtype(), "cuda::where (cond)", [&](auto cond_tag) {
      using C = typename decltype(cond_tag)::type;
      out = empty(shape, a.dtype(), a.device());
      const auto idx = detail::indexer_over<4>(op, shape, {&out, &cond, &a, &b});
      launch_strided<4>(idx, WhereApply<C, B>{element_ptr<B>(out), element_ptr<C>(cond), element_ptr<B>(a),
                                              element_ptr<B>(b)});
    });
  });
  return out;
}

// dst: (...), src: (broadcastable to dst's shape).
void add_scaled_(const Tensor& dst, const Tensor& src, double alpha) {
  const char* op = "cuda::add_scaled_";
  check_in_place(op, dst, src);
  init();
  detail::DeviceGuard guard(dst.device().index);
  const auto idx = detail::indexer_over<2>(op, dst.shape(), {&dst, &src});
  if (alpha == 1.0) {  // the CPU's add_ (ops::add_ comes here with alpha 1): integers too
    dispatch_kinds<Kinds::Numeric>(dst.dtype(), op, [&](auto tag) {
      using T = typename decltype(tag)::type;
      launch_strided<2>(idx, AddInPlace<T>{element_ptr<T>(dst), element_ptr<T>(src)});
    });
    return;
  }
  dispatch_kinds<Kinds::Float>(dst.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch_strided<2>(idx, AddScaledInPlace<T>{element_ptr<T>(dst), element_ptr<T>(src), static_cast<T>(alpha)});
  });
}

// dst: (...), any strides but not expanded.
void mul_(const Tensor& dst, double factor) {
  const char* op = "cuda::mul_";
  detail::check_gpu(op, "dst", dst);
  detail::check_writable(op, dst);
  init();
  detail::DeviceGuard guard(dst.device().index);
  const auto idx = make_indexer<1>(dst.shape(), {dst.strides()});
  dispatch_kinds<Kinds::Numeric>(dst.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch_strided<1>(idx, MulInPlace<T>{element_ptr<T>(dst), detail::scalar_as<T>(factor)});
  });
}

}  // namespace medtl::cuda
