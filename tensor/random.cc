// Random tensors: uniform and normal values keyed by (seed, stream, element index).
#include <cmath>
#include <limits>

#include "tensor/dispatch.h"
#include "tensor/parallel.h"
#include "tensor/tensor.h"

namespace medtl {
namespace {

constexpr double kTwoPi = 6.283185307179586476925286766559;

// Fills a contiguous float tensor in parallel; value_at(i) must depend on i only.
template <typename ValueAt>
Tensor fill_by_index(const Shape& shape, DType dtype, const char* op, ValueAt value_at) {
  Tensor out = empty(shape, dtype);
  dispatch_float(dtype, op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = out.data<T>();
    parallel_for(0, out.numel(), 4096, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) p[i] = static_cast<T>(value_at(static_cast<uint64_t>(i), tag));
    });
  });
  return out;
}

// A uniform value in [0, 1) at the precision of T, from one Philox block.
template <typename T> double unit_from_block(const PhiloxBlock& r, int pair) {
  if constexpr (std::is_same_v<T, float>) return uint_to_unit_float(r[pair * 2]);
  else return uints_to_unit_double(r[pair * 2], r[pair * 2 + 1]);
}

}  // namespace

Tensor uniform_keyed(const Shape& shape, uint64_t seed, uint64_t stream, double low, double high, DType dtype) {
  MEDTL_CHECK(low <= high, "uniform: low ", low, " is above high ", high);
  return fill_by_index(shape, dtype, "uniform", [&](uint64_t i, auto tag) {
    using T = typename decltype(tag)::type;
    const double u = unit_from_block<T>(philox_random(seed, stream, i), 0);
    // low + (high - low) * u < high, but rounding it to T can carry it up to high (often, when
    // the range is small next to |low|); then take the largest T below high, keeping [low, high).
    const T value = static_cast<T>(low + (high - low) * u);
    if (static_cast<double>(value) < high || !(low < high)) return value;
    return std::nextafter(static_cast<T>(high), -std::numeric_limits<T>::infinity());
  });
}

Tensor normal_keyed(const Shape& shape, uint64_t seed, uint64_t stream, double mean, double stddev, DType dtype) {
  MEDTL_CHECK(stddev >= 0, "normal: stddev must be >= 0, got ", stddev);
  // Box-Muller on the block's two uniforms; u1 is taken from (0, 1] so log(u1) is finite.
  return fill_by_index(shape, dtype, "normal", [&](uint64_t i, auto) {
    const PhiloxBlock r = philox_random(seed, stream, i);
    const double u1 = 1.0 - uints_to_unit_double(r[0], r[1]);
    const double u2 = uints_to_unit_double(r[2], r[3]);
    return mean + stddev * std::sqrt(-2.0 * std::log(u1)) * std::cos(kTwoPi * u2);
  });
}

Tensor uniform(const Shape& shape, Generator& gen, double low, double high, DType dtype) {
  return uniform_keyed(shape, gen.seed(), gen.take_stream(), low, high, dtype);
}

Tensor normal(const Shape& shape, Generator& gen, double mean, double stddev, DType dtype) {
  return normal_keyed(shape, gen.seed(), gen.take_stream(), mean, stddev, dtype);
}

}  // namespace medtl
