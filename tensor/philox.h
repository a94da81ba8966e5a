// Philox 4x32-10, the counter-based random generator (Salmon et al., SC 2011), and the
// Generator that hands out counter ranges to tensors.
//
// A counter-based generator computes the n-th random number directly from (key, n): there is
// no sequential state to advance inside a kernel, so element i of a random tensor depends only
// on the seed and i, never on how threads split the work.
#pragma once

#include <array>
#include <cstdint>

namespace medtl {

using PhiloxBlock = std::array<uint32_t, 4>;

// Ten rounds of Philox over the 128-bit counter under the 64-bit key.
PhiloxBlock philox4x32_10(PhiloxBlock counter, std::array<uint32_t, 2> key);

// Random values for element `index` of stream `stream` under `seed`. Every element gets its own
// counter (index, stream): 4 uint32 values, of which uniform/normal use what they need.
PhiloxBlock philox_random(uint64_t seed, uint64_t stream, uint64_t index);

// A uint32 to a float in [0, 1) with 24 random bits; two uint32 to a double with 53 bits.
inline float uint_to_unit_float(uint32_t x) { return static_cast<float>(x >> 8) * (1.0f / 16777216.0f); }
inline double uints_to_unit_double(uint32_t hi, uint32_t lo) {
  uint64_t bits = (static_cast<uint64_t>(hi) << 21) ^ (lo >> 11);  // 53 bits
  return static_cast<double>(bits & ((uint64_t(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
}

// Seed plus a stream offset. Each random tensor drawn from a Generator takes the next stream
// number, so successive draws differ, and a run that records (seed, next_stream) can resume
// the exact same sequence.
class Generator {
 public:
  explicit Generator(uint64_t seed = 0, uint64_t next_stream = 0) : seed_(seed), next_stream_(next_stream) {}
  uint64_t seed() const { return seed_; }
  uint64_t next_stream() const { return next_stream_; }
  uint64_t take_stream() { return next_stream_++; }

 private:
  uint64_t seed_;
  uint64_t next_stream_;
};

}  // namespace medtl
