// ops::copy_ and ops::fill_: the CPU kernels (strided, broadcasting, converting between dtypes),
// and where GPU tensors are handed on (tensor/backend.h, tensor/device_copy.h).
#include <cstring>

#include "tensor/backend.h"
#include "tensor/cpu/strided_loop.h"
#include "tensor/device_copy.h"
#include "tensor/dispatch.h"
#include "tensor/ops/copy.h"
#include "tensor/ops/half.h"

namespace medtl::ops {
namespace {

// Typed element conversion, including the two 16-bit float storage formats.
template <typename To, typename From>
To convert(From value) {
  if constexpr (std::is_same_v<To, bool>) return value != From(0);
  else return static_cast<To>(value);
}

// Applies body(TypeTag<T>) for every dtype a copy can read or write.
template <typename F>
void dispatch_any(DType dtype, F&& body) {
  switch (dtype) {
    case DType::Float16: return body(TypeTag<Half>{});
    case DType::BFloat16: return body(TypeTag<BFloat16>{});
    default: return dispatch_arith(dtype, "copy", body);
  }
}

template <typename T> double to_double(T value) { return static_cast<double>(value); }
double to_double(Half value) { return value.to_float(); }
double to_double(BFloat16 value) { return value.to_float(); }
template <typename T> T from_double(double value, TypeTag<T>) {
  if constexpr (std::is_same_v<T, bool>) return value != 0.0;
  else return static_cast<T>(value);
}
Half from_double(double value, TypeTag<Half>) { return Half::from_float(static_cast<float>(value)); }
BFloat16 from_double(double value, TypeTag<BFloat16>) { return BFloat16::from_float(static_cast<float>(value)); }

}  // namespace

void copy_(const Tensor& dst, const Tensor& src) {
  MEDTL_CHECK(dst.defined() && src.defined(), "copy_: undefined tensor");
  if (dst.device() != src.device()) return copy_across_devices(dst, src);
  if (DeviceBackend* gpu = backend_for("copy_", {&dst, &src})) return gpu->copy_(dst, src);
  const Tensor source = src.expand(dst.shape());
  auto ops = cpu::make_operands<2>({&dst, &source});
  dispatch_any(dst.dtype(), [&](auto dst_tag) {
    using To = typename decltype(dst_tag)::type;
    dispatch_any(src.dtype(), [&](auto src_tag) {
      using From = typename decltype(src_tag)::type;
      cpu::for_each_row<2>(ops, [](const std::array<char*, 2>& p, const std::array<int64_t, 2>& s, int64_t n) {
        if constexpr (std::is_same_v<To, From>) {
          if (s[0] == sizeof(To) && s[1] == sizeof(From)) {
            std::memcpy(p[0], p[1], n * sizeof(To));
            return;
          }
        }
        for (int64_t i = 0; i < n; ++i) {
          const From value = *reinterpret_cast<const From*>(p[1] + i * s[1]);
          To* out = reinterpret_cast<To*>(p[0] + i * s[0]);
          if constexpr (std::is_arithmetic_v<To> && std::is_arithmetic_v<From>) *out = convert<To>(value);
          else *out = from_double(to_double(value), TypeTag<To>{});
        }
      });
    });
  });
}

void fill_(const Tensor& dst, double value) {
  MEDTL_CHECK(dst.defined(), "fill_: undefined tensor");
  if (DeviceBackend* gpu = backend_for("fill_", {&dst})) return gpu->fill_(dst, value);
  auto ops = cpu::make_operands<1>({&dst});
  dispatch_any(dst.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T typed = from_double(value, TypeTag<T>{});
    cpu::for_each_row<1>(ops, [&](const std::array<char*, 1>& p, const std::array<int64_t, 1>& s, int64_t n) {
      for (int64_t i = 0; i < n; ++i) *reinterpret_cast<T*>(p[0] + i * s[0]) = typed;
    });
  });
}

}  // namespace medtl::ops
