#ifndef RINGATTN_BACKWARDKERNELHOST_HPP
#define RINGATTN_BACKWARDKERNELHOST_HPP

// Host fast path of the backward block kernels (docs/SPEC.md section 7): the same two passes
// and work items as the portable kernels (RingAttn_BackwardKernel.hpp), with
// the tile products done by CBLAS sgemm on one core each, as the forward's
// host path does. Per tile of nq queries x nk keys:
//   S = scale Q K^T, dP = dO V^T                  (both passes)
//   dQ pass:   dQ += dS K                         (scale applied at the end)
//   dK/dV pass: dV += P^T dO, dK += scale dS^T Q
// Strided (dilated) query rows are a leading dimension of stride * H * D.

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

template <class ExecSpace>
struct HostBackwardDqFunctor {
  using memory_space = typename ExecSpace::memory_space;
  using member_type = typename Kokkos::TeamPolicy<ExecSpace>::member_type;
  using ScratchView = Kokkos::View<float *, typename ExecSpace::scratch_memory_space,
                                   Kokkos::MemoryTraits<Kokkos::Unmanaged>>;

  BackwardViews<ExecSpace, float> in;
  Kokkos::View<const BlockTask *, memory_space> tasks;
  Kokkos::View<const WorkItem *, memory_space> items;
  Kokkos::View<float ****, Kokkos::LayoutRight, memory_space> dq; // [B, n, H, D]
  std::int64_t num_items = 0;
  int q_tile = 0;
  int k_tile = 0;
  float scale = 1;
  bool causal = false;

  static std::size_t scratch_elements(int QT, int KT, int D) {
    return 2 * std::size_t(QT) * KT + std::size_t(QT) * D + 2 * std::size_t(QT);
  }

  void operator()(const member_type &team) const {
    const int H = int(in.q.extent(2)), D = int(in.q.extent(3)), QT = q_tile, KT = k_tile;
    // base-2 scores and LSE (host_probabilities)
    const float log2e = float(host_log2e), scale2 = float(double(scale) * host_log2e);
    const QueryTile query = QueryTile::of_team(team.league_rank(), num_items, items, tasks, QT);
    const std::int64_t b = query.b, stride = query.stride;
    const int h = query.h, nq = query.nq;
    const int ldq = int(stride * H * D);
    const float *const qbase = &in.q(b, query.qrow_first, h, 0);
    const float *const dobase = &in.dout(b, query.qrow_first, h, 0);

    ScratchView scratch(team.team_scratch(1), scratch_elements(QT, KT, D));
    float *const s = scratch.data();              // [QT][KT] scores, then P
    float *const dp = s + std::size_t(QT) * KT;   // [QT][KT] dP, then dS
    float *const acc = dp + std::size_t(QT) * KT; // [QT][D] sum of dS k
    float *const lrow = acc + std::size_t(QT) * D;
    float *const drow = lrow + QT;
    for (int i = 0; i < nq; ++i) {
      lrow[i] = in.lse(b, h, query.qrow(i)) * log2e;
      drow[i] = in.delta(b, h, query.qrow(i));
    }
    for (std::size_t e = 0; e < std::size_t(nq) * D; ++e) acc[e] = 0;

    for (int r = 0; r < query.task.num_key_runs; ++r) {
      const KeyRun run = query.task.key_runs[r];
      for (std::int64_t k0 = 0; k0 < run.count; k0 += KT) {
        const KeyTile key = KeyTile::of_run(run, k0, stride, KT);
        const CausalBounds bounds = CausalBounds::of(causal, query, key);
        if (bounds.skip) break;
        const int nk = key.nk;
        const float *const kbase = &in.kv(0, b, key.krow_first, 0);
        const float *const vbase = &in.kv(1, b, key.krow_first, 0);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, D, scale2, qbase, ldq, kbase,
                    D, 0.0f, s, KT);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, D, 1.0f, dobase, ldq, vbase, D,
                    0.0f, dp, KT);
        host_probabilities(s, dp, KT, query, key, bounds, lrow, drow);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, D, nk, 1.0f, dp, KT, kbase, D,
                    1.0f, acc, D);
      }
    }
    for (int i = 0; i < nq; ++i) {
      float *const out = &dq(b, query.qrow(i), h, 0);
      const float *const arow = acc + std::size_t(i) * D;
      for (int d = 0; d < D; ++d) out[d] += scale * arow[d];
    }
  }
};

template <class ExecSpace>
struct HostBackwardDkvFunctor {
  using memory_space = typename ExecSpace::memory_space;
  using member_type = typename Kokkos::TeamPolicy<ExecSpace>::member_type;
  using ScratchView = Kokkos::View<float *, typename ExecSpace::scratch_memory_space,
                                   Kokkos::MemoryTraits<Kokkos::Unmanaged>>;

  BackwardViews<ExecSpace, float> in;
  Kokkos::View<const BlockTask *, memory_space> tasks;
  Kokkos::View<const KeyWorkItem *, memory_space> items;
  Kokkos::View<const std::int64_t *, memory_space> task_index;
  Kokkos::View<float ****, Kokkos::LayoutRight, memory_space> partial; // [2, B, rows, D]
  std::int64_t num_items = 0;
  int q_tile = 0;
  int k_tile = 0;
  float scale = 1;
  bool causal = false;

  static std::size_t scratch_elements(int QT, int KT, int D) {
    return 2 * std::size_t(QT) * KT + 2 * std::size_t(KT) * D + 2 * std::size_t(QT);
  }

  void operator()(const member_type &team) const {
    const int H = int(in.q.extent(2)), D = int(in.q.extent(3)), QT = q_tile, KT = k_tile;
    // base-2 scores and LSE (host_probabilities)
    const float log2e = float(host_log2e), scale2 = float(double(scale) * host_log2e);
    const std::int64_t b = team.league_rank() / num_items;
    const KeyWorkItem item = items(team.league_rank() % num_items);
    const std::int64_t stride = item.stride;
    const KeyTile key = KeyTile::of_run(item.run, item.k_begin, stride, KT);
    const int nk = key.nk;
    const float *const kbase = &in.kv(0, b, key.krow_first, 0);
    const float *const vbase = &in.kv(1, b, key.krow_first, 0);
    const int ldq = int(stride * H * D);

    ScratchView scratch(team.team_scratch(1), scratch_elements(QT, KT, D));
    float *const s = scratch.data();              // [QT][KT] scores, then P
    float *const dp = s + std::size_t(QT) * KT;   // [QT][KT] dP, then dS
    float *const dka = dp + std::size_t(QT) * KT; // [KT][D] sum of dS q
    float *const dva = dka + std::size_t(KT) * D; // [KT][D] sum of P dO
    float *const lrow = dva + std::size_t(KT) * D;
    float *const drow = lrow + QT;
    for (std::size_t e = 0; e < std::size_t(nk) * D; ++e) dka[e] = dva[e] = 0;

    for (std::int64_t ti = item.task_begin; ti < item.task_end; ++ti) {
      const BlockTask task = tasks(task_index(ti));
      for (std::int64_t q0 = 0; q0 < task.q_count; q0 += QT) {
        const QueryTile query = QueryTile::of_task(b, task, q0, stride, QT);
        const CausalBounds bounds = CausalBounds::of(causal, query, key);
        if (bounds.skip) continue; // every pair masked
        const int h = query.h, nq = query.nq;
        const float *const qbase = &in.q(b, query.qrow_first, h, 0);
        const float *const dobase = &in.dout(b, query.qrow_first, h, 0);
        for (int i = 0; i < nq; ++i) {
          lrow[i] = in.lse(b, h, query.qrow(i)) * log2e;
          drow[i] = in.delta(b, h, query.qrow(i));
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, D, scale2, qbase, ldq, kbase,
                    D, 0.0f, s, KT);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, D, 1.0f, dobase, ldq, vbase, D,
                    0.0f, dp, KT);
        host_probabilities(s, dp, KT, query, key, bounds, lrow, drow);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, D, nq, 1.0f, s, KT, dobase, ldq,
                    1.0f, dva, D);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, D, nq, scale, dp, KT, qbase, ldq,
                    1.0f, dka, D);
      }
    }
    for (int j = 0; j < nk; ++j)
      for (int d = 0; d < D; ++d) {
        partial(0, b, key.krow_first + j, d) = dka[std::size_t(j) * D + d];
        partial(1, b, key.krow_first + j, d) = dva[std::size_t(j) * D + d];
      }
  }
};

/// The fused host backward: one team per FusedWorkItem, a set of tasks that
/// own their dQ rows and their key runs' block rows, so a team computes
/// everything of its pairs in one sweep with no race: per tile
///   S = scale Q K^T, dP = dO V^T, then P and dS,
///   dQ += dS K (the query tile's scratch), dV += P^T dO and
///   dK += scale dS^T Q (straight into the block rows' partials),
/// 10 D flops per pair against the two passes' 14 D. Tasks, query tiles,
/// runs and key tiles go in a fixed order, so results repeat bitwise.
/// It needs enough such sets to keep the threads busy (use_fused_backward).
template <class ExecSpace>
struct HostBackwardFusedFunctor {
  using memory_space = typename ExecSpace::memory_space;
  using member_type = typename Kokkos::TeamPolicy<ExecSpace>::member_type;
  using ScratchView = Kokkos::View<float *, typename ExecSpace::scratch_memory_space,
                                   Kokkos::MemoryTraits<Kokkos::Unmanaged>>;

  BackwardViews<ExecSpace, float> in;
  Kokkos::View<const BlockTask *, memory_space> tasks;
  Kokkos::View<const FusedWorkItem *, memory_space> items;
  Kokkos::View<const std::int64_t *, memory_space> task_order;
  Kokkos::View<float ****, Kokkos::LayoutRight, memory_space> dq;      // [B, n, H, D]
  Kokkos::View<float ****, Kokkos::LayoutRight, memory_space> partial; // [2, B, rows, D]
  std::int64_t num_items = 0;
  int q_tile = 0;
  int k_tile = 0;
  float scale = 1;
  bool causal = false;

  static std::size_t scratch_elements(int QT, int KT, int D) {
    return HostBackwardDqFunctor<ExecSpace>::scratch_elements(QT, KT, D);
  }

  void operator()(const member_type &team) const {
    const int H = int(in.q.extent(2)), D = int(in.q.extent(3)), QT = q_tile, KT = k_tile;
    // base-2 scores and LSE (host_probabilities)
    const float log2e = float(host_log2e), scale2 = float(double(scale) * host_log2e);
    const std::int64_t b = team.league_rank() / num_items;
    const FusedWorkItem item = items(team.league_rank() % num_items);

    ScratchView scratch(team.team_scratch(1), scratch_elements(QT, KT, D));
    float *const s = scratch.data();              // [QT][KT] scores, then P
    float *const dp = s + std::size_t(QT) * KT;   // [QT][KT] dP, then dS
    float *const acc = dp + std::size_t(QT) * KT; // [QT][D] sum of dS k
    float *const lrow = acc + std::size_t(QT) * D;
    float *const drow = lrow + QT;

    for (std::int64_t ti = item.task_begin; ti < item.task_end; ++ti) {
      const BlockTask task = tasks(task_order(ti));
      const std::int64_t stride = task.stride;
      const int ldq = int(stride * H * D);
      for (std::int64_t q0 = 0; q0 < task.q_count; q0 += QT) {
        const QueryTile query = QueryTile::of_task(b, task, q0, stride, QT);
        const int h = query.h, nq = query.nq;
        const float *const qbase = &in.q(b, query.qrow_first, h, 0);
        const float *const dobase = &in.dout(b, query.qrow_first, h, 0);
        for (int i = 0; i < nq; ++i) {
          lrow[i] = in.lse(b, h, query.qrow(i)) * log2e;
          drow[i] = in.delta(b, h, query.qrow(i));
        }
        for (std::size_t e = 0; e < std::size_t(nq) * D; ++e) acc[e] = 0;
        for (int r = 0; r < task.num_key_runs; ++r) {
          const KeyRun run = task.key_runs[r];
          for (std::int64_t k0 = 0; k0 < run.count; k0 += KT) {
            const KeyTile key = KeyTile::of_run(run, k0, stride, KT);
            const CausalBounds bounds = CausalBounds::of(causal, query, key);
            if (bounds.skip) break; // and every later tile of the run
            const int nk = key.nk;
            const float *const kbase = &in.kv(0, b, key.krow_first, 0);
            const float *const vbase = &in.kv(1, b, key.krow_first, 0);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, D, scale2, qbase, ldq,
                        kbase, D, 0.0f, s, KT);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, D, 1.0f, dobase, ldq,
                        vbase, D, 0.0f, dp, KT);
            host_probabilities(s, dp, KT, query, key, bounds, lrow, drow);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, D, nk, 1.0f, dp, KT, kbase,
                        D, 1.0f, acc, D);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, D, nq, 1.0f, s, KT, dobase,
                        ldq, 1.0f, &partial(1, b, key.krow_first, 0), D);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, D, nq, scale, dp, KT, qbase,
                        ldq, 1.0f, &partial(0, b, key.krow_first, 0), D);
          }
        }
        for (int i = 0; i < nq; ++i) {
          float *const out = &dq(b, query.qrow(i), h, 0);
          const float *const arow = acc + std::size_t(i) * D;
          for (int d = 0; d < D; ++d) out[d] += scale * arow[d];
        }
      }
    }
  }
};

} // namespace ringattn::Details

#endif // RINGATTN_ENABLE_BLAS
#endif
