// Shared by the generic elementwise .cu files (strided_cuda.cu, elementwise_ops_cuda.cu): the one
// strided grid-stride kernel, dtype dispatch, operand checks, and the element conversions and
// IEEE-exact arithmetic that make the GPU's results the CPU's bits. Includes CUDA headers: only
// under --config=cuda.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "tensor/cuda/launch.h"
#include "tensor/cuda/strided_index.h"
#include "tensor/cuda/tensor_cuda.h"
#include "tensor/dispatch.h"
#include "tensor/tensor.h"

namespace medtl::cuda::detail {

// ---------------------------------------------------------------- element types

// The 16-bit float storage formats, as their bits (tensor/ops/half.h is host-only: _Float16).
struct HalfBits {
  uint16_t bits;
};
struct BFloat16Bits {
  uint16_t bits;
};

// Every dtype a copy reads or writes: the arithmetic ones and the two 16-bit float formats.
template <typename F>
void dispatch_any(DType dtype, const char* op, F&& body) {
  switch (dtype) {
    case DType::Float16: return body(TypeTag<HalfBits>{});
    case DType::BFloat16: return body(TypeTag<BFloat16Bits>{});
    default: dispatch_arith(dtype, op, body);
  }
}

// An unsigned type of T's size: where elements are only moved, their bits are what matters.
template <int Bytes> struct BitsOf;
template <> struct BitsOf<1> { using type = uint8_t; };
template <> struct BitsOf<2> { using type = uint16_t; };
template <> struct BitsOf<4> { using type = uint32_t; };
template <> struct BitsOf<8> { using type = uint64_t; };

// ---------------------------------------------------------------- conversions (as copy_cpu.cc)

__host__ __device__ inline float half_to_float(HalfBits h) { return __half2float(__ushort_as_half(h.bits)); }
__host__ __device__ inline HalfBits float_to_half(float f) { return HalfBits{__half_as_ushort(__float2half_rn(f))}; }
__host__ __device__ inline float bfloat16_to_float(BFloat16Bits b) {
  const uint32_t u = static_cast<uint32_t>(b.bits) << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}
// Bit for bit BFloat16::from_float: round to nearest even; a NaN stays a (quiet) NaN.
__host__ __device__ inline BFloat16Bits float_to_bfloat16(float value) {
  uint32_t u;
  memcpy(&u, &value, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return BFloat16Bits{static_cast<uint16_t>((u >> 16) | 0x40)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return BFloat16Bits{static_cast<uint16_t>(u >> 16)};
}

template <typename T> __host__ __device__ double to_double(T value) {
  if constexpr (std::is_same_v<T, HalfBits>) return half_to_float(value);
  else if constexpr (std::is_same_v<T, BFloat16Bits>) return bfloat16_to_float(value);
  else return static_cast<double>(value);
}
// copy_cpu.cc's from_double: bool is `!= 0`, the 16-bit formats go through float32 first.
template <typename T> __host__ __device__ T from_double(double value) {
  if constexpr (std::is_same_v<T, bool>) return value != 0.0;
  else if constexpr (std::is_same_v<T, HalfBits>) return float_to_half(static_cast<float>(value));
  else if constexpr (std::is_same_v<T, BFloat16Bits>) return float_to_bfloat16(static_cast<float>(value));
  else return static_cast<T>(value);
}
// copy_cpu.cc's conversion: direct between arithmetic types (bool: `!= 0`), through double when
// a 16-bit format is involved.
template <typename To, typename From> __device__ To convert_element(From value) {
  if constexpr (std::is_arithmetic_v<To> && std::is_arithmetic_v<From>) {
    if constexpr (std::is_same_v<To, bool>) return value != From(0);
    else return static_cast<To>(value);
  } else {
    return from_double<To>(to_double(value));
  }
}

// elementwise_cpu.cc's scalar_as: a double scalar in T (bool: nonzero; integers truncate, then
// wrap through int64).
template <typename T> T scalar_as(double value) {
  if constexpr (std::is_same_v<T, bool>) return value != 0.0;
  else if constexpr (std::is_integral_v<T>) return static_cast<T>(static_cast<int64_t>(value));
  else return static_cast<T>(value);
}

// ---------------------------------------------------------------- IEEE-exact arithmetic
// One rounding per operation, as on the CPU (built without FMA): the _rn intrinsics are never
// contracted into an FMA by nvcc. Integers wrap in their own width (computed unsigned, which is
// what the CPU's int arithmetic does on x86, without C++'s signed-overflow undefined behaviour).

template <typename T>
using WrapType = std::make_unsigned_t<std::conditional_t<(sizeof(T) < 4), int32_t, T>>;

template <typename T> __device__ T add_rn(T a, T b) {
  if constexpr (std::is_same_v<T, float>) return __fadd_rn(a, b);
  else if constexpr (std::is_same_v<T, double>) return __dadd_rn(a, b);
  else return static_cast<T>(static_cast<WrapType<T>>(a) + static_cast<WrapType<T>>(b));
}
template <typename T> __device__ T sub_rn(T a, T b) {
  if constexpr (std::is_same_v<T, float>) return __fsub_rn(a, b);
  else if constexpr (std::is_same_v<T, double>) return __dsub_rn(a, b);
  else return static_cast<T>(static_cast<WrapType<T>>(a) - static_cast<WrapType<T>>(b));
}
template <typename T> __device__ T mul_rn(T a, T b) {
  if constexpr (std::is_same_v<T, float>) return __fmul_rn(a, b);
  else if constexpr (std::is_same_v<T, double>) return __dmul_rn(a, b);
  else return static_cast<T>(static_cast<WrapType<T>>(a) * static_cast<WrapType<T>>(b));
}
template <typename T> __device__ T div_rn(T a, T b) {
  if constexpr (std::is_same_v<T, float>) return __fdiv_rn(a, b);
  else return __ddiv_rn(a, b);
}
template <typename T> __device__ T sqrt_rn(T x) {
  if constexpr (std::is_same_v<T, float>) return __fsqrt_rn(x);
  else return __dsqrt_rn(x);
}

// ---------------------------------------------------------------- checks

inline void check_gpu(const char* op, const char* what, const Tensor& t) {
  MEDTL_CHECK(t.defined(), op, ": ", what, " is undefined");
  MEDTL_CHECK(t.device().is_cuda(), op, ": ", what, " must be on a GPU, got ", t.str(),
              "; move it with .to(Device::cuda()) or cuda::copy_to_device");
}

// (check_same_device is launch.h's.)

inline void check_same_dtype(const char* op, const Tensor& a, const char* a_name, const Tensor& b,
                             const char* b_name) {
  MEDTL_CHECK(a.dtype() == b.dtype(), op, ": dtypes differ: ", a_name, " is ", dtype_name(a.dtype()), ", ", b_name,
              " is ", dtype_name(b.dtype()), " (no implicit promotion); convert one with .to(DType) first");
}

// A destination written elementwise must not be an expanded view: a stride-0 dim of size > 1
// would be written by several threads at once, in no fixed order.
inline void check_writable(const char* op, const Tensor& dst) {
  for (int64_t d = 0; d < dst.dim(); ++d)
    MEDTL_CHECK(dst.size(d) <= 1 || dst.stride(d) != 0, op, ": dst ", shape_str(dst.shape()),
                " is an expanded view (dim ", d, " has stride 0); write into a contiguous tensor (.contiguous())");
}

// ---------------------------------------------------------------- pointers and the kernel

// Address of t's first element (device memory: never dereferenced on the host).
inline char* byte_ptr(const Tensor& t) {
  return static_cast<char*>(t.storage()->data()) + t.offset() * dtype_size(t.dtype());
}

// The same as T (any dtype of T's size: the 16-bit formats, or raw bits of any dtype).
template <typename T> T* element_ptr(const Tensor& t) {
  MEDTL_CHECK(static_cast<int64_t>(sizeof(T)) == dtype_size(t.dtype()), "internal: ", sizeof(T),
              "-byte element type for ", t.str());
  return reinterpret_cast<T*>(byte_ptr(t));
}

// The strides of tensors[k] over `shape` (broadcast where it is smaller), for an indexer.
template <int N>
StridedIndexer<N> indexer_over(const char* op, const Shape& shape, const std::array<const Tensor*, N>& tensors) {
  std::array<Shape, N> strides;
  for (int k = 0; k < N; ++k) strides[k] = broadcast_strides(op, shape, tensors[k]->shape(), tensors[k]->strides());
  return make_indexer<N>(shape, strides);
}

// Element i of the iteration space: f(offsets) with each operand's element offset. Every element
// is computed on its own, so the grid size changes nothing but speed.
template <int N, typename F>
__global__ void strided_kernel(StridedIndexer<N> idx, int64_t n, F f) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    int64_t off[N];
    idx.offsets(i, off);
    f(off);
  }
}

// Launches strided_kernel over idx.numel elements on the current stream (nothing when empty).
// The caller holds the DeviceGuard.
template <int N, typename F>
void launch_strided(const StridedIndexer<N>& idx, const F& f) {
  const int64_t n = idx.numel;
  if (n == 0) return;
  strided_kernel<N, F><<<grid_for(n), kThreads, 0, stream()>>>(idx, n, f);
  MEDTL_CUDA_CHECK(cudaGetLastError());
}

}  // namespace medtl::cuda::detail
