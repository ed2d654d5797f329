#ifndef RINGATTN_BLOCKKERNEL_HPP
#define RINGATTN_BLOCKKERNEL_HPP

// The portable block kernel (DESIGN layer 2): a tile of queries of one task
// against the keys/values of a K/V block, with the streaming (online)
// softmax, and the result merged into the member's running (O, LSE) with the
// log-sum-exp merge (SPEC 3). One team per (batch, work item); the Q tile,
// a K^T tile, a V tile, the score tile and the accumulator live in team
// scratch, so nothing larger than a tile is ever formed.

#include <core/RingAttn_KokkosCompat.hpp>
#include <core/RingAttn_Types.hpp>
#include <kernels/RingAttn_BlockKernelHost.hpp>
#include <kernels/RingAttn_BlockTask.hpp>
#include <kernels/RingAttn_FastExp.hpp>
#include <kernels/RingAttn_Merge.hpp>

#include <algorithm>
#include <climits>
#include <cstdint>

namespace ringattn {

/// Tile sizes and team shape of the block kernel.
struct Tiling {
  int q_tile = 64;
  int k_tile = 64;
  int team_size = 1;
  int vector_length = 1;
  /// Use the portable kernel even where the host fast path could run.
  bool portable = false;
  /// Most teams one kernel launch may have (Kokkos league sizes are int):
  /// batch x work items beyond it are launched in turns.
  std::int64_t max_league_size = INT_MAX;
};

namespace Details {

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
                m = s > m ? s : m;
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
                const Acc p = Details::exp_nonpositive(srow[j] - mnew);
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
      if (!(l > 0)) return; // saw no key in this block
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

} // namespace Details

/// Default tiling for an execution space: one thread per team on the host
/// (a team is one core's tile loop), warps of lanes on a GPU.
template <class ExecSpace, class Scalar = float>
Tiling default_tiling([[maybe_unused]] int head_dim) {
  Tiling t;
  if constexpr (compat::is_host_execution_v<ExecSpace>) {
#ifdef RINGATTN_ENABLE_BLAS
    // GEMM tiles of the host fast path (float). Measured with
    // RINGATTN_TILES over 64/128/256 x 256/512/1024 (ringattn_shapes_benchmark,
    // N 4,096, H 8, one thread, best of interleaved rounds on the shared
    // machine), as fractions of the best tiling (dense, causal):
    // D 64: 128 x 256 (0.96, 0.98), 128 x 512 (0.88, 1.00), 256 x 256 (1.00,
    // 0.91); D 128: 128 x 1024 (1.00, 0.98), 128 x 512 (0.75, 1.00).
    t.q_tile = 128;
    t.k_tile = head_dim <= 64 ? 256 : 1024;
#else
    t.q_tile = 64;
    t.k_tile = head_dim <= 64 ? 128 : 64;
#endif
  } else {
    // Rows over threads, keys or head dims over vector lanes. The tiles are
    // halved until the team's scratch fits level 0 (shared memory, 40 KiB in
    // Kokkos 3.4 CUDA): 32 x 32 up to D = 64, 16 x 16 at D = 128, 8 x 8 at
    // D = 256. Larger tiles would spill to level 1 (global memory), where
    // every score and accumulator update is a round trip to L2.
    using Functor = Details::BlockAttentionFunctor<ExecSpace, Scalar>;
    const auto fits = [&] {
      const std::size_t bytes =
          Functor::ScratchView::shmem_size(Functor::scratch_elements(t.q_tile, t.k_tile, head_dim));
      return bytes <= std::size_t(Kokkos::TeamPolicy<ExecSpace>::scratch_size_max(0));
    };
    t.q_tile = 32;
    t.k_tile = 32;
    while (!fits() && (t.q_tile > 8 || t.k_tile > 8)) {
      if (t.q_tile >= t.k_tile && t.q_tile > 8)
        t.q_tile /= 2;
      else
        t.k_tile /= 2;
    }
    t.vector_length = t.k_tile < 32 ? t.k_tile : 32;
    t.team_size = t.q_tile < 256 / t.vector_length ? t.q_tile : 256 / t.vector_length;
  }
  return t;
}

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
  using Functor = Details::BlockAttentionFunctor<ExecSpace, Scalar>;
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
      using HostFunctor = Details::HostBlockAttentionFunctor<ExecSpace>;
      HostFunctor f{q,     kv,    tasks, items, o, lse, num_items, tiling.q_tile, tiling.k_tile,
                    scale, causal};
      const std::size_t bytes = HostFunctor::ScratchView::shmem_size(
          HostFunctor::scratch_elements(tiling.q_tile, tiling.k_tile, int(q.extent(3))));
      Details::SingleThreadedBlas one_blas_thread;
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
  Functor f;
  f.q = q;
  f.kv = kv;
  f.tasks = tasks;
  f.items = items;
  f.o = o;
  f.lse = lse;
  f.num_items = num_items;
  f.head_dim = int(q.extent(3));
  f.q_tile = tiling.q_tile;
  f.k_tile = tiling.k_tile;
  f.scale = scale;
  f.causal = causal;
  const std::size_t bytes =
      Functor::ScratchView::shmem_size(Functor::scratch_elements(f.q_tile, f.k_tile, f.head_dim));
  f.scratch_level = bytes <= std::size_t(Policy::scratch_size_max(0)) ? 0 : 1;
  Policy policy(exec, batch * num_items, tiling.team_size, tiling.vector_length);
  Kokkos::parallel_for("ringattn::block_attention",
                       policy.set_scratch_size(f.scratch_level, Kokkos::PerTeam(bytes)), f);
}

} // namespace ringattn

#endif
