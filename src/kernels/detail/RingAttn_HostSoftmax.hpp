#ifndef RINGATTN_HOSTSOFTMAX_HPP
#define RINGATTN_HOSTSOFTMAX_HPP

// The host paths' softmax rows in AVX-512 intrinsics, where the target has
// AVX-512 (F and BW): GCC vectorizes the portable loops at 256 bits on
// these CPUs and leaves the NaN-aware row maximum scalar, which made the
// softmax a fifth of the float32 host forward. Scores are in base 2 (the
// host kernels' S = scale log2 e Q K^T); the weights are 2^(s - m) by the
// polynomial of exp2_nonpositive_host (RingAttn_BlockKernelHost.hpp), with
// weights under 2^-125 of their row's largest flushed to 0 (so no lane
// computes a subnormal).

#if defined(__AVX512F__) && defined(__AVX512BW__) && !defined(__CUDACC__)
#define RINGATTN_HAVE_HOST_AVX512
#include <immintrin.h>
#if defined(__AVX512BF16__)
#define RINGATTN_HAVE_HOST_AVX512_BF16
#endif
#endif

namespace ringattn::Details {

#ifdef RINGATTN_HAVE_HOST_AVX512

// GCC 12's AVX-512 intrinsics initialise their pass-through operand from
// itself (_mm512_undefined_*), which -Wmaybe-uninitialized reports once
// inlined here; the operand is never read.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

/// 2^y for |y| <= 1/2 on 16 lanes: exp2_nonpositive_host's degree-5
/// polynomial, 1 + y q(y).
inline __m512 avx512_exp2_fraction(__m512 y) {
  __m512 p = _mm512_set1_ps(1.326472731e-3f);
  p = _mm512_fmadd_ps(p, y, _mm512_set1_ps(9.671512991e-3f));
  p = _mm512_fmadd_ps(p, y, _mm512_set1_ps(5.550733581e-2f));
  p = _mm512_fmadd_ps(p, y, _mm512_set1_ps(2.402224243e-1f));
  p = _mm512_fmadd_ps(p, y, _mm512_set1_ps(6.931470037e-1f));
  return _mm512_fmadd_ps(p, y, _mm512_set1_ps(1.0f));
}

/// 2^x for x <= 0 on 16 lanes: exp2_nonpositive_host's polynomial and
/// clamp (a NaN lane gives 0: max_ps returns its second operand then).
inline __m512 avx512_exp2_nonpositive(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-127.0f));
  const __m512 fn = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 y = _mm512_sub_ps(x, fn);
  const __m512 p = avx512_exp2_fraction(y);
  const __m512i n = _mm512_add_epi32(_mm512_cvtps_epi32(fn), _mm512_set1_epi32(127));
  return _mm512_mul_ps(p, _mm512_castsi512_ps(_mm512_slli_epi32(n, 23)));
}

/// 2^x for x <= 0 on 16 lanes, for the probabilities only: as
/// avx512_exp2_nonpositive, with 2^n by VSCALEFPS and x below -125 (-inf and
/// NaN too) giving exactly 0, by a mask, so no lane computes a subnormal
/// (which may cost a microcode assist): the weights under 2^-125 of the
/// row's largest are flushed.
inline __m512 avx512_exp2_weights(__m512 x, __mmask16 lanes) {
  lanes = _mm512_mask_cmp_ps_mask(lanes, x, _mm512_set1_ps(-125.0f), _CMP_GE_OQ);
  x = _mm512_max_ps(x, _mm512_set1_ps(-125.0f));
  const __m512 fn = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 y = _mm512_sub_ps(x, fn);
  const __m512 p = avx512_exp2_fraction(y);
  return _mm512_maskz_scalef_ps(lanes, p, fn);
}

/// Lanes [0, n) of 16, n clamped to [0, 16].
inline __mmask16 avx512_lanes(int n) {
  return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1u);
}

/// The row's largest score scale2 * s[j], j < keep: +inf when a score is
/// NaN or +inf (score_for_max), -inf when keep is 0. For scale2 > 0 the
/// maximum of the raw scores is scaled once (one load, max and NaN test per
/// 16 scores).
inline float avx512_row_max(const float *s, int keep, float scale2) {
  constexpr float inf = __builtin_inff();
  if (scale2 > 0.0f) {
    __m512 mx = _mm512_set1_ps(-inf);
    __mmask16 nan = 0;
    int j = 0;
    for (; j + 16 <= keep; j += 16) {
      const __m512 x = _mm512_loadu_ps(s + j);
      mx = _mm512_max_ps(mx, x);
      nan = _kor_mask16(nan, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q));
    }
    if (j < keep) {
      const __mmask16 lanes = avx512_lanes(keep - j);
      const __m512 x = _mm512_maskz_loadu_ps(lanes, s + j);
      mx = _mm512_mask_max_ps(mx, lanes, mx, x);
      nan = _kor_mask16(nan, _mm512_mask_cmp_ps_mask(lanes, x, x, _CMP_UNORD_Q));
    }
    if (nan != 0) return inf;
    const float m = _mm512_reduce_max_ps(mx) * scale2;
    return m < inf ? m : inf;
  }
  const __m512 c = _mm512_set1_ps(scale2);
  __m512 mx = _mm512_set1_ps(-inf);
  for (int j = 0; j < keep; j += 16) {
    const __mmask16 lanes = avx512_lanes(keep - j);
    __m512 x = _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes, s + j), c);
    x = _mm512_mask_mov_ps(x, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), _mm512_set1_ps(inf));
    mx = _mm512_mask_max_ps(mx, lanes, mx, x);
  }
  return _mm512_reduce_max_ps(mx);
}

/// The weights w[j] = 2^(scale2 s[j] - m) of a row, j < keep, and 0 for
/// keep <= j < n, 16 at a time: store(j, w, lanes) writes lanes j .. j + 15
/// (`lanes`: those below n); returns the float sum of the weights.
template <class Store>
float avx512_row_weights(const float *s, int keep, int n, float scale2, float m,
                         const Store &store) {
  const __m512 c = _mm512_set1_ps(scale2), vm = _mm512_set1_ps(m);
  __m512 sum = _mm512_setzero_ps();
  int j = 0;
  for (; j + 16 <= keep; j += 16) {
    const __m512 w =
        avx512_exp2_weights(_mm512_fmsub_ps(_mm512_loadu_ps(s + j), c, vm), __mmask16(0xFFFF));
    sum = _mm512_add_ps(sum, w);
    store(j, w, __mmask16(0xFFFF));
  }
  for (; j < n; j += 16) {
    const __mmask16 lanes = avx512_lanes(keep - j);
    const __m512 x = _mm512_fmsub_ps(_mm512_maskz_loadu_ps(lanes, s + j), c, vm);
    const __m512 w = avx512_exp2_weights(x, lanes);
    sum = _mm512_add_ps(sum, w);
    store(j, w, avx512_lanes(n - j));
  }
  return _mm512_reduce_add_ps(sum);
}

/// In place: s[j] = 2^(scale2 s[j] - m) for j < keep, 0 for keep <= j < n;
/// returns the sum of the weights (float P for the float host path).
inline float avx512_row_weights_in_place(float *s, int keep, int n, float scale2, float m) {
  return avx512_row_weights(s, keep, n, scale2, m, [s](int j, __m512 w, __mmask16 lanes) {
    _mm512_mask_storeu_ps(s + j, lanes, w);
  });
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif // RINGATTN_HAVE_HOST_AVX512

} // namespace ringattn::Details

#endif
