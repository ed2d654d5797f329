#ifndef RINGATTN_BLOCKKERNELAVX512_HPP
#define RINGATTN_BLOCKKERNELAVX512_HPP

// One query tile of the host fast path with both tile products in AVX-512
// float arithmetic, fused with the softmax and no BLAS call (docs/DESIGN.md,
// "host kernel"): the same work item, key sweep, causal bounds and
// streaming softmax (base 2) as HostBlockAttentionFunctor.
//
// Everything runs transposed, 16 queries to a vector. The query tile is
// packed once as Q^T (D x queries, scaled by scale log2 e), so that
//   S^T[j][i] = sum_d K[j][d] Q^T[d][i]   (a key's values broadcast),
//   O^T[d][i] += sum_j V[j][d] P^T[j][i]  (a value broadcast),
// and K and V are read where they lie, row by row; nothing is packed per
// key tile (float storage; 16-bit tiles are widened first). Where the
// build targets AVX512-BF16, bfloat16 runs both products by VDPBF16PS
// instead (bf16_dot): scores from Q packed in pairs of head dims and K read
// in place, and O^T += V^T P^T with P rounded to bfloat16 (as the AMX tile
// does) and V interleaved in pairs of keys per key tile. The softmax
// of a query is then down a column of S^T: its row maximum and sum are
// lane-wise maxima and sums over rows, with no horizontal reduction, and a
// causal edge is a lane mask per key (query i keeps its first kept(i) keys).
// Columns of 48 queries (3 vectors) go through a key tile at a time: S^T
// of 48 x keys stays in L1, then O^T += V^T P^T for those columns.

#include <core/RingAttn_Half.hpp>
#include <kernels/detail/RingAttn_BlockTask.hpp>
#include <kernels/detail/RingAttn_HostSoftmax.hpp>
#include <kernels/detail/RingAttn_KernelArgs.hpp>
#include <kernels/detail/RingAttn_Merge.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace ringattn::Details {

/// Queries per column block of the AVX-512 path (three vectors of 16), and
/// the keys and head dims of its micro-tiles (8 x 3 vectors: 24 of the 32
/// vector registers accumulate).
inline constexpr int avx512_query_block = 48;
inline constexpr int avx512_micro_rows = 8;

/// Whether this build has the AVX-512 path (the target has AVX-512 F and BW).
inline constexpr bool host_avx512_available() {
#ifdef RINGATTN_HAVE_HOST_AVX512
  return true;
#else
  return false;
#endif
}

/// Whether bfloat16 scores take AVX512-BF16 dot products (VDPBF16PS) in
/// this build: K is then read in place and Q packed in pairs, not widened.
inline constexpr bool host_avx512_bf16_dot() {
#ifdef RINGATTN_HAVE_HOST_AVX512_BF16
  return true;
#else
  return false;
#endif
}

/// Head dims the AVX-512 path takes: whole micro-tiles of 8 dims.
inline bool avx512_takes_head_dim(int D) { return D > 0 && D % avx512_micro_rows == 0; }

inline constexpr int avx512_round_queries(int n) {
  return (n + avx512_query_block - 1) / avx512_query_block * avx512_query_block;
}

/// Floats of scratch one query tile of the AVX-512 path needs, aligned parts
/// included: Q^T and O^T (D x QT rounded up to 48), S^T of one column block
/// (KT x 48), the running max and sum, and (16-bit storage) the key tile's
/// K and V widened to float.
inline std::size_t avx512_scratch_floats(int QT, int KT, int D, bool widen) {
  const std::size_t qt = std::size_t(avx512_round_queries(QT));
  const std::size_t parts = 2 * std::size_t(D) * qt + std::size_t(KT) * avx512_query_block +
                            2 * qt + (widen ? 2 * std::size_t(KT) * D : 0);
  return parts + 6 * 16; // alignment of six parts
}

/// Merges a host query tile's result into (o, lse) (docs/SPEC.md section 3,
/// the log-sum-exp merge): row i of the tile has base-2 running max mrow[i],
/// sum lrow[i] and unnormalized output acc(i, d). Rows that saw no key (l
/// is 0; NaN after a NaN score, which then propagates) are left as they are.
template <class MemorySpace, class Scalar, class Acc>
void merge_host_query_tile(const BlockKernelArgs<MemorySpace, Scalar> &args, const QueryTile &query,
                           const float *mrow, const float *lrow, const Acc &acc) {
  const int D = int(args.q.extent(3));
  for (int i = 0; i < query.nq; ++i) {
    const float l = lrow[i];
    if (l == 0.0f) continue;
    const std::int64_t row = query.qrow(i);
    const MergeWeights<float> w = lse_merge<float>(args.lse(query.b, query.h, row),
                                                   mrow[i] * 0.6931471805599453f + std::log(l));
    const float wb = w.wb / l;
    float *const orow = &args.o(query.b, row - args.o_row0, query.h, 0);
    for (int d = 0; d < D; ++d) orow[d] = w.wa * orow[d] + wb * acc(i, d);
    args.lse(query.b, query.h, row) = w.lse;
  }
}

#ifdef RINGATTN_HAVE_HOST_AVX512

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

// The micro-tiles are kept out of line: inlined into the query tile's loop,
// GCC 12 no longer keeps their 24 accumulators in registers (it spilled them
// to the stack inside the innermost loop, at half the speed).
#if defined(__GNUC__)
#define RINGATTN_AVX512_MICRO_KERNEL [[gnu::noinline]] inline
#else
#define RINGATTN_AVX512_MICRO_KERNEL inline
#endif

/// S^T[j][0 .. 48) = sum_d K[j][d] Q^T[d][0 .. 48) for keys j < nk; K rows
/// ldk floats apart, Q^T rows ldq apart, S^T rows 48 apart.
RINGATTN_AVX512_MICRO_KERNEL void avx512_scores(const float *qt, std::int64_t ldq, const float *k,
                                                std::int64_t ldk, int nk, int D, float *st) {
  constexpr int R = avx512_micro_rows;
  for (int j0 = 0; j0 < nk; j0 += R) {
    const float *krow[R];
    for (int m = 0; m < R; ++m) // past the last key: repeat it, not stored
      krow[m] = k + std::int64_t(j0 + m < nk ? j0 + m : nk - 1) * ldk;
    __m512 c[R][3];
    for (int m = 0; m < R; ++m)
      for (int v = 0; v < 3; ++v) c[m][v] = _mm512_setzero_ps();
    for (int d = 0; d < D; ++d) {
      const float *const qd = qt + std::int64_t(d) * ldq;
      const __m512 q0 = _mm512_loadu_ps(qd), q1 = _mm512_loadu_ps(qd + 16),
                   q2 = _mm512_loadu_ps(qd + 32);
      for (int m = 0; m < R; ++m) {
        const __m512 kb = _mm512_set1_ps(krow[m][d]);
        c[m][0] = _mm512_fmadd_ps(kb, q0, c[m][0]);
        c[m][1] = _mm512_fmadd_ps(kb, q1, c[m][1]);
        c[m][2] = _mm512_fmadd_ps(kb, q2, c[m][2]);
      }
    }
    const int rows = nk - j0 < R ? nk - j0 : R;
    for (int m = 0; m < rows; ++m)
      for (int v = 0; v < 3; ++v)
        _mm512_storeu_ps(st + std::size_t(j0 + m) * avx512_query_block + 16 * v, c[m][v]);
  }
}

/// O^T[d][0 .. 48) += sum_{j < nk} V[j][d] P^T[j][0 .. 48) for d < D; V rows
/// ldv floats apart, O^T rows ldo apart, P^T rows 48 apart.
RINGATTN_AVX512_MICRO_KERNEL void avx512_accumulate(const float *pt, int nk, const float *v,
                                                    std::int64_t ldv, int D, float *ot,
                                                    std::int64_t ldo) {
  constexpr int R = avx512_micro_rows;
  for (int d0 = 0; d0 < D; d0 += R) {
    __m512 c[R][3];
    for (int m = 0; m < R; ++m)
      for (int u = 0; u < 3; ++u) c[m][u] = _mm512_loadu_ps(ot + (d0 + m) * ldo + 16 * u);
    const float *vj = v + d0;
    const float *pj = pt;
    for (int j = 0; j < nk; ++j, vj += ldv, pj += avx512_query_block) {
      const __m512 p0 = _mm512_loadu_ps(pj), p1 = _mm512_loadu_ps(pj + 16),
                   p2 = _mm512_loadu_ps(pj + 32);
      for (int m = 0; m < R; ++m) {
        const __m512 vb = _mm512_set1_ps(vj[m]);
        c[m][0] = _mm512_fmadd_ps(vb, p0, c[m][0]);
        c[m][1] = _mm512_fmadd_ps(vb, p1, c[m][1]);
        c[m][2] = _mm512_fmadd_ps(vb, p2, c[m][2]);
      }
    }
    for (int m = 0; m < R; ++m)
      for (int u = 0; u < 3; ++u) _mm512_storeu_ps(ot + (d0 + m) * ldo + 16 * u, c[m][u]);
  }
}

#ifdef RINGATTN_HAVE_HOST_AVX512_BF16
/// S^T[j][0 .. 48) = scale sum_d K[j][d] Q[.][d] for bfloat16 K and Q, keys
/// j < nk, by VDPBF16PS: a lane multiplies the pair (d, d + 1) of its query
/// and of the broadcast key, each product exact in float (8 x 8 significant
/// bits), and adds both to its float32 accumulator; half the instructions of
/// the float micro-tile. qp holds Q in pairs, [D / 2][ldq][2] bfloat16 (D
/// even), K rows ldk elements apart, S^T rows 48 apart.
RINGATTN_AVX512_MICRO_KERNEL void avx512_scores_bf16(const std::uint16_t *qp, std::int64_t ldq,
                                                     const std::uint16_t *k, std::int64_t ldk,
                                                     int nk, int D, float scale, float *st) {
  constexpr int R = avx512_micro_rows;
  const __m512 vscale = _mm512_set1_ps(scale);
  for (int j0 = 0; j0 < nk; j0 += R) {
    const std::uint16_t *krow[R];
    for (int m = 0; m < R; ++m) // past the last key: repeat it, not stored
      krow[m] = k + std::int64_t(j0 + m < nk ? j0 + m : nk - 1) * ldk;
    __m512 c[R][3];
    for (int m = 0; m < R; ++m)
      for (int v = 0; v < 3; ++v) c[m][v] = _mm512_setzero_ps();
    for (int d = 0; d < D; d += 2) {
      const std::uint16_t *const qd = qp + std::int64_t(d) * ldq;
      const __m512bh q0 = (__m512bh)_mm512_loadu_si512(qd),
                     q1 = (__m512bh)_mm512_loadu_si512(qd + 32),
                     q2 = (__m512bh)_mm512_loadu_si512(qd + 64);
      for (int m = 0; m < R; ++m) {
        std::int32_t pair;
        std::memcpy(&pair, krow[m] + d, sizeof pair);
        const __m512bh kb = (__m512bh)_mm512_set1_epi32(pair);
        c[m][0] = _mm512_dpbf16_ps(c[m][0], kb, q0);
        c[m][1] = _mm512_dpbf16_ps(c[m][1], kb, q1);
        c[m][2] = _mm512_dpbf16_ps(c[m][2], kb, q2);
      }
    }
    const int rows = nk - j0 < R ? nk - j0 : R;
    for (int m = 0; m < rows; ++m)
      for (int v = 0; v < 3; ++v)
        _mm512_storeu_ps(st + std::size_t(j0 + m) * avx512_query_block + 16 * v,
                         _mm512_mul_ps(c[m][v], vscale));
  }
}

/// O^T[d][0 .. 48) += sum_{j < nk} V[j][d] P^T[j][0 .. 48) for bfloat16 V
/// and P by VDPBF16PS over pairs of keys (j, j + 1), d < D: pp holds P^T
/// in pairs, [nk / 2 rounded up][48][2] (avx512_pair_weights), vp holds V
/// in pairs, [nk / 2 rounded up][D][2] (avx512_pair_rows). Where nk is odd
/// the last pair's second key is left out: its V is masked to 0, so a
/// value there (a key past the column block's last) cannot reach O.
RINGATTN_AVX512_MICRO_KERNEL void avx512_accumulate_bf16(const std::uint16_t *pp, int nk,
                                                         const std::uint16_t *vp, int D, float *ot,
                                                         std::int64_t ldo) {
  constexpr int R = avx512_micro_rows;
  const int pairs = (nk + 1) / 2;
  for (int d0 = 0; d0 < D; d0 += R) {
    __m512 c[R][3];
    for (int m = 0; m < R; ++m)
      for (int u = 0; u < 3; ++u) c[m][u] = _mm512_loadu_ps(ot + (d0 + m) * ldo + 16 * u);
    for (int jp = 0; jp < pairs; ++jp) {
      const std::uint16_t *const pj = pp + std::size_t(jp) * 2 * avx512_query_block;
      const __m512bh p0 = (__m512bh)_mm512_loadu_si512(pj),
                     p1 = (__m512bh)_mm512_loadu_si512(pj + 32),
                     p2 = (__m512bh)_mm512_loadu_si512(pj + 64);
      const std::uint16_t *const vj = vp + (std::size_t(jp) * D + d0) * 2;
      const std::int32_t keep = 2 * jp + 1 < nk ? -1 : 0xFFFF;
      for (int m = 0; m < R; ++m) {
        std::int32_t pair;
        std::memcpy(&pair, vj + 2 * m, sizeof pair);
        const __m512bh vb = (__m512bh)_mm512_set1_epi32(pair & keep);
        c[m][0] = _mm512_dpbf16_ps(c[m][0], vb, p0);
        c[m][1] = _mm512_dpbf16_ps(c[m][1], vb, p1);
        c[m][2] = _mm512_dpbf16_ps(c[m][2], vb, p2);
      }
    }
    for (int m = 0; m < R; ++m)
      for (int u = 0; u < 3; ++u) _mm512_storeu_ps(ot + (d0 + m) * ldo + 16 * u, c[m][u]);
  }
}

/// dst[j / 2][d][j % 2] = src[j * ld + d] for j < n (n rounded up to even,
/// the extra row 0), d < D: bfloat16 rows of a key tile interleaved in pairs
/// for avx512_accumulate_bf16.
inline void avx512_pair_rows(const std::uint16_t *src, std::int64_t ld, int n, int D,
                             std::uint16_t *dst) {
  for (int j = 0; j < n; j += 2) {
    const std::uint16_t *const a = src + std::int64_t(j) * ld;
    const std::uint16_t *const b = j + 1 < n ? a + ld : nullptr;
    std::uint16_t *const out = dst + std::size_t(j) * D;
    int d = 0;
    for (; d + 16 <= D; d += 16) {
      const __m512i lo =
          _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(a + d)));
      const __m512i hi =
          b ? _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(b + d)))
            : _mm512_setzero_si512();
      _mm512_storeu_si512(out + 2 * d, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
    }
    for (; d < D; ++d) {
      out[2 * d] = a[d];
      out[2 * d + 1] = b ? b[d] : std::uint16_t(0);
    }
  }
}

/// Two rows of weights (16 queries each) rounded to bfloat16 (nearest even)
/// and interleaved: lane i holds (w0[i], w1[i]), a key pair of query i.
inline __m512i avx512_pair_weights(__m512 w0, __m512 w1) {
  const __m512i halves = (__m512i)_mm512_cvtne2ps_pbh(w1, w0); // w0 in words 0-15, w1 in 16-31
  const __m512i interleave =
      _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                       21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(interleave, halves);
}
#endif

/// 16 values of 16-bit storage widened to float (exact): bfloat16 is the
/// top half of a float, float16 by VCVTPH2PS.
inline __m512 avx512_widen16(const bfloat16_t *src) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(src));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
inline __m512 avx512_widen16(const float16_t *src) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(src)));
}

/// dst[j][d] = float(src[j * ld + d]), j < n, d < D: a 16-bit key tile
/// widened for the float micro-tiles.
template <class Scalar>
void avx512_widen_rows(const Scalar *src, std::int64_t ld, int n, int D, float *dst) {
  for (int j = 0; j < n; ++j) {
    const Scalar *const row = src + std::int64_t(j) * ld;
    float *const out = dst + std::size_t(j) * D;
    int d = 0;
    for (; d + 16 <= D; d += 16) _mm512_storeu_ps(out + d, avx512_widen16(row + d));
    for (; d < D; ++d) out[d] = float(row[d]);
  }
}

/// Runs query tile `query` of a work item (float or 16-bit storage) against its task's key runs and
/// merges it into (o, lse). `scratch` holds avx512_scratch_floats(q_tile, k_tile, D, widen) floats.
template <class MemorySpace, class Scalar>
void avx512_attention_query_tile(const BlockKernelArgs<MemorySpace, Scalar> &args,
                                 const QueryTile &query, float *scratch) {
  constexpr bool widen = !std::is_same_v<Scalar, float>;
  // bfloat16 where the build has AVX512-BF16: scores from the stored values
  // by dot products of pairs (avx512_scores_bf16), only V widened
  constexpr bool bf16_dot = host_avx512_bf16_dot() && std::is_same_v<Scalar, bfloat16_t>;
  constexpr float ninf = -__builtin_inff(), inf = __builtin_inff();
  constexpr int QB = avx512_query_block;
  const int H = int(args.q.extent(2)), D = int(args.q.extent(3));
  const int KT = args.k_tile;
  const std::int64_t b = query.b, stride = query.stride;
  const int h = query.h, nq = query.nq;
  const int nqp = avx512_round_queries(nq);
  const std::int64_t QTp = avx512_round_queries(args.q_tile);
  const Scalar *const q_rows = &args.q(b, query.qrow_first, h, 0);
  const std::int64_t ldq_rows = stride * std::int64_t(args.q.stride_1());
  const int g = args.kv.kv_head(h, H);
  const std::int64_t row_step = args.kv.row_step(stride);
  const std::int64_t ldk_rows = row_step * std::int64_t(args.kv.k.stride_1());
  // V's rows at their own pitch (K and V may be views of different tensors)
  const std::int64_t ldv_rows = row_step * std::int64_t(args.kv.v.stride_1());
  // scores in base 2, as the other host paths (exp2_nonpositive_host)
  const float scale2 = float(double(args.scale) * 1.4426950408889634);

  const auto carve = [&scratch](std::size_t floats) { return carve_scratch(scratch, floats); };
  float *const qt = carve(std::size_t(D) * QTp); // Q^T, scaled: [D][QTp]; bf16_dot: Q in pairs
  float *const ot = carve(std::size_t(D) * QTp); // O^T, unnormalized: [D][QTp]
  float *const st = carve(std::size_t(KT) * QB); // S^T, then P^T, of a column block
  float *const mrow = carve(std::size_t(QTp));   // running max
  float *const lrow = carve(std::size_t(QTp));   // running denominator
  float *const kwide = carve(widen ? std::size_t(KT) * D : 0); // 16-bit: widened K, V
  float *const vwide = carve(widen ? std::size_t(KT) * D : 0);
  // bf16_dot: V in pairs of keys, [KT / 2 rounded up][D][2] bfloat16 (fits:
  // (KT + 1) D halves <= KT D floats)
  std::uint16_t *const vpairs = reinterpret_cast<std::uint16_t *>(vwide);

  // Q in pairs, [D / 2][QTp][2] bfloat16, unscaled (the scale multiplies
  // the scores): the bits as stored
  std::uint16_t *const qpairs = reinterpret_cast<std::uint16_t *>(qt);
  for (int d = 0; d < D; ++d) {
    if constexpr (bf16_dot) {
      std::uint16_t *const qd = qpairs + (d & ~1) * QTp + (d & 1);
      for (int i = 0; i < nq; ++i) qd[2 * i] = bfloat16_t(q_rows[i * ldq_rows + d]).bits;
      for (int i = nq; i < nqp; ++i) qd[2 * i] = 0; // padding columns: harmless zeros
    } else {
      float *const qd = qt + d * QTp;
      for (int i = 0; i < nq; ++i) qd[i] = scale2 * float(q_rows[i * ldq_rows + d]);
      for (int i = nq; i < nqp; ++i) qd[i] = 0; // padding columns: harmless zeros
    }
    float *const od = ot + d * QTp;
    for (int i = 0; i < nqp; ++i) od[i] = 0;
  }
  for (int i = 0; i < nqp; ++i) {
    mrow[i] = ninf;
    lrow[i] = 0;
  }

  for (int r = 0; r < query.task.num_key_runs; ++r) {
    const KeyRun run = query.task.key_runs[r];
    for (std::int64_t k0 = 0; k0 < run.count; k0 += KT) {
      KeyTile key = KeyTile::of_run(run, k0, stride, KT, row_step);
      if (args.causal && !key.trim_to_causal(query.qpos_last)) break;
      const CausalBounds bounds = CausalBounds::of(args.causal, query, key);
      const int nk = key.nk;
      const Scalar *const k_stored = &args.kv.k(b, key.krow_first, g, 0);
      const Scalar *const v_stored = &args.kv.v(b, key.krow_first, g, 0);
      const float *k_rows = nullptr, *v_rows = nullptr;
      std::int64_t ldk = ldk_rows, ldv = ldv_rows;
      if constexpr (widen) {
        if constexpr (!bf16_dot) {
          avx512_widen_rows(k_stored, ldk_rows, nk, D, kwide);
          k_rows = kwide;
          ldk = D;
        }
        if constexpr (bf16_dot) {
#ifdef RINGATTN_HAVE_HOST_AVX512_BF16
          avx512_pair_rows(reinterpret_cast<const std::uint16_t *>(v_stored), ldv_rows, nk, D,
                           vpairs);
#endif
        } else {
          avx512_widen_rows(v_stored, ldv_rows, nk, D, vwide);
          v_rows = vwide;
          ldv = D;
        }
      } else {
        k_rows = k_stored;
        v_rows = v_stored;
      }

      for (int i0 = 0; i0 < nq; i0 += QB) {
        const int rows = nq - i0 < QB ? nq - i0 : QB;
        // keys kept grow with the query: the column block's last keeps the
        // most, its first the fewest (padding columns keep as many as the last)
        const int most = bounds.kept(query, key, i0 + rows - 1);
        if (most == 0) continue; // the whole block is masked: nothing changes
        const int least = bounds.kept(query, key, i0);
        if constexpr (bf16_dot) {
#ifdef RINGATTN_HAVE_HOST_AVX512_BF16
          avx512_scores_bf16(qpairs + 2 * i0, QTp,
                             reinterpret_cast<const std::uint16_t *>(k_stored), ldk, most, D,
                             scale2, st);
#endif
        } else {
          avx512_scores(qt + i0, QTp, k_rows, ldk, most, D, st);
        }

        __m512i keep[3];
        for (int u = 0; u < 3; ++u) {
          alignas(64) std::int32_t kk[16];
          for (int l = 0; l < 16; ++l) {
            const int i = i0 + 16 * u + l;
            kk[l] = i < i0 + rows ? bounds.kept(query, key, i) : most;
          }
          keep[u] = _mm512_load_si512(kk);
        }
        // The column maxima over kept keys; a NaN or +inf score makes it +inf
        // (score_for_max), and the row then NaN (docs/reliability.md).
        __m512 mx[3];
        __mmask16 bad[3];
        for (int u = 0; u < 3; ++u) {
          mx[u] = _mm512_set1_ps(ninf);
          bad[u] = 0;
        }
        for (int j = 0; j < most; ++j) {
          const float *const sj = st + std::size_t(j) * QB;
          for (int u = 0; u < 3; ++u) {
            const __mmask16 lanes = j < least
                                        ? __mmask16(0xFFFF)
                                        : _mm512_cmpgt_epi32_mask(keep[u], _mm512_set1_epi32(j));
            const __m512 x = _mm512_loadu_ps(sj + 16 * u);
            mx[u] = _mm512_mask_max_ps(mx[u], lanes, mx[u], x);
            bad[u] = _kor_mask16(bad[u], _mm512_mask_cmp_ps_mask(lanes, x, x, _CMP_UNORD_Q));
          }
        }
        __m512 mnew[3], sum[3];
        for (int u = 0; u < 3; ++u) {
          mx[u] = _mm512_mask_mov_ps(mx[u], bad[u], _mm512_set1_ps(inf));
          mnew[u] = _mm512_max_ps(_mm512_loadu_ps(mrow + i0 + 16 * u), mx[u]);
          sum[u] = _mm512_setzero_ps();
        }
        // P^T = 2^(S^T - m) where kept, else 0 (a column with no key seen
        // yet, m = -inf, keeps none: all zero)
        const auto weights = [&](int j, int u) {
          const __mmask16 lanes = j < least
                                      ? __mmask16(0xFFFF)
                                      : _mm512_cmpgt_epi32_mask(keep[u], _mm512_set1_epi32(j));
          return avx512_exp2_weights(
              _mm512_sub_ps(_mm512_loadu_ps(st + std::size_t(j) * QB + 16 * u), mnew[u]), lanes);
        };
        if constexpr (bf16_dot) {
#ifdef RINGATTN_HAVE_HOST_AVX512_BF16
          // P^T rounded to bfloat16 in pairs of keys for VDPBF16PS, as the
          // AMX tile does (docs/DESIGN.md); the sums l stay those of the
          // float weights. In place: pair row j / 2 goes where rows already
          // read lie (j / 2 <= j).
          for (int j = 0; j < most; j += 2)
            for (int u = 0; u < 3; ++u) {
              const __m512 w0 = weights(j, u);
              const __m512 w1 = j + 1 < most ? weights(j + 1, u) : _mm512_setzero_ps();
              sum[u] = _mm512_add_ps(_mm512_add_ps(sum[u], w0), w1);
              _mm512_storeu_si512(st + std::size_t(j / 2) * QB + 16 * u,
                                  avx512_pair_weights(w0, w1));
            }
#endif
        } else {
          for (int j = 0; j < most; ++j)
            for (int u = 0; u < 3; ++u) {
              const __m512 w = weights(j, u);
              sum[u] = _mm512_add_ps(sum[u], w);
              _mm512_storeu_ps(st + std::size_t(j) * QB + 16 * u, w);
            }
        }
        bool rescale = false;
        __m512 alpha[3];
        for (int u = 0; u < 3; ++u) {
          float *const mu = mrow + i0 + 16 * u;
          float *const lu = lrow + i0 + 16 * u;
          const __m512 mold = _mm512_loadu_ps(mu);
          // 2^(m_old - m_new): 1 for an unchanged maximum, 0 for a column
          // that saw no key yet (-inf - -inf is NaN, which gives 0)
          alpha[u] = avx512_exp2_nonpositive(_mm512_sub_ps(mold, mnew[u]));
          __m512 l = _mm512_fmadd_ps(_mm512_loadu_ps(lu), alpha[u], sum[u]);
          l = _mm512_mask_mov_ps(l, _mm512_cmp_ps_mask(mnew[u], _mm512_set1_ps(inf), _CMP_EQ_OQ),
                                 _mm512_set1_ps(NAN));
          // a column with no key seen keeps m = -inf and l = 0
          const __mmask16 seen = _mm512_cmp_ps_mask(mnew[u], _mm512_set1_ps(ninf), _CMP_NEQ_OQ);
          _mm512_storeu_ps(lu, _mm512_mask_mov_ps(_mm512_loadu_ps(lu), seen, l));
          _mm512_storeu_ps(mu, mnew[u]);
          rescale = rescale || _mm512_cmp_ps_mask(alpha[u], _mm512_set1_ps(1.0f), _CMP_NEQ_UQ) != 0;
        }
        if (rescale)
          for (int d = 0; d < D; ++d) {
            float *const od = ot + d * QTp + i0;
            for (int u = 0; u < 3; ++u)
              _mm512_storeu_ps(od + 16 * u, _mm512_mul_ps(_mm512_loadu_ps(od + 16 * u), alpha[u]));
          }
        if constexpr (bf16_dot) {
#ifdef RINGATTN_HAVE_HOST_AVX512_BF16
          avx512_accumulate_bf16(reinterpret_cast<const std::uint16_t *>(st), most, vpairs, D,
                                 ot + i0, QTp);
#endif
        } else {
          avx512_accumulate(st, most, v_rows, ldv, D, ot + i0, QTp);
        }
      }
    }
  }

  merge_host_query_tile(args, query, mrow, lrow,
                        [ot, QTp](int i, int d) { return ot[d * QTp + i]; });
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif // RINGATTN_HAVE_HOST_AVX512

} // namespace ringattn::Details

#endif
