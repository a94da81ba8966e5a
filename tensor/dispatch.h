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

}  // namespace medtl
