// Element types a Tensor can hold, their sizes and names, and the C++ type behind each.
#pragma once

#include <cstdint>
#include <string>

namespace medtl {

// Float16 and BFloat16 are storage formats only for now: they can be allocated and copied,
// every compute kernel rejects them with a clear message.
enum class DType : uint8_t { Float32, Float64, Float16, BFloat16, Int64, Int32, UInt8, Bool };

int64_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);
bool is_floating(DType dtype);  // Float32, Float64, Float16, BFloat16

// Maps a C++ type to its DType: dtype_of<float>() == DType::Float32.
template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::Float32; }
template <> constexpr DType dtype_of<double>() { return DType::Float64; }
template <> constexpr DType dtype_of<int64_t>() { return DType::Int64; }
template <> constexpr DType dtype_of<int32_t>() { return DType::Int32; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::UInt8; }
template <> constexpr DType dtype_of<bool>() { return DType::Bool; }

}  // namespace medtl
