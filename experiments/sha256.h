// SHA-256 (FIPS 180-4) of a byte string, as lowercase hex: a small dependency-free implementation.
#pragma once

#include <string>

namespace medtl::experiments::sha256 {

// SHA-256 of `bytes`, as 64 lowercase hex digits.
std::string hex(const std::string& bytes);

}  // namespace medtl::experiments::sha256
