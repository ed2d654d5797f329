#ifndef RINGATTN_BACKWARDKERNELHOST_HPP
#define RINGATTN_BACKWARDKERNELHOST_HPP

// Host fast path of the backward (docs/SPEC.md section 7, docs/backward.md):
// one fused sweep per set of tasks that share key runs, the tile products by
// CBLAS sgemm on one core each, as the forward's host path does. Per tile of
// nq queries x nk keys:
//   S = scale Q K^T, dP = dO V^T, then P and dS = P (dP - Delta),
//   dQ += dS K (scale applied at the end), dV += P^T dO, dK += scale dS^T Q.
// Strided (dilated) query rows are a leading dimension of stride x the row
// pitch of Q (H * D for LayoutRight; more for a subview of a packed
// projection). 16-bit storage is widened a tile at a time in the team's
// scratch, as in the forward's host path: the Q and dO tile once per query
// tile, each K/V tile once per query tile (2 k_tile D conversions against
// 10 q_tile k_tile D flops); no float copy of a tensor or block is made.
// Elsewhere (no BLAS, device spaces) the backward takes the portable
// kernels' two passes (RingAttn_BackwardKernel.hpp).

#include <RingAttn_Config.hpp>

#ifdef RINGATTN_ENABLE_BLAS

#include <core/RingAttn_Types.hpp>
#include <core/detail/RingAttn_KokkosCompat.hpp>
#include <kernels/detail/RingAttn_BackwardTask.hpp>
#include <kernels/detail/RingAttn_BlockKernelHost.hpp>
#include <kernels/detail/RingAttn_BlockTask.hpp>
#include <kernels/detail/RingAttn_FastExp.hpp>
#include <kernels/detail/RingAttn_KernelArgs.hpp>

#include <kernels/detail/RingAttn_Cblas.hpp>

#include <cstdint>

namespace ringattn::Details {

/// Turns a tile's scores S (in s) and dP (in dp), [nq][ld] each, into P (in
/// s) and dS = P (dP - Delta) (in dp). Keys kept: j < nk, and (causal tiles)
/// kpos <= qpos; rows with LSE = -inf see no key. Scores and LSE are in base
/// 2, as in the forward's host path (S = scale log2 e Q K^T, lse_rows =
/// log2 e LSE), so P = 2^(S - LSE) by the vectorized exp2_nonpositive_host.
inline void host_probabilities(float *s, float *dp, int ld, const QueryTile &query,
                               const KeyTile &key, const CausalBounds &bounds,
                               const float *lse_rows, const float *delta_rows) {
  constexpr float ninf = -compat::infinity<float>();
  const int nq = query.nq, nk = key.nk;
  for (int i = 0; i < nq; ++i) {
    float *const srow = s + std::size_t(i) * ld;
    float *const drow = dp + std::size_t(i) * ld;
    int keep = bounds.kept(query, key, i);
    const float l = lse_rows[i];
    if (l == ninf) keep = 0;
    const float delta = delta_rows[i];
#pragma omp simd
    for (int j = 0; j < keep; ++j) {
      const float p = exp2_nonpositive_host(srow[j] - l);
      srow[j] = p;
      drow[j] = p * (drow[j] - delta);
    }
    for (int j = keep; j < nk; ++j) {
      srow[j] = 0;
      drow[j] = 0;
    }
  }
}

/// The scratch of a fused team, which sweeps query tiles against key tiles: [QT][KT] scores then P,
/// [QT][KT] dP then dS, [QT][D] the sum of dS K, the rows' base-2 LSE and Delta, and (16-bit
/// storage, `widen`) the tiles widened to float: Q and dO [QT][D], K and V [KT][D].
struct HostQueryScratch {
  float *s;
  float *dp;
  float *acc;
  float *lrow;
  float *drow;
  float *qwide;
  float *dowide;
  float *kwide;
  float *vwide;

  static std::size_t elements(int QT, int KT, int D, bool widen) {
    return 2 * std::size_t(QT) * KT + std::size_t(QT) * D + 2 * std::size_t(QT) +
           (widen ? 2 * (std::size_t(QT) + std::size_t(KT)) * D : 0);
  }
  static HostQueryScratch of(float *base, int QT, int KT, int D) {
    float *const s = base, *const dp = s + std::size_t(QT) * KT;
    float *const acc = dp + std::size_t(QT) * KT, *const lrow = acc + std::size_t(QT) * D;
    float *const drow = lrow + QT, *const qwide = drow + QT;
    float *const dowide = qwide + std::size_t(QT) * D, *const kwide = dowide + std::size_t(QT) * D;
    return HostQueryScratch{
        s, dp, acc, lrow, drow, qwide, dowide, kwide, kwide + std::size_t(KT) * D};
  }
};

/// A tile of `rows` rows `ld` elements apart, as the GEMMs read it: float
/// storage in place, 16-bit storage widened into `wide` ([rows][D]).
struct HostTileRows {
  const float *data;
  int ld;

  static HostTileRows of(const float *rows, int ld, int, int, float *) { return {rows, ld}; }
  template <class Scalar>
  static HostTileRows of(const Scalar *rows, int ld, int count, int D, float *wide) {
    widen_16bit_rows(rows, std::size_t(ld), count, D, wide);
    return {wide, D};
  }
};

/// Rows of `query`: their LSE in base 2 (times log2 e) and Delta, for
/// host_probabilities.
template <class Views>
void load_row_statistics(const Views &in, const QueryTile &query, float *lrow, float *drow) {
  const float log2e = float(host_log2e);
  for (int i = 0; i < query.nq; ++i) {
    lrow[i] = in.lse(query.b, query.h, query.qrow(i)) * log2e;
    drow[i] = in.delta(query.b, query.h, query.qrow(i));
  }
}

/// dQ rows of `query` += scale * acc (acc: [nq][D], the sum of dS K).
template <class DqView>
void add_scaled_dq(const DqView &dq, const QueryTile &query, const float *acc, int D, float scale) {
  for (int i = 0; i < query.nq; ++i) {
    float *const out = &dq(query.b, query.qrow(i), query.h, 0);
    const float *const arow = acc + std::size_t(i) * D;
    for (int d = 0; d < D; ++d) out[d] += scale * arow[d];
  }
}

/// The fused host backward: one team per FusedWorkItem, a set of tasks that
/// own their dQ rows and their key runs' (kv head, row)s, so a team
/// computes everything of its pairs in one sweep with no race: per tile
///   S = scale Q K^T, dP = dO V^T, then P and dS,
///   dQ += dS K (the query tile's scratch), dV += P^T dO and
///   dK += scale dS^T Q (straight into the key rows' dK/dV),
/// 10 D flops per pair against the two passes' 14 D. Tasks, query tiles,
/// runs and key tiles go in a fixed order, so results repeat bitwise. Where
/// there are fewer sets than threads, a set is split into chunks of its
/// query tiles (split_fused_work); chunk c > 0 adds its dK/dV into a
/// private copy of `grads` (chunk_partial, c - 1 copies of dK and dV in
/// their layout), summed in afterwards in chunk order. Keys are rows of a
/// block, or of the member's own K/V read in place, whose dK/dV `grads`
/// then are (KeyValueRows, KeyValueGrads): rows `stride` apart, the GEMMs'
/// leading dimension stride x the row pitch, as for the queries.
template <class ExecSpace, class Scalar = float>
struct HostBackwardFusedFunctor {
  using memory_space = typename ExecSpace::memory_space;
  using member_type = typename Kokkos::TeamPolicy<ExecSpace>::member_type;
  using ScratchView = Kokkos::View<float *, typename ExecSpace::scratch_memory_space,
                                   Kokkos::MemoryTraits<Kokkos::Unmanaged>>;

  static constexpr bool widen = !std::is_same_v<Scalar, float>; // 16-bit storage

  BackwardViews<ExecSpace, Scalar> in;
  Kokkos::View<const BlockTask *, memory_space> tasks;
  Kokkos::View<const FusedWorkItem *, memory_space> items;
  Kokkos::View<const std::int64_t *, memory_space> task_order;
  Kokkos::View<float ****, Kokkos::LayoutRight, memory_space> dq; // [B, n, H, D]
  KeyValueGrads<memory_space, float> grads;                       // the key rows' dK/dV
  // [chunks - 1][2][grads.dk.size()]: the dK/dV of chunks 1, 2, ...
  Kokkos::View<float *, memory_space> chunk_partial;
  std::int64_t num_items = 0;
  int q_tile = 0;
  int k_tile = 0;
  float scale = 1;
  bool causal = false;

  static std::size_t scratch_elements(int QT, int KT, int D) {
    return HostQueryScratch::elements(QT, KT, D, widen);
  }

  void operator()(const member_type &team) const {
    const int D = int(in.q.extent(3)), QT = q_tile, KT = k_tile, H = int(in.q.extent(2));
    // base-2 scores and LSE (host_probabilities)
    const float scale2 = float(double(scale) * host_log2e);
    const std::int64_t b = team.league_rank() / num_items;
    const FusedWorkItem item = items(team.league_rank() % num_items);
    // where this chunk's dK (0) and dV (1) of key row `row`, kv head g go
    const std::size_t grads_size = grads.dk.size();
    const auto partial_row = [&](int which, std::int64_t row, int g) {
      float *const own = which == 0 ? &grads.dk(b, row, g, 0) : &grads.dv(b, row, g, 0);
      if (item.chunk == 0) return own;
      const std::size_t at = std::size_t(own - (which == 0 ? grads.dk.data() : grads.dv.data()));
      return chunk_partial.data() + (std::size_t(item.chunk - 1) * 2 + which) * grads_size + at;
    };

    ScratchView scratch(team.team_scratch(1), scratch_elements(QT, KT, D));
    const HostQueryScratch tile_scratch = HostQueryScratch::of(scratch.data(), QT, KT, D);
    float *const s = tile_scratch.s, *const dp = tile_scratch.dp, *const acc = tile_scratch.acc;
    float *const lrow = tile_scratch.lrow, *const drow = tile_scratch.drow;

    std::int64_t tile = 0; // the set's query tiles, counted over its tasks
    for (std::int64_t ti = item.task_begin; ti < item.task_end && tile < item.tile_end; ++ti) {
      const BlockTask task = tasks(task_order(ti));
      const std::int64_t stride = task.stride;
      // leading dimensions: `stride` rows of Q and of dO (either may be a
      // strided view, e.g. of a packed projection)
      const int ldq = int(stride * std::int64_t(in.q.stride_1()));
      const int lddo = int(stride * std::int64_t(in.dout.stride_1()));
      for (std::int64_t q0 = 0; q0 < task.q_count; q0 += QT, ++tile) {
        if (tile < item.tile_begin || tile >= item.tile_end) continue;
        const QueryTile query = QueryTile::of_task(b, task, q0, stride, QT);
        const int h = query.h, nq = query.nq;
        // the kv head and the keys' rows: a block's, or `stride` apart in place
        const int g = in.kv.kv_head(h, H);
        const std::int64_t row_step = in.kv.row_step(stride);
        const int ldk = int(row_step * std::int64_t(in.kv.k.stride_1()));
        const int ldv = int(row_step * std::int64_t(in.kv.v.stride_1())); // V's own pitch
        const int ldg = int(row_step * std::int64_t(grads.dk.stride_1()));
        const HostTileRows qt =
            HostTileRows::of(&in.q(b, query.qrow_first, h, 0), ldq, nq, D, tile_scratch.qwide);
        const HostTileRows dot =
            HostTileRows::of(&in.dout(b, query.qrow_first, h, 0), lddo, nq, D, tile_scratch.dowide);
        load_row_statistics(in, query, lrow, drow);
        for (std::size_t e = 0; e < std::size_t(nq) * D; ++e) acc[e] = 0;
        for (int r = 0; r < task.num_key_runs; ++r) {
          const KeyRun run = task.key_runs[r];
          for (std::int64_t k0 = 0; k0 < run.count; k0 += KT) {
            KeyTile key = KeyTile::of_run(run, k0, stride, KT, row_step);
            // keys past the last query are out of all five products (a
            // diagonal tile is then at most QT wide); none left: nor later
            if (causal && !key.trim_to_causal(query.qpos_last)) break;
            const CausalBounds bounds = CausalBounds::of(causal, query, key);
            const int nk = key.nk;
            const HostTileRows kt =
                HostTileRows::of(&in.kv.k(b, key.krow_first, g, 0), ldk, nk, D, tile_scratch.kwide);
            const HostTileRows vt =
                HostTileRows::of(&in.kv.v(b, key.krow_first, g, 0), ldv, nk, D, tile_scratch.vwide);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, D, scale2, qt.data, qt.ld,
                        kt.data, kt.ld, 0.0f, s, KT);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, D, 1.0f, dot.data, dot.ld,
                        vt.data, vt.ld, 0.0f, dp, KT);
            host_probabilities(s, dp, KT, query, key, bounds, lrow, drow);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, D, nk, 1.0f, dp, KT, kt.data,
                        kt.ld, 1.0f, acc, D);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, D, nq, 1.0f, s, KT, dot.data,
                        dot.ld, 1.0f, partial_row(1, key.krow_first, g), ldg);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, D, nq, scale, dp, KT, qt.data,
                        qt.ld, 1.0f, partial_row(0, key.krow_first, g), ldg);
          }
        }
        add_scaled_dq(dq, query, acc, D, scale);
      }
    }
  }
};

} // namespace ringattn::Details

#endif // RINGATTN_ENABLE_BLAS
#endif
