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

// Non-finite scores, the same in float and double and on every kernel path
// (docs/reliability.md): a kept score that is NaN or +inf makes its row's O
// and LSE NaN ("NaN in, NaN out"); -inf is a key of weight 0, like a masked
// one. For the running maximum such a score counts as +inf (every other
// weight of the row becomes 0, and +inf survives any Max join, where a NaN
// could be dropped), and its weight is NaN, which the denominator, the
// output and every later merge carry on. Branch-free, so loops vectorize.

/// The score as the running maximum sees it: NaN and +inf become +inf.
template <class T>
KOKKOS_INLINE_FUNCTION T score_for_max(T s) {
  return s < compat::infinity<T>() ? s : compat::infinity<T>();
}

/// The weight e^(s - m) of a score s under the running maximum m: NaN for a
/// NaN or +inf score (exp_nonpositive would map NaN to 0 in float).
template <class T>
KOKKOS_INLINE_FUNCTION T score_weight(T s, T m) {
  return s < compat::infinity<T>() ? exp_nonpositive(s - m) : static_cast<T>(NAN);
}

} // namespace ringattn::Details

#endif
