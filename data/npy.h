// NumPy .npy files: read any C- or Fortran-ordered little-endian array of a supported dtype into
// a Tensor, and write a Tensor as .npy (version 1.0), so results can be checked in Python.
#pragma once

#include <string>

#include "tensor/tensor.h"

namespace medtl::data {

// Parses an .npy byte buffer (the whole file); `name` is used in error messages.
Tensor parse_npy(const std::string& bytes, const std::string& name);
// Reads `path`. Supported dtypes: <f4 <f8 <i8 <i4 |u1 |b1. Errors name the file and the problem.
Tensor read_npy(const std::string& path);
// Writes t (any layout; written in row-major order) to `path` atomically (path.tmp, then rename).
void write_npy(const std::string& path, const Tensor& t);
// The bytes write_npy writes (version 1.0 header + row-major data): for .npz members.
std::string serialize_npy(const Tensor& t);

}  // namespace medtl::data
