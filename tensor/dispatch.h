// Runs a generic lambda with the C++ type that matches a runtime DType (a switch written once).
//
//   dispatch_float(t.dtype(), "exp", [&](auto tag) { using T = typename decltype(tag)::type; ... });
#pragma once

#include <cstdint>

#include "tensor/dtype.h"
#include "tensor/error.h"

namespace medtl {

template <typename T> struct TypeTag { using type = T; };

// float32 and float64: the dtypes every math kernel supports.
template <typename F>
decltype(auto) dispatch_float(DType dtype, const char* op, F&& body) {
  switch (dtype) {
    case DType::Float32: return body(TypeTag<float>{});
    case DType::Float64: return body(TypeTag<double>{});
    default:
      MEDTL_CHECK(false, op, ": dtype ", dtype_name(dtype),
                  " is not supported (float32 and float64 are); convert with .to(DType::Float32)");
  }
  return body(TypeTag<float>{});  // unreachable
}

// Every dtype with arithmetic in C++ (not the 16-bit floats, which are storage only for now).
template <typename F>
decltype(auto) dispatch_arith(DType dtype, const char* op, F&& body) {
  switch (dtype) {
    case DType::Float32: return body(TypeTag<float>{});
    case DType::Float64: return body(TypeTag<double>{});
    case DType::Int64: return body(TypeTag<int64_t>{});
    case DType::Int32: return body(TypeTag<int32_t>{});
    case DType::UInt8: return body(TypeTag<uint8_t>{});
    case DType::Bool: return body(TypeTag<bool>{});
    default:
      MEDTL_CHECK(false, op, ": dtype ", dtype_name(dtype),
                  " is storage-only so far; convert with .to(DType::Float32) before computing");
  }
  return body(TypeTag<float>{});  // unreachable
}

// The dtype sets of the elementwise ops (tensor/ops/elementwise.h), CPU and GPU alike:
// Float = float32/64; Numeric = those and int64, int32, uint8; All = those and bool.
enum class Kinds { Float, Numeric, All };

template <Kinds K, typename F>
decltype(auto) dispatch_kinds(DType dtype, const char* op, F&& body) {
  if constexpr (K == Kinds::Float) {
    return dispatch_float(dtype, op, body);
  } else if constexpr (K == Kinds::All) {
    return dispatch_arith(dtype, op, body);
  } else {
    switch (dtype) {
      case DType::Int64: return body(TypeTag<int64_t>{});
      case DType::Int32: return body(TypeTag<int32_t>{});
      case DType::UInt8: return body(TypeTag<uint8_t>{});
      default:
        MEDTL_CHECK(dtype == DType::Float32 || dtype == DType::Float64, op, ": dtype ", dtype_name(dtype),
                    " is not supported (float32, float64, int64, int32 and uint8 are); convert with .to(DType)");
        return dispatch_float(dtype, op, body);
    }
  }
}

// float32, float64 and int64: what sum and max take (tensor/ops/reduce.h), CPU and GPU alike.
template <typename F>
void dispatch_sum_types(DType dtype, const char* op, F&& body) {
  if (dtype == DType::Int64) {
    body(TypeTag<int64_t>{});
    return;
  }
  MEDTL_CHECK(dtype == DType::Float32 || dtype == DType::Float64, op, ": dtype ", dtype_name(dtype),
              " is not supported (float32, float64 and int64 are); convert with .to(DType)");
  dispatch_float(dtype, op, body);
}

}  // namespace medtl
