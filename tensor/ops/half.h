// The two 16-bit float storage formats: IEEE binary16 (Half) and bfloat16. Conversion only;
// kernels compute in float32 and these exist so tensors can be stored and moved compactly.
#pragma once

#include <cstdint>
#include <cstring>

namespace medtl {

// bfloat16: the top 16 bits of a float32. Rounds to nearest even; NaN stays NaN.
struct BFloat16 {
  uint16_t bits = 0;
  static BFloat16 from_float(float value) {
    uint32_t u;
    std::memcpy(&u, &value, 4);
    BFloat16 out;
    if ((u & 0x7fffffffu) > 0x7f800000u) { out.bits = static_cast<uint16_t>((u >> 16) | 0x40); return out; }
    u += 0x7fffu + ((u >> 16) & 1u);
    out.bits = static_cast<uint16_t>(u >> 16);
    return out;
  }
  float to_float() const {
    uint32_t u = static_cast<uint32_t>(bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
};

// IEEE 754 binary16, converted with the compiler's _Float16 (round to nearest even).
struct Half {
  uint16_t bits = 0;
  static Half from_float(float value) {
    _Float16 h = static_cast<_Float16>(value);
    Half out;
    std::memcpy(&out.bits, &h, 2);
    return out;
  }
  float to_float() const {
    _Float16 h;
    std::memcpy(&h, &bits, 2);
    return static_cast<float>(h);
  }
};

}  // namespace medtl
