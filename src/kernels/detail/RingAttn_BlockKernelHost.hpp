#ifndef RINGATTN_BLOCKKERNELHOST_HPP
#define RINGATTN_BLOCKKERNELHOST_HPP

// Host fast path of the block kernel (docs/DESIGN.md layer 2): the same work items
// and the same streaming softmax as the portable kernel, with the two tile
// products S = scale Q K^T and O += P V done by CBLAS sgemm (MKL or
// OpenBLAS) on one core each, and the softmax in base 2. Queries of a dilated task are rows q_row0
// + c * r, which is just a leading dimension of r * H * D for the GEMM; keys and values of a run
// are contiguous in the K/V block. Float storage on host spaces only; everything else takes the
// portable kernel, which is tested beside it.

#include <RingAttn_Config.hpp>
#include <core/RingAttn_Half.hpp>
#include <kernels/detail/RingAttn_BlockKernelAmx.hpp>
#include <kernels/detail/RingAttn_BlockKernelAvx512.hpp>

#include <type_traits>

namespace ringattn::Details {
/// Storage types the host fast path takes: float, and the 16-bit types,
/// whose tiles it widens to float in scratch before the GEMMs.
template <class Scalar>
inline constexpr bool host_tile_type_v =
    std::is_same_v<Scalar, float> || is_16bit_storage_v<Scalar>;
/// Whether the host path can multiply 16-bit tiles natively: MKL has
/// gemm_bf16bf16f32 and gemm_f16f16f32; Debian's OpenBLAS 0.3.21 exports no
/// cblas_sbgemm, so there 16-bit tiles are always widened.
#if defined(RINGATTN_ENABLE_BLAS) && defined(RINGATTN_HAVE_MKL)
inline constexpr bool host_native_16bit_gemm = true;
#else
inline constexpr bool host_native_16bit_gemm = false;
#endif

/// Whether this CPU multiplies bfloat16 pairs in AVX-512 (AVX512-BF16),
/// where MKL's gemm_bf16bf16f32 beats widening (README, storage table:
/// 0.52 to 0.60 of the float32 time on such a CPU; 1.01 to 2.38 on one
/// without). Checked at run time: the build machine may differ.
inline bool cpu_has_avx512_bf16() {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
  return __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}
} // namespace ringattn::Details

#ifdef RINGATTN_ENABLE_BLAS

#include <core/RingAttn_Types.hpp>
#include <core/detail/RingAttn_KokkosCompat.hpp>
#include <kernels/detail/RingAttn_BlockTask.hpp>
#include <kernels/detail/RingAttn_FastExp.hpp>
#include <kernels/detail/RingAttn_HostSoftmax.hpp>
#include <kernels/detail/RingAttn_KernelArgs.hpp>
#include <kernels/detail/RingAttn_Merge.hpp>

#include <kernels/detail/RingAttn_Cblas.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#ifdef __F16C__
#include <immintrin.h>
#endif

namespace ringattn::Details {

template <class To, class From>
inline To host_bit_cast(const From &from) {
#if defined(__has_builtin)
#if __has_builtin(__builtin_bit_cast)
#define RINGATTN_HOST_HAS_BIT_CAST
#endif
#endif
#ifdef RINGATTN_HOST_HAS_BIT_CAST
  return __builtin_bit_cast(To, from);
#else
  To to;
  std::memcpy(&to, &from, sizeof(To));
  return to;
#endif
}

/// 2^x for x <= 0, the host path's softmax weight. The host kernel keeps
/// its scores in base 2 (the GEMM's alpha is scale * log2 e; docs/DESIGN.md,
/// "host kernel"), so the weight needs no ln 2 range reduction: n = round(x),
/// y = x - n exactly (|y| <= 1/2), 2^y by a degree-5 polynomial fitted for
/// relative error on [-1/2, 1/2] (at most 1.9e-7 after float rounding,
/// checked against std::exp2 in tstAttention.cpp), 2^n from exponent bits.
/// The clamps are done on the float's bits: GCC keeps IEEE traps by default
/// (-ftrapping-math) and then will not vectorize a float compare-and-select
/// on AVX2; this form vectorizes. x at or below -127, -inf and NaN give
/// exactly 0 (a positive x is taken as -x; the kernel never passes one).
inline float exp2_nonpositive_host(float x) {
  // With the sign bit set, a float's bits as uint32 grow with its magnitude,
  // so clamping x at -127 is an unsigned min (no select for GCC to branch on).
  constexpr std::uint32_t lo = 0xC2FE0000u; // -127.0f
  std::uint32_t u = host_bit_cast<std::uint32_t>(x) | 0x80000000u;
  u = u < lo ? u : lo;
  const float xc = host_bit_cast<float>(u);
  // n = round(x) from the low mantissa bits of x + 1.5 * 2^23 (no
  // float-to-int conversion, which GCC will not vectorize under traps).
  constexpr float shifter = 12582912.0f;
  const float shifted = xc + shifter;
  const float fn = shifted - shifter;
  const std::int32_t n = host_bit_cast<std::int32_t>(shifted) - 0x4B400000;
  const float y = xc - fn;
  // 2^y = 1 + y q(y), q of degree 4: exactly 1 at y = 0, so a weight or a
  // rescale factor of an unchanged maximum is exactly 1.
  float p = 1.326472731e-3f;
  p = p * y + 9.671512991e-3f;
  p = p * y + 5.550733581e-2f;
  p = p * y + 2.402224243e-1f;
  p = p * y + 6.931470037e-1f;
  p = p * y + 1.0f;
  // 2^n from its exponent bits, n in [-127, 0]: n = -127 (x clamped, or
  // within 1/2 of it) gives the bits of 0, so the result is exactly 0.
  return p * host_bit_cast<float>((n + 127) << 23);
}

/// log2 e and ln 2: the host kernel's base-2 scores and their LSE.
inline constexpr double host_log2e = 1.4426950408889634;
inline constexpr float host_ln2 = 0.6931471805599453f;

#ifdef RINGATTN_HAVE_MKL
/// MKL's GEMMs of 16-bit inputs with float results (C = alpha A B^T-or-B +
/// beta C), row-major: the host path's "native" 16-bit tile products.
inline void gemm_16bit(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha,
                       const bfloat16_t *a, int lda, const bfloat16_t *b, int ldb, float beta,
                       float *c, int ldc) {
  cblas_gemm_bf16bf16f32(CblasRowMajor, ta, tb, m, n, k, alpha,
                         reinterpret_cast<const MKL_BF16 *>(a), lda,
                         reinterpret_cast<const MKL_BF16 *>(b), ldb, beta, c, ldc);
}
inline void gemm_16bit(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha,
                       const float16_t *a, int lda, const float16_t *b, int ldb, float beta,
                       float *c, int ldc) {
  cblas_gemm_f16f16f32(CblasRowMajor, ta, tb, m, n, k, alpha, reinterpret_cast<const MKL_F16 *>(a),
                       lda, reinterpret_cast<const MKL_F16 *>(b), ldb, beta, c, ldc);
}
#endif

/// dst[e] = float(src[e]), e < n, for the host path's widened tiles: plain
/// loops the compiler vectorizes (bfloat16: a 16-bit shift; float16: the
/// F16C conversion where the target has it, else the exact bit arithmetic
/// of RingAttn_Half.hpp).
inline void widen_16bit(const bfloat16_t *src, float *dst, std::size_t n) {
  for (std::size_t e = 0; e < n; ++e)
    dst[e] = host_bit_cast<float>(std::uint32_t(src[e].bits) << 16);
}
inline void widen_16bit(const float16_t *src, float *dst, std::size_t n) {
  std::size_t e = 0;
#ifdef __F16C__
  for (; e + 8 <= n; e += 8)
    _mm256_storeu_ps(dst + e,
                     _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(src + e))));
#endif
  for (; e < n; ++e) dst[e] = float(src[e]);
}

/// dst[j][d] = float(src[j * ld + d]), j < rows, d < D: a tile of rows `ld`
/// elements apart widened into [rows][D] (one conversion where they are
/// contiguous).
template <class Scalar>
void widen_16bit_rows(const Scalar *src, std::size_t ld, int rows, int D, float *dst) {
  if (ld == std::size_t(D)) {
    widen_16bit(src, dst, std::size_t(rows) * D);
    return;
  }
  for (int j = 0; j < rows; ++j)
    widen_16bit(src + std::size_t(j) * ld, dst + std::size_t(j) * D, std::size_t(D));
}

template <class ExecSpace, class Scalar = float>
struct HostBlockAttentionFunctor {
  using memory_space = typename ExecSpace::memory_space;
  using member_type = typename Kokkos::TeamPolicy<ExecSpace>::member_type;
  using ScratchView = Kokkos::View<float *, typename ExecSpace::scratch_memory_space,
                                   Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
  static_assert(host_tile_type_v<Scalar>, "the host path takes float and 16-bit storage");
  /// 16-bit storage: the Q tile and each K/V tile widened to float in scratch.
  static constexpr bool widen = !std::is_same_v<Scalar, float>;

  BlockKernelArgs<memory_space, Scalar> args;
  /// 16-bit storage: the tile products by the BLAS's 16-bit GEMM (the
  /// probabilities rounded to the storage type for P V) instead of widened
  /// tiles and sgemm (Tiling::native_16bit_gemm; MKL only).
  bool native = false;
  /// bfloat16 storage: the tile products on Intel AMX (amx_takes, set by
  /// the launch; RingAttn_BlockKernelAmx.hpp).
  bool amx = false;
  /// Both tile products in AVX-512 without the BLAS, fused with the softmax
  /// (avx512_takes, set by the launch; RingAttn_BlockKernelAvx512.hpp).
  bool avx512 = false;

  static std::size_t scratch_elements(int QT, int KT, int D) {
    // widened Q, K, V tiles, or (native) the probabilities in 16 bits
    const std::size_t widened = widen ? std::max(std::size_t(QT) * D + 2 * std::size_t(KT) * D,
                                                 (std::size_t(QT) * KT + 1) / 2)
                                      : 0;
    const std::size_t tiles =
        std::size_t(QT) * KT + std::size_t(QT) * D + 2 * std::size_t(QT) + widened;
    const std::size_t fused = avx512_scratch_floats(QT, KT, D, widen);
    if constexpr (std::is_same_v<Scalar, bfloat16_t>)
      return std::max({tiles, fused, amx_scratch_floats(QT, KT, D)});
    return std::max(tiles, fused);
  }

  void operator()(const member_type &team) const {
    const int QT = args.q_tile, KT = args.k_tile;
    const QueryTile query =
        QueryTile::of_team(team.league_rank(), args.num_items, args.items, args.tasks);
    ScratchView scratch(team.team_scratch(1), scratch_elements(QT, KT, int(args.q.extent(3))));
#ifdef RINGATTN_HAVE_HOST_AMX
    if constexpr (std::is_same_v<Scalar, bfloat16_t>) {
      if (amx) {
        amx_attention_query_tile(args, query, scratch.data());
        return;
      }
    }
#endif
#ifdef RINGATTN_HAVE_HOST_AVX512
    if (avx512) {
      avx512_attention_query_tile(args, query, scratch.data());
      return;
    }
#endif
    constexpr float ninf = -compat::infinity<float>();
    const int H = int(args.q.extent(2)), D = int(args.q.extent(3));
    const std::int64_t b = query.b, stride = query.stride;
    const int h = query.h, nq = query.nq;
    // Queries of a dilated task are rows qrow_first + i * stride: a leading
    // dimension of stride * H * D for the GEMM.
    const Scalar *const q_rows = &args.q(b, query.qrow_first, h, 0);
    const int ldq_rows = int(stride * std::int64_t(args.q.stride_1()));
    // Keys likewise: rows row_step apart, each G * D values long (a packed
    // block: consecutive rows of D; in place: rows stride * Hkv * D apart).
    const int g = args.kv.kv_head(h, H);
    const std::int64_t row_step = args.kv.row_step(stride);
    const int ldk_rows = int(row_step * std::int64_t(args.kv.k.stride_1()));
    // V's rows at their own pitch (K and V may be views of different tensors)
    const int ldv_rows = int(row_step * std::int64_t(args.kv.v.stride_1()));
    const bool native_gemm = widen && host_native_16bit_gemm && native;
    // Scores in base 2: S = (scale log2 e) Q K^T, so a weight is 2^(s - m)
    // and the block's LSE is m ln 2 + ln l (exp2_nonpositive_host).
    const float scale2 = float(double(args.scale) * host_log2e);

    float *const s = scratch.data();               // [QT][KT] scores, then probabilities
    float *const acc = s + std::size_t(QT) * KT;   // [QT][D] unnormalized output
    float *const mrow = acc + std::size_t(QT) * D; // running max
    float *const lrow = mrow + QT;                 // running denominator
    float *const qwide = lrow + QT;                // 16-bit, widened: [QT][D], [KT][D], [KT][D]
    float *const kwide = qwide + std::size_t(QT) * D;
    float *const vwide = kwide + std::size_t(KT) * D;
    [[maybe_unused]] Scalar *const p_narrow =
        reinterpret_cast<Scalar *>(qwide); // 16-bit, native: [QT][KT]

    if constexpr (widen) {
      if (!native_gemm) widen_16bit_rows(q_rows, std::size_t(ldq_rows), nq, D, qwide);
    }
    for (int i = 0; i < nq; ++i) {
      mrow[i] = ninf;
      lrow[i] = 0;
    }
    for (std::size_t e = 0; e < std::size_t(nq) * D; ++e) acc[e] = 0;

    for (int r = 0; r < query.task.num_key_runs; ++r) {
      const KeyRun run = query.task.key_runs[r];
      for (std::int64_t k0 = 0; k0 < run.count; k0 += KT) {
        KeyTile key = KeyTile::of_run(run, k0, stride, KT, row_step);
        // a diagonal tile is then at most QT wide
        if (args.causal && !key.trim_to_causal(query.qpos_last)) break;
        const CausalBounds bounds = CausalBounds::of(args.causal, query, key);
        const int nk = key.nk;
        const Scalar *const k_rows = &args.kv.k(b, key.krow_first, g, 0);
        const Scalar *const v_rows = &args.kv.v(b, key.krow_first, g, 0);

        // S = scale Q K^T
        if constexpr (!widen) {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, D, scale2, q_rows, ldq_rows,
                      k_rows, ldk_rows, 0.0f, s, KT);
        } else if (native_gemm) {
#ifdef RINGATTN_HAVE_MKL
          gemm_16bit(CblasNoTrans, CblasTrans, nq, nk, D, scale2, q_rows, ldq_rows, k_rows,
                     ldk_rows, 0.0f, s, KT);
#endif
        } else {
          widen_16bit_rows(k_rows, std::size_t(ldk_rows), nk, D, kwide);
          widen_16bit_rows(v_rows, std::size_t(ldv_rows), nk, D, vwide);
        }
        if (widen && !native_gemm)
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, D, scale2, qwide, D, kwide,
                      D, 0.0f, s, KT);
        for (int i = 0; i < nq; ++i) {
          float *const srow = s + std::size_t(i) * KT;
          // keys kept: j < nk, and kpos <= qpos when masked (positions share the stride)
          const int keep = bounds.kept(query, key, i);
#ifdef RINGATTN_HAVE_HOST_AVX512
          const float mx = avx512_row_max(srow, keep, 1.0f); // RingAttn_HostSoftmax.hpp
#else
          float mx = ninf;
#pragma omp simd reduction(max : mx)
          for (int j = 0; j < keep; ++j) {
            const float sm = score_for_max(srow[j]); // NaN, +inf: +inf (FastExp.hpp)
            mx = sm > mx ? sm : mx;
          }
#endif
          const float mold = mrow[i];
          const float mnew = mx > mold ? mx : mold;
          if (mnew == ninf) {
            for (int j = 0; j < nk; ++j) srow[j] = 0;
            continue;
          }
#ifdef RINGATTN_HAVE_HOST_AVX512
          float sum = avx512_row_weights_in_place(srow, keep, nk, 1.0f, mnew);
#else
          float sum = 0;
#pragma omp simd reduction(+ : sum)
          for (int j = 0; j < keep; ++j) {
            const float p = exp2_nonpositive_host(srow[j] - mnew);
            srow[j] = p;
            sum += p;
          }
          for (int j = keep; j < nk; ++j) srow[j] = 0;
#endif
          // A NaN or +inf score made the maximum +inf (score_for_max): the
          // row becomes NaN (docs/reliability.md), which the vector exp,
          // mapping NaN to 0, would hide.
          if (!(mnew < compat::infinity<float>())) sum = NAN;
          const float alpha = exp2_nonpositive_host(mold - mnew);
          if (alpha != 1.0f) {
            float *const arow = acc + std::size_t(i) * D;
            for (int d = 0; d < D; ++d) arow[d] *= alpha;
          }
          lrow[i] = lrow[i] * alpha + sum;
          mrow[i] = mnew;
        }
        // O += P V
        if constexpr (!widen) {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, D, nk, 1.0f, s, KT, v_rows,
                      ldv_rows, 1.0f, acc, D);
        } else if (native_gemm) {
#ifdef RINGATTN_HAVE_MKL
          // P in the storage type, as FlashAttention does in 16 bits; the
          // denominator l keeps the float sum.
          for (int i = 0; i < nq; ++i)
            for (int j = 0; j < nk; ++j)
              p_narrow[std::size_t(i) * KT + j] = Scalar(s[std::size_t(i) * KT + j]);
          gemm_16bit(CblasNoTrans, CblasNoTrans, nq, D, nk, 1.0f, p_narrow, KT, v_rows, ldv_rows,
                     1.0f, acc, D);
#endif
        } else {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, D, nk, 1.0f, s, KT, vwide, D,
                      1.0f, acc, D);
        }
      }
    }

    merge_host_query_tile(args, query, mrow, lrow,
                          [acc, D](int i, int d) { return acc[std::size_t(i) * D + d]; });
  }
};

} // namespace ringattn::Details

#endif // RINGATTN_ENABLE_BLAS
#endif
