#ifndef RINGATTN_FASTEXP_HPP
#define RINGATTN_FASTEXP_HPP

// exp(x) for x <= 0, the only range the online softmax needs (scores minus
// the running maximum). A libm call does not vectorize without -ffast-math,
// and -ffast-math breaks the -inf that masked keys and empty rows rely on, so
// the float version is written out: exp(x) = 2^n e^y with n = round(x log2 e)
// and y = x - n ln 2 (|y| <= 0.35), e^y by a degree-7 Taylor polynomial
// (truncation error < 1e-8, below float rounding). Results below ~e^-87 flush
// to 0, a weight no softmax row can notice. Branch-free, so compilers
// vectorize it; portable to every Kokkos backend.

#include <core/detail/RingAttn_KokkosCompat.hpp>

#include <cstdint>
#include <cstring>

namespace ringattn::Details {

KOKKOS_INLINE_FUNCTION float exp_nonpositive(float x) {
  const float xc = x > -87.0f ? x : -87.0f; // -inf and NaN clamp too
  // n = round(x log2 e) by adding 1.5 * 2^23: the sum's low mantissa bits are
  // n. No float-to-int conversion, which compilers will not vectorize while
  // FP traps are honoured.
  constexpr float shifter = 12582912.0f;
  const float shifted = xc * 1.4426950408889634f + shifter;
  const float fn = shifted - shifter;
  std::int32_t n;
  std::memcpy(&n, &shifted, sizeof(float));
  n -= 0x4B400000; // bits of 1.5 * 2^23
  // y = x - n ln 2 in two steps (Cody-Waite): ln2_hi has few bits, so n * ln2_hi is exact
  const float y = (xc - fn * 0.693359375f) - fn * -2.12194440e-4f;
  float p = 1.0f / 5040.0f;
  p = p * y + 1.0f / 720.0f;
  p = p * y + 1.0f / 120.0f;
  p = p * y + 1.0f / 24.0f;
  p = p * y + 1.0f / 6.0f;
  p = p * y + 0.5f;
  p = p * y + 1.0f;
  p = p * y + 1.0f;
  const std::int32_t bits = (n + 127) << 23; // 2^n as float bits, n in [-126, 0]
  float scale;
  std::memcpy(&scale, &bits, sizeof(float));
  const float r = p * scale;
  return x > -87.0f ? r : 0.0f;
}

KOKKOS_INLINE_FUNCTION double exp_nonpositive(double x) { return compat::exp(x); }

} // namespace ringattn::Details

#endif
