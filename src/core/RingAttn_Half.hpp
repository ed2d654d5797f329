#ifndef RINGATTN_HALF_HPP
#define RINGATTN_HALF_HPP

// 16-bit storage types (docs/SPEC.md section 1): bfloat16 (8 exponent bits,
// 7 mantissa bits: the top half of a float32) and float16 (IEEE binary16: 5
// exponent bits, 10 mantissa bits, subnormals below 2^-14). They only store:
// every use converts to float32 first, and scores, the softmax and all
// accumulation run in float32 (accumulate_t). Conversions from float round to
// nearest, ties to even; NaN stays NaN and overflow becomes infinity. Plain
// bit arithmetic, callable in host and device code on every Kokkos version
// (Kokkos 3.4 has no host bfloat16).

#include <Kokkos_Macros.hpp>

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace ringattn {

namespace Details {

KOKKOS_INLINE_FUNCTION std::uint32_t float_bits(float f) {
  std::uint32_t u;
  memcpy(&u, &f, sizeof(u));
  return u;
}

KOKKOS_INLINE_FUNCTION float bits_float(std::uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof(f));
  return f;
}

/// float -> bfloat16 bits, round to nearest even (a quiet NaN for NaN).
KOKKOS_INLINE_FUNCTION std::uint16_t bfloat16_bits(float f) {
  const std::uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return std::uint16_t((u >> 16) | 0x0040u);
  // Adding 0x7fff plus the lowest kept bit carries into the kept half
  // exactly when the dropped half is above one half, or equal and odd.
  return std::uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/// float -> float16 bits, round to nearest even; at or above 65520 (half
/// way past the largest half, 65504) infinity; a quiet NaN for NaN.
KOKKOS_INLINE_FUNCTION std::uint16_t float16_bits(float f) {
  const std::uint32_t u = float_bits(f);
  const std::uint32_t sign = (u >> 16) & 0x8000u;
  const std::uint32_t x = u & 0x7fffffffu;
  if (x > 0x7f800000u) return std::uint16_t(sign | 0x7e00u);  // NaN
  if (x >= 0x477ff000u) return std::uint16_t(sign | 0x7c00u); // rounds past 65504
  if (x < 0x38800000u) {
    // Below 2^-14: a subnormal half, k * 2^-24. Adding 0.5 (whose float ulp
    // is 2^-24) makes the hardware round |f| to that grid, ties to even;
    // the low mantissa bits of the sum are k.
    const float sum = bits_float(x) + 0.5f;
    return std::uint16_t(sign | (float_bits(sum) - 0x3f000000u));
  }
  // Normal: rebias the exponent (127 -> 15) and drop 13 mantissa bits,
  // rounding as for bfloat16. A carry out of the mantissa raises the
  // exponent, which is the right result (up to 0x7bff + 1 = infinity,
  // excluded above).
  return std::uint16_t(sign | ((x - 0x38000000u + 0x0fffu + ((x >> 13) & 1u)) >> 13));
}

/// float16 bits -> float (exact).
KOKKOS_INLINE_FUNCTION float float16_value(std::uint16_t h) {
  const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
  const std::uint32_t em = h & 0x7fffu;
  if (em >= 0x7c00u) return bits_float(sign | 0x7f800000u | ((em & 0x3ffu) << 13)); // inf, NaN
  if (em >= 0x0400u) return bits_float(sign | ((em << 13) + 0x38000000u));          // normal
  const float magnitude = float(em) * 5.9604644775390625e-8f;                       // k * 2^-24
  return sign ? -magnitude : magnitude;
}

} // namespace Details

/// bfloat16 storage. Converts explicitly from and to arithmetic types.
struct bfloat16_t {
  std::uint16_t bits = 0;

  bfloat16_t() = default;
  template <class T, std::enable_if_t<std::is_arithmetic_v<T>, int> = 0>
  KOKKOS_INLINE_FUNCTION explicit bfloat16_t(T value)
      : bits(Details::bfloat16_bits(float(value))) {}
  KOKKOS_INLINE_FUNCTION explicit operator float() const {
    return Details::bits_float(std::uint32_t(bits) << 16);
  }
  KOKKOS_INLINE_FUNCTION explicit operator double() const { return double(float(*this)); }
  KOKKOS_INLINE_FUNCTION static bfloat16_t from_bits(std::uint16_t b) {
    bfloat16_t x;
    x.bits = b;
    return x;
  }
};

/// IEEE binary16 storage. Converts explicitly from and to arithmetic types.
struct float16_t {
  std::uint16_t bits = 0;

  float16_t() = default;
  template <class T, std::enable_if_t<std::is_arithmetic_v<T>, int> = 0>
  KOKKOS_INLINE_FUNCTION explicit float16_t(T value) : bits(Details::float16_bits(float(value))) {}
  KOKKOS_INLINE_FUNCTION explicit operator float() const { return Details::float16_value(bits); }
  KOKKOS_INLINE_FUNCTION explicit operator double() const { return double(float(*this)); }
  KOKKOS_INLINE_FUNCTION static float16_t from_bits(std::uint16_t b) {
    float16_t x;
    x.bits = b;
    return x;
  }
};

static_assert(sizeof(bfloat16_t) == 2 && sizeof(float16_t) == 2, "16-bit storage types");
static_assert(std::is_trivially_copyable_v<bfloat16_t> && std::is_trivially_copyable_v<float16_t>,
              "storage types travel as bytes");

/// True for the 16-bit storage types.
template <class Scalar>
inline constexpr bool is_16bit_storage_v =
    std::is_same_v<Scalar, bfloat16_t> || std::is_same_v<Scalar, float16_t>;

} // namespace ringattn

#endif
