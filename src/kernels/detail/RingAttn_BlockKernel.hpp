#ifndef RINGATTN_BLOCKKERNEL_HPP
#define RINGATTN_BLOCKKERNEL_HPP

// The portable block kernel (DESIGN layer 2): a tile of queries of one task
// against the keys/values of a K/V block, with the streaming (online)
// softmax, and the result merged into the member's running (O, LSE) with the
// log-sum-exp merge (SPEC 3). One team per (batch, work item); the Q tile,
// a K^T tile, a V tile, the score tile and the accumulator live in team
// scratch, so nothing larger than a tile is ever formed.

#include <api/RingAttn_Options.hpp>
#include <core/RingAttn_Types.hpp>
#include <core/detail/RingAttn_KokkosCompat.hpp>
#include <kernels/detail/RingAttn_BlockKernelHost.hpp>
#include <kernels/detail/RingAttn_BlockTask.hpp>
#include <kernels/detail/RingAttn_FastExp.hpp>
#include <kernels/detail/RingAttn_Merge.hpp>

#include <algorithm>
#include <climits>
#include <cstdint>

namespace ringattn::Details {

template <class ExecSpace, class Scalar>
struct BlockAttentionFunctor {
  using memory_space = typename ExecSpace::memory_space;
  using Acc = accumulate_t<Scalar>;
  using member_type = typename Kokkos::TeamPolicy<ExecSpace>::member_type;
  using ScratchView = Kokkos::View<Acc *, typename ExecSpace::scratch_memory_space,
                                   Kokkos::MemoryTraits<Kokkos::Unmanaged>>;

  Kokkos::View<const Scalar ****, Kokkos::LayoutRight, memory_space> q;  // [B, n, H, D]
  Kokkos::View<const Scalar ****, Kokkos::LayoutRight, memory_space> kv; // [2, B, rows, Dkv]
  Kokkos::View<const BlockTask *, memory_space> tasks;
  Kokkos::View<const WorkItem *, memory_space> items;
  Kokkos::View<Scalar ****, Kokkos::LayoutRight, memory_space> o;  // [B, n, H, D]
  Kokkos::View<Scalar ***, Kokkos::LayoutRight, memory_space> lse; // [B, H, n]
  std::int64_t num_items = 0;
  int head_dim = 0;
  int q_tile = 0;
  int k_tile = 0;
  int scratch_level = 0;
  Acc scale = 1;
  bool causal = false;

  KOKKOS_INLINE_FUNCTION static std::size_t scratch_elements(int QT, int KT, int D) {
    // Q, K^T, V, S, accumulator tiles and three per-row vectors
    return std::size_t(QT) * D * 2 + std::size_t(KT) * D * 2 + std::size_t(QT) * KT + 3 * QT;
  }

  KOKKOS_FUNCTION void operator()(const member_type &team) const {
    const Acc ninf = -compat::infinity<Acc>();
    const int D = head_dim, QT = q_tile, KT = k_tile;
    const std::int64_t b = team.league_rank() / num_items;
    const WorkItem item = items(team.league_rank() % num_items);
    const BlockTask task = tasks(item.task);
    const int h = task.head;
    const std::int64_t stride = task.stride;
    const std::int64_t rem = task.q_count - item.q_begin;
    const int nq = rem < QT ? int(rem) : QT;
    const std::int64_t qpos_first = task.q_pos0 + item.q_begin * stride;
    const std::int64_t qpos_last = qpos_first + (nq - 1) * stride;
    const std::int64_t qrow_first = task.q_row0 + item.q_begin * stride;

    ScratchView scratch(team.team_scratch(scratch_level), scratch_elements(QT, KT, D));
    Acc *const qs = scratch.data();              // [QT][D], pre-scaled
    Acc *const kt = qs + QT * D;                 // [D][KT], K transposed
    Acc *const vs = kt + std::size_t(D) * KT;    // [KT][D]
    Acc *const ss = vs + std::size_t(KT) * D;    // [QT][KT] scores, then probabilities
    Acc *const acc = ss + std::size_t(QT) * KT;  // [QT][D] unnormalized output
    Acc *const mrow = acc + std::size_t(QT) * D; // running max
    Acc *const lrow = mrow + QT;                 // running denominator

    Kokkos::parallel_for(Kokkos::TeamThreadRange(team, QT), [&](const int i) {
      const bool valid = i < nq;
      const std::int64_t row = qrow_first + i * stride;
      Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, D), [&](const int d) {
        qs[i * D + d] = valid ? scale * Acc(q(b, row, h, d)) : Acc(0);
        acc[i * D + d] = 0;
      });
      Kokkos::single(Kokkos::PerThread(team), [&]() {
        mrow[i] = ninf;
        lrow[i] = 0;
      });
    });

    for (int r = 0; r < task.num_key_runs; ++r) {
      const KeyRun run = task.key_runs[r];
      for (std::int64_t k0 = 0; k0 < run.count; k0 += KT) {
        const std::int64_t krem = run.count - k0;
        const int nk = krem < KT ? int(krem) : KT;
        const std::int64_t kpos_first = run.pos0 + k0 * stride;
        if (causal && kpos_first > qpos_last) break; // keys only grow from here
        const bool masked = causal && kpos_first + (nk - 1) * stride > qpos_first;

        team.team_barrier(); // previous tile fully consumed
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, KT), [&](const int j) {
          const bool valid = j < nk;
          const std::int64_t row = run.block_row + k0 + j;
          Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, D), [&](const int d) {
            kt[d * KT + j] = valid ? Acc(kv(0, b, row, d)) : Acc(0);
            vs[j * D + d] = valid ? Acc(kv(1, b, row, d)) : Acc(0);
          });
        });
        team.team_barrier();

        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, nq), [&](const int i) {
          Acc *const srow = ss + std::size_t(i) * KT;
          const Acc *const qrow = qs + std::size_t(i) * D;
          Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, KT),
                               [&](const int j) { srow[j] = 0; });
          for (int d = 0; d < D; ++d) {
            const Acc qd = qrow[d];
            const Acc *const krow = kt + std::size_t(d) * KT;
            Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, KT),
                                 [&](const int j) { srow[j] += qd * krow[j]; });
          }
          const std::int64_t qpos = qpos_first + i * stride;
          Acc mx = ninf;
          Kokkos::parallel_reduce(
              Kokkos::ThreadVectorRange(team, KT),
              [&](const int j, Acc &m) {
                const bool keep =
                    j < nk && !(masked && kpos_first + std::int64_t(j) * stride > qpos);
                const Acc s = keep ? srow[j] : ninf;
                srow[j] = s;
                const Acc sm = Details::score_for_max(s); // NaN, +inf: +inf
                m = sm > m ? sm : m;
              },
              Kokkos::Max<Acc>(mx));
          const Acc mold = mrow[i];
          const Acc mnew = mx > mold ? mx : mold;
          if (mnew == ninf) return; // nothing seen yet: state unchanged
          const Acc alpha = Details::exp_nonpositive(mold - mnew); // 0 when mold = -inf
          Acc psum = 0;
          Kokkos::parallel_reduce(
              Kokkos::ThreadVectorRange(team, KT),
              [&](const int j, Acc &sum) {
                const Acc p = Details::score_weight(srow[j], mnew); // NaN, +inf: NaN
                srow[j] = p;
                sum += p;
              },
              psum);
          Acc *const arow = acc + std::size_t(i) * D;
          Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, D),
                               [&](const int d) { arow[d] *= alpha; });
          for (int j = 0; j < nk; ++j) {
            const Acc p = srow[j];
            const Acc *const vrow = vs + std::size_t(j) * D;
            Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, D),
                                 [&](const int d) { arow[d] += p * vrow[d]; });
          }
          Kokkos::single(Kokkos::PerThread(team), [&]() {
            lrow[i] = lrow[i] * alpha + psum;
            mrow[i] = mnew;
          });
        });
      }
    }
    team.team_barrier();

    // Partial (O, LSE) of this tile, merged into the member's running result.
    Kokkos::parallel_for(Kokkos::TeamThreadRange(team, nq), [&](const int i) {
      const Acc l = lrow[i];
      if (l == Acc(0)) return; // saw no key in this block (l is NaN after a NaN score)
      const Acc lse_part = mrow[i] + compat::log(l);
      const std::int64_t row = qrow_first + i * stride;
      const MergeWeights<Acc> w = lse_merge<Acc>(Acc(lse(b, h, row)), lse_part);
      const Acc wb = w.wb / l;
      const Acc *const arow = acc + std::size_t(i) * D;
      Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, D), [&](const int d) {
        o(b, row, h, d) = Scalar(w.wa * Acc(o(b, row, h, d)) + wb * arow[d]);
      });
      Kokkos::single(Kokkos::PerThread(team), [&]() { lse(b, h, row) = Scalar(w.lse); });
    });
  }
};

/// Runs the block kernel: for every work item, its query tile against its
/// task's key runs in `kv`, merged into (o, lse). Rows of different items
/// are disjoint, so items run concurrently without atomics.
template <class ExecSpace, class Scalar>
void block_attention(
    const ExecSpace &exec,
    const Kokkos::View<const Scalar ****, Kokkos::LayoutRight, typename ExecSpace::memory_space> &q,
    const Kokkos::View<const Scalar ****, Kokkos::LayoutRight, typename ExecSpace::memory_space>
        &kv,
    const Kokkos::View<const BlockTask *, typename ExecSpace::memory_space> &tasks,
    const Kokkos::View<const WorkItem *, typename ExecSpace::memory_space> &items,
    const Tensor4<Scalar, typename ExecSpace::memory_space> &o,
    const Tensor3<Scalar, typename ExecSpace::memory_space> &lse, accumulate_t<Scalar> scale,
    bool causal, const Tiling &tiling) {
  using Functor = BlockAttentionFunctor<ExecSpace, Scalar>;
  using Policy = Kokkos::TeamPolicy<ExecSpace>;
  const std::int64_t num_items = std::int64_t(items.extent(0));
  const std::int64_t batch = std::int64_t(q.extent(0));
  if (num_items == 0 || batch == 0) return;
  // One team per (batch entry, item); a league is at most max_league_size
  // teams, so more items are launched in turns (items touch disjoint rows).
  const std::int64_t per_launch =
      std::max<std::int64_t>(1, std::min<std::int64_t>(tiling.max_league_size, INT_MAX) / batch);
  if (num_items > per_launch) {
    for (std::int64_t i0 = 0; i0 < num_items; i0 += per_launch) {
      const Kokkos::View<const WorkItem *, typename ExecSpace::memory_space> part =
          Kokkos::subview(items, Kokkos::make_pair(i0, std::min(num_items, i0 + per_launch)));
      block_attention<ExecSpace, Scalar>(exec, q, kv, tasks, part, o, lse, scale, causal, tiling);
    }
    return;
  }
#ifdef RINGATTN_ENABLE_BLAS
  if constexpr (std::is_same_v<Scalar, float> && compat::is_host_execution_v<ExecSpace>) {
    // The GEMMs take the strided query rows as a leading dimension of
    // stride * H * D, which CBLAS holds in an int.
    std::int64_t max_stride = 1;
    for (std::size_t t = 0; t < tasks.extent(0); ++t)
      max_stride = std::max(max_stride, tasks(t).stride);
    const bool fits_int = max_stride <= std::int64_t(INT_MAX) /
                                            (std::int64_t(q.extent(2)) * std::int64_t(q.extent(3)));
    if (!tiling.portable && fits_int) {
      using HostFunctor = HostBlockAttentionFunctor<ExecSpace>;
      HostFunctor f{q,     kv,    tasks, items, o, lse, num_items, tiling.q_tile, tiling.k_tile,
                    scale, causal};
      const std::size_t bytes = HostFunctor::ScratchView::shmem_size(
          HostFunctor::scratch_elements(tiling.q_tile, tiling.k_tile, int(q.extent(3))));
      SingleThreadedBlas one_blas_thread;
      // Dynamic schedule: causal work items differ in cost (later queries see
      // more keys), and a static split would leave one thread the heavy half.
      using HostPolicy = Kokkos::TeamPolicy<ExecSpace, Kokkos::Schedule<Kokkos::Dynamic>>;
      Kokkos::parallel_for(
          "ringattn::block_attention_host",
          HostPolicy(exec, batch * num_items, 1).set_scratch_size(1, Kokkos::PerTeam(bytes)), f);
      exec.fence();
      return;
    }
  }
#endif
  const int head_dim = int(q.extent(3));
  const std::size_t bytes = Functor::ScratchView::shmem_size(
      Functor::scratch_elements(tiling.q_tile, tiling.k_tile, head_dim));
  const int scratch_level = bytes <= std::size_t(Policy::scratch_size_max(0)) ? 0 : 1;
  // Aggregate initialisation, never default construction then assignment of
  // the Views: the latter crashes with the mdspan-based View of Kokkos 5.x
  // under GCC 12 (Kokkos issue #8187).
  const Functor f{q,
                  kv,
                  tasks,
                  items,
                  o,
                  lse,
                  num_items,
                  head_dim,
                  tiling.q_tile,
                  tiling.k_tile,
                  scratch_level,
                  scale,
                  causal};
  Policy policy(exec, batch * num_items, tiling.team_size, tiling.vector_length);
  Kokkos::parallel_for("ringattn::block_attention",
                       policy.set_scratch_size(scratch_level, Kokkos::PerTeam(bytes)), f);
}

} // namespace ringattn::Details

#endif
