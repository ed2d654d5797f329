// The 16-bit storage types (docs/SPEC.md section 1): conversions from float
// round to nearest, ties to even, checked against a reference that knows
// nothing of the bit tricks: the representable values of each format,
// enumerated from their definition (sign, exponent, mantissa) in double,
// and the nearest of them picked by distance.
#include <catch2/catch.hpp>

#include <core/RingAttn_Half.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

using namespace ringattn;

namespace {

/// The value of a finite code of a binary format with `mant` mantissa bits
/// and exponent bias `bias`, from the definition.
double format_value(std::uint32_t code, int exp_bits, int mant) {
  const int bias = (1 << (exp_bits - 1)) - 1;
  const std::uint32_t m = code & ((1u << mant) - 1);
  const std::uint32_t e = (code >> mant) & ((1u << exp_bits) - 1);
  const double sign = (code >> (mant + exp_bits)) & 1 ? -1.0 : 1.0;
  if (e == 0) return sign * std::ldexp(double(m), 1 - bias - mant);
  return sign * std::ldexp(double((1u << mant) + m), int(e) - bias - mant);
}

struct Format {
  int exp_bits, mant;
  std::vector<std::pair<double, std::uint16_t>> positives; // finite values >= 0, ascending
  double max_finite = 0;
  Format(int e, int m) : exp_bits(e), mant(m) {
    const std::uint32_t inf_code = ((1u << e) - 1) << m;
    for (std::uint32_t c = 0; c < inf_code; ++c) positives.emplace_back(format_value(c, e, m), c);
    max_finite = positives.back().first;
  }
  /// Round to nearest, ties to the even code; past the largest finite value
  /// by half an ulp or more: infinity.
  std::uint16_t round(float f) const {
    const double x = std::abs(double(f));
    const std::uint16_t sign = std::signbit(f) ? std::uint16_t(1u << (exp_bits + mant)) : 0;
    const std::uint32_t inf_code = ((1u << exp_bits) - 1) << mant;
    const double half_ulp_top = std::ldexp(1.0, (1 << (exp_bits - 1)) - 1 - mant - 1);
    if (x >= max_finite + half_ulp_top) return std::uint16_t(sign | inf_code);
    auto it =
        std::lower_bound(positives.begin(), positives.end(), std::make_pair(x, std::uint16_t(0)));
    if (it == positives.end()) return std::uint16_t(sign | positives.back().second);
    if (it->first == x || it == positives.begin()) return std::uint16_t(sign | it->second);
    const auto below = *(it - 1), above = *it;
    const double db = x - below.first, da = above.first - x;
    const std::uint16_t code = db < da   ? below.second
                               : da < db ? above.second
                                         : (below.second % 2 == 0 ? below.second : above.second);
    return std::uint16_t(sign | code);
  }
};

/// Random floats over the whole exponent range of a format, plus the
/// values exactly half way between neighbours (the ties).
std::vector<float> samples(const Format &fmt, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<float> out;
  std::uniform_int_distribution<std::uint32_t> bits(0, 0xffffffffu);
  for (int i = 0; i < 200000; ++i) {
    std::uint32_t u = bits(rng);
    if ((u & 0x7f800000u) == 0x7f800000u) continue; // inf and NaN checked apart
    float f;
    std::memcpy(&f, &u, 4);
    out.push_back(f);
  }
  for (std::size_t i = 0; i + 1 < fmt.positives.size(); i += 7) {
    const double mid = 0.5 * (fmt.positives[i].first + fmt.positives[i + 1].first);
    if (double(float(mid)) == mid) { // representable in float: an exact tie
      out.push_back(float(mid));
      out.push_back(-float(mid));
    }
  }
  return out;
}

} // namespace

TEST_CASE("half: bfloat16 rounds to nearest even", "[half]") {
  const Format fmt(8, 7);
  std::size_t checked = 0, mismatched = 0;
  for (float f : samples(fmt, 1)) {
    ++checked;
    if (bfloat16_t(f).bits != fmt.round(f)) ++mismatched;
  }
  INFO(checked << " values");
  CHECK(mismatched == 0);
  // every finite code converts to float and back to itself
  for (std::uint32_t c = 0; c < 0x10000u; ++c) {
    const bfloat16_t x = bfloat16_t::from_bits(std::uint16_t(c));
    const float f = float(x);
    if (std::isnan(f)) {
      CHECK(std::isnan(float(bfloat16_t(f))));
      continue;
    }
    REQUIRE(double(f) == ((c & 0x7f80u) == 0x7f80u ? double(f) : format_value(c, 8, 7)));
    REQUIRE(bfloat16_t(f).bits == c);
  }
  CHECK(std::isinf(float(bfloat16_t(std::numeric_limits<float>::max()))));
  CHECK(std::isnan(float(bfloat16_t(std::numeric_limits<float>::quiet_NaN()))));
  CHECK(float(bfloat16_t(-std::numeric_limits<float>::infinity())) ==
        -std::numeric_limits<float>::infinity());
}

TEST_CASE("half: float16 rounds to nearest even, subnormals and overflow", "[half]") {
  const Format fmt(5, 10);
  std::size_t checked = 0, mismatched = 0;
  for (float f : samples(fmt, 2)) {
    ++checked;
    if (float16_t(f).bits != fmt.round(f)) ++mismatched;
  }
  INFO(checked << " values");
  CHECK(mismatched == 0);
  for (std::uint32_t c = 0; c < 0x10000u; ++c) {
    const float16_t x = float16_t::from_bits(std::uint16_t(c));
    const float f = float(x);
    if ((c & 0x7c00u) == 0x7c00u) { // inf and NaN
      CHECK(std::isnan(f) == ((c & 0x3ffu) != 0));
      continue;
    }
    REQUIRE(double(f) == format_value(c, 5, 10));
    REQUIRE(float16_t(f).bits == c);
  }
  CHECK(float(float16_t(65504.0f)) == 65504.0f);
  CHECK(float(float16_t(65519.0f)) == 65504.0f);
  CHECK(std::isinf(float(float16_t(65520.0f))));
  CHECK(float(float16_t(5.9604644775390625e-8f)) == 5.9604644775390625e-8f); // 2^-24
  CHECK(float(float16_t(2.98023223876953125e-8f)) == 0.0f); // 2^-25: a tie, to even (0)
  CHECK(std::isnan(float(float16_t(std::numeric_limits<float>::quiet_NaN()))));
}
