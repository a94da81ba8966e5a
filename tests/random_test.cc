// Random numbers: Philox 4x32-10 against the published known answers, the Generator's streams,
// the (seed, stream, index) keying that makes draws independent of shape and thread count, and
// the statistics and ranges of uniform and normal tensors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <set>
#include <vector>

#include "tensor/parallel.h"
#include "tensor/philox.h"
#include "tensor/tensor.h"
#include "tests/test_util.h"

namespace medtl {
namespace {

using ::medtl::testing::tensors_identical;

// ================================================================ Philox known answers

// Random123's kat_vectors for philox4x32 with 10 rounds.
TEST(Philox, KnownAnswerZeros) {
  const PhiloxBlock out = philox4x32_10({0u, 0u, 0u, 0u}, {0u, 0u});
  EXPECT_EQ(out, (PhiloxBlock{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
}

TEST(Philox, KnownAnswerAllOnes) {
  const PhiloxBlock out = philox4x32_10({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu});
  EXPECT_EQ(out, (PhiloxBlock{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
}

TEST(Philox, KnownAnswerPi) {
  const PhiloxBlock out = philox4x32_10({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u});
  EXPECT_EQ(out, (PhiloxBlock{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}));
}

TEST(Philox, RandomLaysOutCounterAndKey) {
  // philox_random(seed, stream, index) is Philox over counter (index lo, index hi, stream lo,
  // stream hi) under key (seed lo, seed hi).
  const uint64_t seed = 0x299f31d0a4093822ull, stream = 0x0370734413198a2eull, index = 0x85a308d3243f6a88ull;
  EXPECT_EQ(philox_random(seed, stream, index), (PhiloxBlock{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}));
  EXPECT_EQ(philox_random(0, 0, 0), (PhiloxBlock{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
  EXPECT_EQ(philox_random(~0ull, ~0ull, ~0ull), (PhiloxBlock{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
}

TEST(Philox, EveryInputMatters) {
  const PhiloxBlock base = philox_random(1, 2, 3);
  EXPECT_NE(philox_random(2, 2, 3), base);
  EXPECT_NE(philox_random(1, 3, 3), base);
  EXPECT_NE(philox_random(1, 2, 4), base);
  // High halves of each 64-bit input too.
  EXPECT_NE(philox_random(1 | (1ull << 32), 2, 3), base);
  EXPECT_NE(philox_random(1, 2 | (1ull << 32), 3), base);
  EXPECT_NE(philox_random(1, 2, 3 | (1ull << 32)), base);
  // Swapping stream and index gives a different counter.
  EXPECT_NE(philox_random(1, 3, 2), base);
  EXPECT_EQ(philox_random(1, 2, 3), base);  // and it is a pure function
}

TEST(Philox, UnitConversions) {
  EXPECT_EQ(uint_to_unit_float(0u), 0.0f);
  EXPECT_EQ(uint_to_unit_float(0xffffffffu), 1.0f - 1.0f / 16777216.0f);
  EXPECT_LT(uint_to_unit_float(0xffffffffu), 1.0f);
  EXPECT_EQ(uint_to_unit_float(0x80000000u), 0.5f);
  EXPECT_EQ(uints_to_unit_double(0u, 0u), 0.0);
  EXPECT_EQ(uints_to_unit_double(0xffffffffu, 0xffffffffu), 1.0 - 1.0 / 9007199254740992.0);
  EXPECT_LT(uints_to_unit_double(0xffffffffu, 0xffffffffu), 1.0);
  EXPECT_EQ(uints_to_unit_double(0x80000000u, 0u), 0.5);
  // The low word supplies the bottom 21 bits: its top bit is worth 2^-33.
  EXPECT_EQ(uints_to_unit_double(0u, 0x80000000u), std::ldexp(1.0, -33));
  EXPECT_EQ(uints_to_unit_double(0u, 0x7ffu), 0.0);  // the low 11 bits are dropped
}

// ================================================================ Generator

TEST(GeneratorTest, StreamsAdvance) {
  Generator gen(42);
  EXPECT_EQ(gen.seed(), 42u);
  EXPECT_EQ(gen.next_stream(), 0u);
  EXPECT_EQ(gen.take_stream(), 0u);
  EXPECT_EQ(gen.take_stream(), 1u);
  EXPECT_EQ(gen.next_stream(), 2u);
  Generator resumed(7, 100);
  EXPECT_EQ(resumed.next_stream(), 100u);
  EXPECT_EQ(Generator().seed(), 0u);
}

TEST(GeneratorTest, EachDrawTakesOneStream) {
  Generator gen(5);
  uniform({3}, gen);
  EXPECT_EQ(gen.next_stream(), 1u);
  normal({2, 2}, gen);
  EXPECT_EQ(gen.next_stream(), 2u);
  uniform({0}, gen);  // even an empty draw takes a stream
  EXPECT_EQ(gen.next_stream(), 3u);
  normal({4}, gen, 0.0, 1.0, DType::Float64);
  EXPECT_EQ(gen.next_stream(), 4u);
  EXPECT_EQ(gen.seed(), 5u);
}

TEST(GeneratorTest, SuccessiveDrawsDiffer) {
  Generator gen(11);
  const Tensor a = uniform({64}, gen), b = uniform({64}, gen);
  EXPECT_FALSE(tensors_identical(a, b));
  const Tensor c = normal({64}, gen), d = normal({64}, gen);
  EXPECT_FALSE(tensors_identical(c, d));
}

TEST(GeneratorTest, ResumingFromRecordedStateReplaysTheSequence) {
  Generator gen(2024);
  uniform({10}, gen);
  normal({10}, gen);
  const Generator saved(gen.seed(), gen.next_stream());
  const Tensor u = uniform({100}, gen), n = normal({100}, gen, 1.0, 2.0, DType::Float64);
  Generator replay = saved;
  EXPECT_TRUE(tensors_identical(uniform({100}, replay), u));
  EXPECT_TRUE(tensors_identical(normal({100}, replay, 1.0, 2.0, DType::Float64), n));
  EXPECT_EQ(replay.next_stream(), gen.next_stream());
}

// ================================================================ determinism

TEST(Determinism, SameSeedSameBits) {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    Generator g1(123), g2(123);
    const Tensor u1 = uniform({7, 9}, g1, -2.0, 3.0, dtype), u2 = uniform({7, 9}, g2, -2.0, 3.0, dtype);
    EXPECT_EQ(u1.dtype(), dtype);
    EXPECT_EQ(u1.shape(), Shape({7, 9}));
    EXPECT_TRUE(tensors_identical(u1, u2)) << dtype_name(dtype);
    const Tensor n1 = normal({5, 11}, g1, 0.5, 2.0, dtype), n2 = normal({5, 11}, g2, 0.5, 2.0, dtype);
    EXPECT_EQ(n1.dtype(), dtype);
    EXPECT_TRUE(tensors_identical(n1, n2)) << dtype_name(dtype);
  }
}

TEST(Determinism, DifferentSeedsOrStreamsDiffer) {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    Generator a(1), b(2), c(1, 1);
    const Tensor ua = uniform({256}, a, 0.0, 1.0, dtype);
    const Tensor ub = uniform({256}, b, 0.0, 1.0, dtype);
    const Tensor uc = uniform({256}, c, 0.0, 1.0, dtype);
    EXPECT_FALSE(tensors_identical(ua, ub));
    EXPECT_FALSE(tensors_identical(ua, uc));
    EXPECT_FALSE(tensors_identical(ub, uc));
    // Not just different somewhere: nearly every element differs.
    const auto va = ua.to_vector<double>(), vb = ub.to_vector<double>();
    int equal = 0;
    for (size_t i = 0; i < va.size(); ++i) equal += va[i] == vb[i];
    EXPECT_LE(equal, 2);
    EXPECT_FALSE(tensors_identical(normal_keyed({256}, 1, 0, 0, 1, dtype), normal_keyed({256}, 2, 0, 0, 1, dtype)));
    EXPECT_FALSE(tensors_identical(normal_keyed({256}, 1, 0, 0, 1, dtype), normal_keyed({256}, 1, 1, 0, 1, dtype)));
  }
  // Elements within one draw differ from each other too.
  const auto v = uniform_keyed({1000}, 9, 9, 0.0, 1.0, DType::Float64).to_vector<double>();
  EXPECT_EQ(std::set<double>(v.begin(), v.end()).size(), v.size());
}

TEST(Determinism, ValueDependsOnlyOnSeedStreamAndIndex) {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    Generator g1(77, 5), g2(77, 5);
    const Tensor flat = uniform({1000}, g1, -1.0, 4.0, dtype);
    const Tensor grid = uniform({10, 100}, g2, -1.0, 4.0, dtype);
    const Tensor keyed = uniform_keyed({1000}, 77, 5, -1.0, 4.0, dtype);
    const Tensor keyed3d = uniform_keyed({5, 4, 50}, 77, 5, -1.0, 4.0, dtype);
    EXPECT_TRUE(tensors_identical(grid.view({1000}), flat)) << dtype_name(dtype);
    EXPECT_TRUE(tensors_identical(keyed, flat)) << dtype_name(dtype);
    EXPECT_TRUE(tensors_identical(keyed3d.view({1000}), flat)) << dtype_name(dtype);
    // A shorter draw is a prefix of a longer one.
    EXPECT_TRUE(tensors_identical(uniform_keyed({37}, 77, 5, -1.0, 4.0, dtype), flat.narrow(0, 0, 37)));

    Generator h1(77, 5), h2(77, 5);
    const Tensor nflat = normal({1000}, h1, 3.0, 0.5, dtype);
    const Tensor ngrid = normal({10, 100}, h2, 3.0, 0.5, dtype);
    EXPECT_TRUE(tensors_identical(ngrid.view({1000}), nflat)) << dtype_name(dtype);
    EXPECT_TRUE(tensors_identical(normal_keyed({1000}, 77, 5, 3.0, 0.5, dtype), nflat)) << dtype_name(dtype);
    EXPECT_TRUE(tensors_identical(normal_keyed({20, 50}, 77, 5, 3.0, 0.5, dtype).view({1000}), nflat));
  }
}

TEST(Determinism, ElementsMatchTheirPhiloxBlock) {
  // The documented recipe: uniform float32 uses word 0 (24 bits), float64 words 0 and 1 (53 bits).
  const uint64_t seed = 0xfeedfacecafebeefull, stream = 3;
  const auto f = uniform_keyed({50}, seed, stream, 0.0, 1.0, DType::Float32).to_vector<float>();
  const auto d = uniform_keyed({50}, seed, stream, 0.0, 1.0, DType::Float64).to_vector<double>();
  const auto n = normal_keyed({50}, seed, stream, 0.0, 1.0, DType::Float64).to_vector<double>();
  for (uint64_t i = 0; i < 50; ++i) {
    const PhiloxBlock r = philox_random(seed, stream, i);
    EXPECT_EQ(f[i], uint_to_unit_float(r[0])) << i;
    EXPECT_EQ(d[i], uints_to_unit_double(r[0], r[1])) << i;
    const double u1 = 1.0 - uints_to_unit_double(r[0], r[1]), u2 = uints_to_unit_double(r[2], r[3]);
    EXPECT_NEAR(n[i], std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2), 1e-12) << i;
  }
}

// Restores the thread count however the test exits.
class ThreadCountGuard {
 public:
  ThreadCountGuard() : saved_(get_num_threads()) {}
  ~ThreadCountGuard() { set_num_threads(saved_); }

 private:
  int saved_;
};

TEST(Determinism, ThreadCountIndependent) {
  const int before = get_num_threads();
  {
    ThreadCountGuard guard;
    const Shape shape = {3, 100003};  // several parallel pieces, an odd split
    std::vector<Tensor> one, two, four;
    for (int threads : {1, 2, 4}) {
      set_num_threads(threads);
      EXPECT_EQ(get_num_threads(), threads);
      auto& out = threads == 1 ? one : threads == 2 ? two : four;
      Generator gen(99);
      out.push_back(uniform(shape, gen, -1.0, 1.0, DType::Float32));
      out.push_back(uniform(shape, gen, -1.0, 1.0, DType::Float64));
      out.push_back(normal(shape, gen, 0.0, 1.0, DType::Float32));
      out.push_back(normal(shape, gen, 0.0, 1.0, DType::Float64));
    }
    for (size_t k = 0; k < one.size(); ++k) {
      EXPECT_TRUE(tensors_identical(one[k], two[k])) << "draw " << k;
      EXPECT_TRUE(tensors_identical(one[k], four[k])) << "draw " << k;
    }
  }
  EXPECT_EQ(get_num_threads(), before);
  EXPECT_ERROR_CONTAINS(set_num_threads(0), "at least 1 thread");
}

// ================================================================ statistics and ranges

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}
double std_of(const std::vector<double>& v) {
  const double m = mean_of(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size()));
}

TEST(Statistics, UniformMeanStdAndRange) {
  constexpr int64_t kN = 1000000;
  for (DType dtype : {DType::Float32, DType::Float64}) {
    Generator gen(31337);
    const double low = -2.0, high = 6.0;
    const auto v = uniform({kN}, gen, low, high, dtype).to_vector<double>();
    // Mean (low+high)/2, std (high-low)/sqrt(12); standard error of the mean ~ 0.0023.
    EXPECT_NEAR(mean_of(v), 2.0, 0.015) << dtype_name(dtype);
    EXPECT_NEAR(std_of(v), 8.0 / std::sqrt(12.0), 0.01) << dtype_name(dtype);
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    int64_t bins[8] = {};
    for (double x : v) {
      ASSERT_GE(x, low);
      ASSERT_LT(x, high);
      lo = std::min(lo, x);
      hi = std::max(hi, x);
      ++bins[static_cast<int>(x - low)];
    }
    EXPECT_LT(lo, low + 1e-4);
    EXPECT_GT(hi, high - 1e-4);
    for (int64_t count : bins) EXPECT_NEAR(static_cast<double>(count), kN / 8.0, 2000.0) << dtype_name(dtype);
  }
}

TEST(Statistics, UniformDefaultsToUnitInterval) {
  Generator gen(8);
  const Tensor u = uniform({100000}, gen);
  EXPECT_EQ(u.dtype(), DType::Float32);
  const auto v = u.to_vector<double>();
  for (double x : v) {
    ASSERT_GE(x, 0.0);
    ASSERT_LT(x, 1.0);
  }
  EXPECT_NEAR(mean_of(v), 0.5, 0.005);
}

TEST(Statistics, UniformStaysBelowHighAfterRounding) {
  // Where the range is small next to |low|, low + (high - low) * u can round up to high in the
  // output precision; the result must still lie in [low, high).
  for (DType dtype : {DType::Float32, DType::Float64}) {
    for (auto [low, high] : {std::pair<double, double>{1.0, 2.0}, {100.0, 101.0}, {1000.0, 1000.5}, {-1.0, 0.0},
                             {1e6, 1e6 + 1.0},
                             {1e6, 1e6 + std::ldexp(1.0, -31)} /* 4 float64 ulps: 1 in 8 draws rounded up */}) {
      const auto v = uniform_keyed({1000000}, 4242, 0, low, high, dtype).to_vector<double>();
      int64_t at_high = 0, below_low = 0;
      for (double x : v) {
        at_high += x >= high;
        below_low += x < low;
      }
      EXPECT_EQ(at_high, 0) << dtype_name(dtype) << " [" << low << ", " << high << ")";
      EXPECT_EQ(below_low, 0) << dtype_name(dtype) << " [" << low << ", " << high << ")";
    }
  }
}

TEST(Statistics, UniformEmptyRangeAndErrors) {
  Generator gen(1);
  const auto v = uniform({10}, gen, 3.0, 3.0).to_vector<float>();
  for (float x : v) EXPECT_EQ(x, 3.0f);
  EXPECT_ERROR_CONTAINS(uniform({10}, gen, 2.0, 1.0), "uniform: low 2 is above high 1");
  EXPECT_ERROR_CONTAINS(uniform_keyed({10}, 0, 0, 5.0, -5.0, DType::Float32), "is above high");
  EXPECT_ERROR_CONTAINS(normal({10}, gen, 0.0, -1.0), "stddev must be >= 0");
  EXPECT_ERROR_CONTAINS(uniform({10}, gen, 0.0, 1.0, DType::Int64), "uniform: dtype int64 is not supported");
  EXPECT_ERROR_CONTAINS(normal({10}, gen, 0.0, 1.0, DType::Float16), "normal: dtype float16 is not supported");
}

TEST(Statistics, NormalMeanStdAndFinite) {
  constexpr int64_t kN = 1000000;
  for (DType dtype : {DType::Float32, DType::Float64}) {
    Generator gen(271828);
    const auto v = normal({kN}, gen, 0.0, 1.0, dtype).to_vector<double>();
    for (double x : v) ASSERT_TRUE(std::isfinite(x)) << dtype_name(dtype);
    EXPECT_NEAR(mean_of(v), 0.0, 0.006) << dtype_name(dtype);  // standard error 0.001
    EXPECT_NEAR(std_of(v), 1.0, 0.005) << dtype_name(dtype);
    // Tail mass: P(|z| > 1) = 0.3173, P(|z| > 2) = 0.0455, P(|z| > 3) = 0.0027.
    int64_t over1 = 0, over2 = 0, over3 = 0, positive = 0;
    double skew = 0, kurt = 0;
    for (double x : v) {
      over1 += std::abs(x) > 1;
      over2 += std::abs(x) > 2;
      over3 += std::abs(x) > 3;
      positive += x > 0;
      skew += x * x * x;
      kurt += x * x * x * x;
    }
    EXPECT_NEAR(over1 / double(kN), 0.3173, 0.003) << dtype_name(dtype);
    EXPECT_NEAR(over2 / double(kN), 0.0455, 0.001) << dtype_name(dtype);
    EXPECT_NEAR(over3 / double(kN), 0.0027, 0.0003) << dtype_name(dtype);
    EXPECT_NEAR(positive / double(kN), 0.5, 0.003) << dtype_name(dtype);
    EXPECT_NEAR(skew / kN, 0.0, 0.02) << dtype_name(dtype);
    EXPECT_NEAR(kurt / kN, 3.0, 0.05) << dtype_name(dtype);
  }
}

TEST(Statistics, NormalMeanAndStddevParameters) {
  Generator gen(4);
  const auto v = normal({200000}, gen, -3.0, 0.25, DType::Float64).to_vector<double>();
  EXPECT_NEAR(mean_of(v), -3.0, 0.005);
  EXPECT_NEAR(std_of(v), 0.25, 0.003);
  // stddev 0 gives the mean exactly.
  const auto c = normal({100}, gen, 1.5, 0.0).to_vector<float>();
  for (float x : c) EXPECT_EQ(x, 1.5f);
  // The standard draw scaled by hand matches the scaled draw bit for bit in float64 up to rounding.
  const Tensor z = normal_keyed({1000}, 8, 8, 0.0, 1.0, DType::Float64);
  const Tensor s = normal_keyed({1000}, 8, 8, 10.0, 3.0, DType::Float64);
  const auto zv = z.to_vector<double>(), sv = s.to_vector<double>();
  for (size_t i = 0; i < zv.size(); ++i) EXPECT_NEAR(sv[i], 10.0 + 3.0 * zv[i], 1e-12);
}

TEST(Statistics, NormalLargeDrawHasNoInfOrNan) {
  // Covers many counter values, including the extreme Box-Muller inputs as far as they occur.
  for (DType dtype : {DType::Float32, DType::Float64}) {
    const Tensor t = normal_keyed({2000000}, 0, 0, 0.0, 1.0, dtype);
    const auto v = t.to_vector<double>();
    double max_abs = 0;
    for (double x : v) {
      ASSERT_FALSE(std::isnan(x));
      ASSERT_FALSE(std::isinf(x));
      max_abs = std::max(max_abs, std::abs(x));
    }
    EXPECT_GT(max_abs, 4.0);   // 2M draws reach beyond 4 sigma
    EXPECT_LT(max_abs, 8.6);   // sqrt(-2 ln 2^-53) bounds Box-Muller here
  }
}

TEST(Shapes, RandomTensorsHaveRequestedShapeAndLayout) {
  Generator gen(3);
  const Tensor u = uniform({2, 3, 4}, gen, 0.0, 1.0, DType::Float64);
  EXPECT_EQ(u.shape(), Shape({2, 3, 4}));
  EXPECT_TRUE(u.is_contiguous());
  EXPECT_EQ(u.offset(), 0);
  const Tensor s = normal({}, gen);
  EXPECT_EQ(s.dim(), 0);
  EXPECT_TRUE(std::isfinite(s.item()));
  EXPECT_EQ(uniform({0, 5}, gen).numel(), 0);
  EXPECT_EQ(normal({4, 0}, gen).numel(), 0);
}

}  // namespace
}  // namespace medtl
