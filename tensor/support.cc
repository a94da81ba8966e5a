// Names and sizes of dtypes and devices, and the error thrower behind MEDTL_CHECK.
#include <string>

#include "tensor/device.h"
#include "tensor/dtype.h"
#include "tensor/error.h"

namespace medtl {

int64_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::Float32: return 4;
    case DType::Float64: return 8;
    case DType::Float16: return 2;
    case DType::BFloat16: return 2;
    case DType::Int64: return 8;
    case DType::Int32: return 4;
    case DType::UInt8: return 1;
    case DType::Bool: return 1;
  }
  return 0;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Float16: return "float16";
    case DType::BFloat16: return "bfloat16";
    case DType::Int64: return "int64";
    case DType::Int32: return "int32";
    case DType::UInt8: return "uint8";
    case DType::Bool: return "bool";
  }
  return "unknown";
}

bool is_floating(DType dtype) {
  return dtype == DType::Float32 || dtype == DType::Float64 || dtype == DType::Float16 || dtype == DType::BFloat16;
}

std::string Device::str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

namespace detail {
void throw_error(const char* file, int line, const std::string& message) {
  // The file:line goes last: users read the message first, developers find the check after.
  throw Error(message + "  [" + file + ":" + std::to_string(line) + "]");
}
}  // namespace detail

}  // namespace medtl
