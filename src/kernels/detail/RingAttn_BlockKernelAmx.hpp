#ifndef RINGATTN_BLOCKKERNELAMX_HPP
#define RINGATTN_BLOCKKERNELAMX_HPP

// One query tile of the host fast path in bfloat16 on Intel AMX: the same
// work item, key sweep, causal bounds and streaming softmax (base 2) as
// HostBlockAttentionFunctor, with the two tile products on the tile unit
// (RingAttn_AmxTile.hpp). Per key tile the keys and values are packed once
// into the tile unit's pair layout; then for each block of 32 query rows:
// S = Q K^T (32 x keys, kept in L1), the softmax of those rows in AVX-512
// writing P in bfloat16 (as FlashAttention does in 16 bits; the
// denominator l keeps the float sum), and O += P V into the float
// accumulator. Results as the other host paths within bfloat16 rounding of P.

#include <core/RingAttn_Half.hpp>
#include <kernels/detail/RingAttn_AmxTile.hpp>
#include <kernels/detail/RingAttn_BlockTask.hpp>
#include <kernels/detail/RingAttn_Merge.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>

namespace ringattn::Details {

/// Floats of scratch one AMX query tile needs (QT x KT tiles, head dim D),
/// with room to align its parts to 64 bytes.
inline std::size_t amx_scratch_floats(int QT, int KT, int D) {
  const std::size_t qt = std::size_t(amx_round_up(QT)), kt = std::size_t(amx_round_up(KT)),
                    dp = std::size_t(amx_round_up(D)), rows = std::size_t(amx_block);
  const std::size_t parts = rows * kt       // S rows of one block of 32 queries
                            + rows * kt / 2 // P of those rows, bfloat16
                            + qt * dp       // the float accumulator
                            + 2 * qt        // running max and denominator
                            + qt * dp / 2   // packed queries
                            + kt * dp;      // packed keys and values
  return parts + 8 * 16;                    // alignment of eight parts
}

#ifdef RINGATTN_HAVE_HOST_AMX

/// Runs query tile `query` of a work item (Args: BlockKernelArgs in
/// bfloat16) against its task's key runs and merges it into (o, lse).
/// `scratch` holds amx_scratch_floats(q_tile, k_tile, D) floats.
template <class Args>
void amx_attention_query_tile(const Args &args, const QueryTile &query, float *scratch) {
  constexpr float ninf = -__builtin_inff();
  const int H = int(args.q.extent(2)), D = int(args.q.extent(3));
  const int QT = args.q_tile, KT = args.k_tile;
  const int Dp = amx_round_up(D), KTp = amx_round_up(KT), QTp = amx_round_up(QT);
  const std::int64_t b = query.b, stride = query.stride;
  const int h = query.h, nq = query.nq;
  const bfloat16_t *const q_rows = &args.q(b, query.qrow_first, h, 0);
  const std::int64_t ldq_rows = stride * std::int64_t(args.q.stride_1());
  const int g = args.kv.kv_head(h, H);
  const std::int64_t row_step = args.kv.row_step(stride);
  const std::int64_t ldk_rows = row_step * std::int64_t(args.kv.k.stride_1());
  // V's rows at their own pitch (K and V may be views of different tensors)
  const std::int64_t ldv_rows = row_step * std::int64_t(args.kv.v.stride_1());
  // scores in base 2, as the other host paths (exp2_nonpositive_host)
  const float scale2 = float(double(args.scale) * 1.4426950408889634);

  // scratch parts, each 64-byte aligned
  const auto carve = [&scratch](std::size_t floats) { return carve_scratch(scratch, floats); };
  float *const s = carve(std::size_t(amx_block) * KTp);
  auto *const p = reinterpret_cast<std::uint16_t *>(carve(std::size_t(amx_block) * KTp / 2));
  float *const acc = carve(std::size_t(QTp) * Dp);
  float *const mrow = carve(std::size_t(QTp));
  float *const lrow = carve(std::size_t(QTp));
  auto *const qpack = reinterpret_cast<std::uint16_t *>(carve(std::size_t(QTp) * Dp / 2));
  auto *const kpack = reinterpret_cast<std::uint32_t *>(carve(std::size_t(KTp) * Dp / 2));
  auto *const vpack = reinterpret_cast<std::uint16_t *>(carve(std::size_t(KTp) * Dp / 2));

  const AmxTileScope tiles;
  amx_pack_queries(q_rows, ldq_rows, nq, D, Dp, qpack);
  for (int i = 0; i < nq; ++i) {
    mrow[i] = ninf;
    lrow[i] = 0;
  }
  for (std::size_t e = 0; e < std::size_t(amx_round_up(nq)) * Dp; ++e) acc[e] = 0;

  for (int r = 0; r < query.task.num_key_runs; ++r) {
    const KeyRun run = query.task.key_runs[r];
    for (std::int64_t k0 = 0; k0 < run.count; k0 += KT) {
      KeyTile key = KeyTile::of_run(run, k0, stride, KT, row_step);
      if (args.causal && !key.trim_to_causal(query.qpos_last)) break;
      const CausalBounds bounds = CausalBounds::of(args.causal, query, key);
      const int nk = key.nk;
      amx_pack_keys(&args.kv.k(b, key.krow_first, g, 0), ldk_rows, nk, D, Dp, kpack);
      amx_pack_values(&args.kv.v(b, key.krow_first, g, 0), ldv_rows, nk, D, Dp, vpack);

      for (int i0 = 0; i0 < nq; i0 += amx_block) {
        const int rows = nq - i0 < amx_block ? nq - i0 : amx_block;
        // keys kept grow with the row: the block's last row keeps the most
        const int most = bounds.kept(query, key, i0 + rows - 1);
        if (most == 0) continue; // the whole block is masked: nothing changes
        const int kp = amx_round_up(most);
        for (int jb2 = 0; jb2 < kp / amx_block; ++jb2)
          amx_scores_block(qpack, kpack, Dp, i0, jb2, s + jb2 * amx_block, KTp);
        for (int i = 0; i < amx_block; ++i) {
          std::uint16_t *const prow = p + std::size_t(i) * KTp;
          const int keep = i < rows ? bounds.kept(query, key, i0 + i) : 0;
          const float mold = i < rows ? mrow[i0 + i] : ninf;
          const float mx = avx512_row_max(s + std::size_t(i) * KTp, keep, scale2);
          const float mnew = mx > mold ? mx : mold;
          if (mnew == ninf) { // no key seen yet: a row of zero weights
            for (int j = 0; j < kp; ++j) prow[j] = 0;
            continue;
          }
          float sum = amx_row_weights(s + std::size_t(i) * KTp, keep, kp, scale2, mnew, prow);
          // a NaN or +inf score: the row becomes NaN (docs/reliability.md)
          if (!(mnew < __builtin_inff())) sum = NAN;
          const float alpha =
              _mm512_cvtss_f32(avx512_exp2_nonpositive(_mm512_set1_ps(mold - mnew)));
          if (alpha != 1.0f) {
            float *const arow = acc + std::size_t(i0 + i) * Dp;
            for (int d = 0; d < Dp; ++d) arow[d] *= alpha;
          }
          lrow[i0 + i] = lrow[i0 + i] * alpha + sum;
          mrow[i0 + i] = mnew;
        }
        amx_accumulate_block(p, KTp, vpack, kp / amx_block, Dp, acc + std::size_t(i0) * Dp);
      }
    }
  }

  for (int i = 0; i < nq; ++i) {
    const float l = lrow[i];
    if (l == 0.0f) continue; // saw no key in this block (l is NaN after a NaN score)
    const std::int64_t row = query.qrow(i);
    const MergeWeights<float> w =
        lse_merge<float>(args.lse(b, h, row), mrow[i] * 0.6931471805599453f + std::log(l));
    const float wb = w.wb / l;
    float *const orow = &args.o(b, row - args.o_row0, h, 0);
    const float *const arow = acc + std::size_t(i) * Dp;
    for (int d = 0; d < D; ++d) orow[d] = w.wa * orow[d] + wb * arow[d];
    args.lse(b, h, row) = w.lse;
  }
}

#endif // RINGATTN_HAVE_HOST_AMX

} // namespace ringattn::Details

#endif
