#ifndef RINGATTN_BACKWARDKERNEL_HPP
#define RINGATTN_BACKWARDKERNEL_HPP

// The portable backward block kernels (docs/SPEC.md section 7), FlashAttention-2 style: the
// forward's LSE gives every kept pair its probability directly,
//   P_tu = exp(scale q_t.k_u - LSE_t),   Delta_t = dO_t . O_t,
//   dS_tu = P_tu (dO_t . v_u - Delta_t),
//   dQ_t += scale sum_u dS_tu k_u,  dK_u += scale sum_t dS_tu q_t,
//   dV_u += sum_t P_tu dO_t,
// with scores recomputed tile by tile (never an N x N matrix). Two passes,
// each race-free without atomics, so results do not depend on timing:
//  - dQ: one team per (batch, query tile of a task), as the forward's work
//    items; within one branch launch tasks own disjoint dQ rows.
//  - dK/dV: one team per (batch, key tile of a key run); the team loops over
//    every task that reads the run, in a fixed order (GQA heads, zigzag
//    query ranges), and writes the block rows' partial dK/dV
//    [2, B, rows, D]. Block rows of different branches are different rows,
//    so each partial row is written by one team.
// The partials go back to the block's owner, who adds them into its dK/dV
// through the exchange's pack runs (unpack_add_block), in a fixed order.

#include <api/RingAttn_Options.hpp>
#include <core/RingAttn_Types.hpp>
#include <core/detail/RingAttn_KokkosCompat.hpp>
#include <kernels/detail/RingAttn_BackwardKernelHost.hpp>
#include <kernels/detail/RingAttn_BackwardTask.hpp>
#include <kernels/detail/RingAttn_BlockTask.hpp>
#include <kernels/detail/RingAttn_FastExp.hpp>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <map>
#include <vector>

namespace ringattn::Details {

/// The dK/dV pass's work of one branch: key tiles and, per run, the tasks
/// reading it (in task order, so the reduction order is fixed).
struct KeyWork {
  std::vector<KeyWorkItem> items;
  std::vector<std::int64_t> task_index;
};

inline KeyWork make_key_work(const std::vector<BlockTask> &tasks, int k_tile) {
  // Key runs are identified by their first block row (runs of one branch
  // never share rows).
  std::map<std::int64_t, std::vector<std::int64_t>> readers;
  std::map<std::int64_t, std::pair<KeyRun, std::int64_t>> runs;
  for (std::size_t t = 0; t < tasks.size(); ++t)
    for (int r = 0; r < tasks[t].num_key_runs; ++r) {
      const KeyRun &run = tasks[t].key_runs[r];
      readers[run.block_row].push_back(std::int64_t(t));
      runs[run.block_row] = {run, tasks[t].stride};
    }
  KeyWork work;
  for (const auto &[row, list] : readers) {
    const auto &[run, stride] = runs[row];
    const std::int64_t begin = std::int64_t(work.task_index.size());
    work.task_index.insert(work.task_index.end(), list.begin(), list.end());
    const std::int64_t end = std::int64_t(work.task_index.size());
    for (std::int64_t k0 = 0; k0 < run.count; k0 += k_tile)
      work.items.push_back(KeyWorkItem{run, stride, k0, begin, end});
  }
  return work;
}

template <class ExecSpace, class Scalar>
struct BackwardViews {
  using Mem = typename ExecSpace::memory_space;
  using Acc = accumulate_t<Scalar>;
  Kokkos::View<const Scalar ****, Kokkos::LayoutRight, Mem> q;    // [B, n, H, D]
  Kokkos::View<const Scalar ****, Kokkos::LayoutRight, Mem> dout; // [B, n, H, D]
  Kokkos::View<const Scalar ***, Kokkos::LayoutRight, Mem> lse;   // [B, H, n]
  Kokkos::View<const Acc ***, Kokkos::LayoutRight, Mem> delta;    // [B, H, n]
  Kokkos::View<const Scalar ****, Kokkos::LayoutRight, Mem> kv;   // [2, B, rows, D]
};

/// Delta = rowsum(dO * O) per (batch, head, row), in the accumulate type.
template <class ExecSpace, class Scalar>
void backward_delta(
    const ExecSpace &exec,
    const Kokkos::View<const Scalar ****, Kokkos::LayoutRight, typename ExecSpace::memory_space> &o,
    const Kokkos::View<const Scalar ****, Kokkos::LayoutRight, typename ExecSpace::memory_space>
        &dout,
    const Tensor3<accumulate_t<Scalar>, typename ExecSpace::memory_space> &delta) {
  using Acc = accumulate_t<Scalar>;
  const std::int64_t B = std::int64_t(o.extent(0)), n = std::int64_t(o.extent(1));
  const std::int64_t H = std::int64_t(o.extent(2));
  const int D = int(o.extent(3));
  if (B * n * H == 0) return;
  Kokkos::parallel_for(
      "ringattn::backward_delta",
      Kokkos::RangePolicy<ExecSpace, Kokkos::IndexType<std::int64_t>>(exec, 0, B * n * H),
      KOKKOS_LAMBDA(const std::int64_t idx) {
        const std::int64_t b = idx / (n * H), t = (idx / H) % n, h = idx % H;
        Acc sum = 0;
        for (int d = 0; d < D; ++d) sum += Acc(dout(b, t, h, d)) * Acc(o(b, t, h, d));
        delta(b, h, t) = sum;
      });
}

/// Adds a block's partial dK/dV [2, B, rows, D] into the owner's local dK,
/// dV [B, n, Hkv, D] through the pack runs that built the block. A row can
/// appear in several runs (one per branch), so threads split (batch, kv
/// head, d) and each walks the runs in order: no two threads touch one
/// element, and the order of the sums is fixed.
template <class ExecSpace, class Acc>
void unpack_add_block(const ExecSpace &exec,
                      const Kokkos::View<const Acc ****, Kokkos::LayoutRight,
                                         typename ExecSpace::memory_space> &partial,
                      const Kokkos::View<const PackRun *, typename ExecSpace::memory_space> &runs,
                      const Tensor4<Acc, typename ExecSpace::memory_space> &dk,
                      const Tensor4<Acc, typename ExecSpace::memory_space> &dv) {
  const std::int64_t B = std::int64_t(dk.extent(0));
  const std::int64_t G = std::int64_t(dk.extent(2));
  const std::int64_t D = std::int64_t(dk.extent(3));
  const std::int64_t num_runs = std::int64_t(runs.extent(0));
  if (B * G * D == 0 || num_runs == 0) return;
  Kokkos::parallel_for(
      "ringattn::unpack_add_block",
      Kokkos::RangePolicy<ExecSpace, Kokkos::IndexType<std::int64_t>>(exec, 0, B * G * D),
      KOKKOS_LAMBDA(const std::int64_t idx) {
        const std::int64_t b = idx / (G * D), g = (idx / D) % G, d = idx % D;
        for (std::int64_t r = 0; r < num_runs; ++r) {
          const PackRun run = runs(r);
          if (run.kv_head != g) continue;
          for (std::int64_t c = 0; c < run.count; ++c) {
            const std::int64_t src = run.src_row0 + c * run.stride;
            dk(b, src, g, d) += partial(0, b, run.block_row + c, d);
            dv(b, src, g, d) += partial(1, b, run.block_row + c, d);
          }
        }
      });
}

template <class ExecSpace, class Scalar>
struct BackwardDqFunctor {
  using Acc = accumulate_t<Scalar>;
  using member_type = typename Kokkos::TeamPolicy<ExecSpace>::member_type;
  using ScratchView = Kokkos::View<Acc *, typename ExecSpace::scratch_memory_space,
                                   Kokkos::MemoryTraits<Kokkos::Unmanaged>>;

  BackwardViews<ExecSpace, Scalar> in;
  Kokkos::View<const BlockTask *, typename ExecSpace::memory_space> tasks;
  Kokkos::View<const WorkItem *, typename ExecSpace::memory_space> items;
  Tensor4<Acc, typename ExecSpace::memory_space> dq; // [B, n, H, D], accumulated
  std::int64_t num_items = 0;
  int head_dim = 0;
  int q_tile = 0;
  int k_tile = 0;
  int scratch_level = 0;
  Acc scale = 1;
  bool causal = false;

  KOKKOS_INLINE_FUNCTION static std::size_t scratch_elements(int QT, int KT, int D) {
    // Q, dO, dQ tiles; K^T, V^T tiles; dS tile; LSE and Delta per row
    return 3 * std::size_t(QT) * D + 2 * std::size_t(KT) * D + std::size_t(QT) * KT + 2 * QT;
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
    Acc *const qs = scratch.data();             // [QT][D], pre-scaled
    Acc *const dos = qs + std::size_t(QT) * D;  // [QT][D]
    Acc *const dqa = dos + std::size_t(QT) * D; // [QT][D] sum of dS k
    Acc *const kt = dqa + std::size_t(QT) * D;  // [D][KT]
    Acc *const vt = kt + std::size_t(D) * KT;   // [D][KT]
    Acc *const ds = vt + std::size_t(D) * KT;   // [QT][KT]
    Acc *const lrow = ds + std::size_t(QT) * KT;
    Acc *const drow = lrow + QT;

    Kokkos::parallel_for(Kokkos::TeamThreadRange(team, QT), [&](const int i) {
      const bool valid = i < nq;
      const std::int64_t row = qrow_first + i * stride;
      Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, D), [&](const int d) {
        qs[i * D + d] = valid ? scale * Acc(in.q(b, row, h, d)) : Acc(0);
        dos[i * D + d] = valid ? Acc(in.dout(b, row, h, d)) : Acc(0);
        dqa[i * D + d] = 0;
      });
      Kokkos::single(Kokkos::PerThread(team), [&]() {
        lrow[i] = valid ? Acc(in.lse(b, h, row)) : ninf;
        drow[i] = valid ? in.delta(b, h, row) : Acc(0);
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
            kt[d * KT + j] = valid ? Acc(in.kv(0, b, row, d)) : Acc(0);
            vt[d * KT + j] = valid ? Acc(in.kv(1, b, row, d)) : Acc(0);
          });
        });
        team.team_barrier();

        // dS of the tile
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, nq), [&](const int i) {
          const std::int64_t qpos = qpos_first + i * stride;
          const Acc l = lrow[i], dl = drow[i];
          Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, KT), [&](const int j) {
            const bool keep =
                l != ninf && j < nk && !(masked && kpos_first + std::int64_t(j) * stride > qpos);
            Acc s = 0, dp = 0;
            for (int d = 0; d < D; ++d) {
              s += qs[i * D + d] * kt[d * KT + j];
              dp += dos[i * D + d] * vt[d * KT + j];
            }
            const Acc p = keep ? Details::exp_nonpositive(s - l) : Acc(0);
            ds[i * KT + j] = p * (dp - dl);
          });
        });
        team.team_barrier();
        // dQ += dS K
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, nq), [&](const int i) {
          Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, D), [&](const int d) {
            Acc sum = 0;
            for (int j = 0; j < nk; ++j) sum += ds[i * KT + j] * kt[d * KT + j];
            dqa[i * D + d] += sum;
          });
        });
      }
    }
    team.team_barrier();
    Kokkos::parallel_for(Kokkos::TeamThreadRange(team, nq), [&](const int i) {
      const std::int64_t row = qrow_first + i * stride;
      Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, D),
                           [&](const int d) { dq(b, row, h, d) += scale * dqa[i * D + d]; });
    });
  }
};

template <class ExecSpace, class Scalar>
struct BackwardDkvFunctor {
  using Acc = accumulate_t<Scalar>;
  using member_type = typename Kokkos::TeamPolicy<ExecSpace>::member_type;
  using ScratchView = Kokkos::View<Acc *, typename ExecSpace::scratch_memory_space,
                                   Kokkos::MemoryTraits<Kokkos::Unmanaged>>;

  BackwardViews<ExecSpace, Scalar> in;
  Kokkos::View<const BlockTask *, typename ExecSpace::memory_space> tasks;
  Kokkos::View<const KeyWorkItem *, typename ExecSpace::memory_space> items;
  Kokkos::View<const std::int64_t *, typename ExecSpace::memory_space> task_index;
  Tensor4<Acc, typename ExecSpace::memory_space> partial; // [2, B, rows, D], written
  std::int64_t num_items = 0;
  int head_dim = 0;
  int q_tile = 0;
  int k_tile = 0;
  int scratch_level = 0;
  Acc scale = 1;
  bool causal = false;

  KOKKOS_INLINE_FUNCTION static std::size_t scratch_elements(int QT, int KT, int D) {
    // K, V, dK, dV tiles; Q, dO tiles; P and dS tiles; LSE and Delta per row
    return 4 * std::size_t(KT) * D + 2 * std::size_t(QT) * D + 2 * std::size_t(KT) * QT + 2 * QT;
  }

  KOKKOS_FUNCTION void operator()(const member_type &team) const {
    const Acc ninf = -compat::infinity<Acc>();
    const int D = head_dim, QT = q_tile, KT = k_tile;
    const std::int64_t b = team.league_rank() / num_items;
    const KeyWorkItem item = items(team.league_rank() % num_items);
    const std::int64_t stride = item.stride;
    const std::int64_t krem = item.run.count - item.k_begin;
    const int nk = krem < KT ? int(krem) : KT;
    const std::int64_t kpos_first = item.run.pos0 + item.k_begin * stride;
    const std::int64_t kpos_last = kpos_first + (nk - 1) * stride;
    const std::int64_t krow_first = item.run.block_row + item.k_begin;

    ScratchView scratch(team.team_scratch(scratch_level), scratch_elements(QT, KT, D));
    Acc *const ks = scratch.data();             // [KT][D]
    Acc *const vs = ks + std::size_t(KT) * D;   // [KT][D]
    Acc *const dka = vs + std::size_t(KT) * D;  // [KT][D] sum of dS q
    Acc *const dva = dka + std::size_t(KT) * D; // [KT][D] sum of P dO
    Acc *const qs = dva + std::size_t(KT) * D;  // [QT][D]
    Acc *const dos = qs + std::size_t(QT) * D;  // [QT][D]
    Acc *const ps = dos + std::size_t(QT) * D;  // [KT][QT]
    Acc *const ds = ps + std::size_t(KT) * QT;  // [KT][QT]
    Acc *const lrow = ds + std::size_t(KT) * QT;
    Acc *const drow = lrow + QT;

    Kokkos::parallel_for(Kokkos::TeamThreadRange(team, KT), [&](const int j) {
      const bool valid = j < nk;
      Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, D), [&](const int d) {
        ks[j * D + d] = valid ? Acc(in.kv(0, b, krow_first + j, d)) : Acc(0);
        vs[j * D + d] = valid ? Acc(in.kv(1, b, krow_first + j, d)) : Acc(0);
        dka[j * D + d] = 0;
        dva[j * D + d] = 0;
      });
    });

    for (std::int64_t ti = item.task_begin; ti < item.task_end; ++ti) {
      const BlockTask task = tasks(task_index(ti));
      const int h = task.head;
      for (std::int64_t q0 = 0; q0 < task.q_count; q0 += QT) {
        const std::int64_t rem = task.q_count - q0;
        const int nq = rem < QT ? int(rem) : QT;
        const std::int64_t qpos_first = task.q_pos0 + q0 * stride;
        const std::int64_t qpos_last = qpos_first + (nq - 1) * stride;
        if (causal && kpos_first > qpos_last) continue; // every pair masked
        const bool masked = causal && kpos_last > qpos_first;
        const std::int64_t qrow_first = task.q_row0 + q0 * stride;

        team.team_barrier(); // previous query tile fully consumed
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, QT), [&](const int i) {
          const bool valid = i < nq;
          const std::int64_t row = qrow_first + i * stride;
          Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, D), [&](const int d) {
            qs[i * D + d] = valid ? Acc(in.q(b, row, h, d)) : Acc(0);
            dos[i * D + d] = valid ? Acc(in.dout(b, row, h, d)) : Acc(0);
          });
          Kokkos::single(Kokkos::PerThread(team), [&]() {
            lrow[i] = valid ? Acc(in.lse(b, h, row)) : ninf;
            drow[i] = valid ? in.delta(b, h, row) : Acc(0);
          });
        });
        team.team_barrier();

        // P and dS of the tile, transposed (key rows)
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, nk), [&](const int j) {
          const std::int64_t kpos = kpos_first + j * stride;
          Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, QT), [&](const int i) {
            const Acc l = lrow[i];
            const bool keep =
                l != ninf && !(masked && kpos > qpos_first + std::int64_t(i) * stride);
            Acc s = 0, dp = 0;
            for (int d = 0; d < D; ++d) {
              s += ks[j * D + d] * qs[i * D + d];
              dp += vs[j * D + d] * dos[i * D + d];
            }
            const Acc p = keep ? Details::exp_nonpositive(scale * s - l) : Acc(0);
            ps[j * QT + i] = p;
            ds[j * QT + i] = p * (dp - drow[i]);
          });
        });
        team.team_barrier();
        // dV += P^T dO, dK += dS^T Q
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, nk), [&](const int j) {
          Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, D), [&](const int d) {
            Acc sv = 0, sk = 0;
            for (int i = 0; i < nq; ++i) {
              sv += ps[j * QT + i] * dos[i * D + d];
              sk += ds[j * QT + i] * qs[i * D + d];
            }
            dva[j * D + d] += sv;
            dka[j * D + d] += sk;
          });
        });
      }
    }
    team.team_barrier();
    Kokkos::parallel_for(Kokkos::TeamThreadRange(team, nk), [&](const int j) {
      Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, D), [&](const int d) {
        partial(0, b, krow_first + j, d) = scale * dka[j * D + d];
        partial(1, b, krow_first + j, d) = dva[j * D + d];
      });
    });
  }
};

/// Whether the CBLAS host path takes this launch (float on a host space,
/// strided query rows addressable by CBLAS's int leading dimension).
template <class ExecSpace, class Scalar>
bool backward_uses_blas(
    [[maybe_unused]] const Kokkos::View<const BlockTask *, typename ExecSpace::memory_space> &tasks,
    [[maybe_unused]] std::int64_t heads, [[maybe_unused]] std::int64_t dim,
    [[maybe_unused]] const Tiling &tiling) {
#ifdef RINGATTN_ENABLE_BLAS
  if constexpr (std::is_same_v<Scalar, float> && compat::is_host_execution_v<ExecSpace>) {
    if (tiling.portable) return false;
    std::int64_t max_stride = 1;
    for (std::size_t t = 0; t < tasks.extent(0); ++t)
      max_stride = std::max(max_stride, tasks(t).stride);
    return max_stride <= std::int64_t(INT_MAX) / (heads * dim);
  }
#endif
  return false;
}

/// Teams per launch: batch x items, in turns of at most max_league_size.
inline std::int64_t items_per_launch(const Tiling &tiling, std::int64_t batch) {
  return std::max<std::int64_t>(1, std::min<std::int64_t>(tiling.max_league_size, INT_MAX) / batch);
}

/// dQ pass of one branch: dq += contributions of the block's keys.
template <class ExecSpace, class Scalar>
void backward_dq(const ExecSpace &exec, const BackwardViews<ExecSpace, Scalar> &in,
                 const Kokkos::View<const BlockTask *, typename ExecSpace::memory_space> &tasks,
                 const Kokkos::View<const WorkItem *, typename ExecSpace::memory_space> &items,
                 const Tensor4<accumulate_t<Scalar>, typename ExecSpace::memory_space> &dq,
                 accumulate_t<Scalar> scale, bool causal, const Tiling &tiling) {
  const std::int64_t num_items = std::int64_t(items.extent(0));
  const std::int64_t batch = std::int64_t(in.q.extent(0));
  if (num_items == 0 || batch == 0) return;
  const std::int64_t per_launch = items_per_launch(tiling, batch);
  if (num_items > per_launch) {
    for (std::int64_t i0 = 0; i0 < num_items; i0 += per_launch) {
      const Kokkos::View<const WorkItem *, typename ExecSpace::memory_space> part =
          Kokkos::subview(items, Kokkos::make_pair(i0, std::min(num_items, i0 + per_launch)));
      backward_dq<ExecSpace, Scalar>(exec, in, tasks, part, dq, scale, causal, tiling);
    }
    return;
  }
  const int D = int(in.q.extent(3));
#ifdef RINGATTN_ENABLE_BLAS
  if constexpr (std::is_same_v<Scalar, float> && compat::is_host_execution_v<ExecSpace>) {
    if (backward_uses_blas<ExecSpace, Scalar>(tasks, std::int64_t(in.q.extent(2)), D, tiling)) {
      using F = HostBackwardDqFunctor<ExecSpace>;
      F f{in.q, in.dout,   in.lse,        in.delta,      in.kv, tasks, items,
          dq,   num_items, tiling.q_tile, tiling.k_tile, scale, causal};
      const std::size_t bytes =
          F::ScratchView::shmem_size(F::scratch_elements(tiling.q_tile, tiling.k_tile, D));
      SingleThreadedBlas one_blas_thread;
      using HostPolicy = Kokkos::TeamPolicy<ExecSpace, Kokkos::Schedule<Kokkos::Dynamic>>;
      Kokkos::parallel_for(
          "ringattn::backward_dq_host",
          HostPolicy(exec, batch * num_items, 1).set_scratch_size(1, Kokkos::PerTeam(bytes)), f);
      exec.fence();
      return;
    }
  }
#endif
  using Functor = BackwardDqFunctor<ExecSpace, Scalar>;
  using Policy = Kokkos::TeamPolicy<ExecSpace>;
  Functor f;
  f.in = in;
  f.tasks = tasks;
  f.items = items;
  f.dq = dq;
  f.num_items = num_items;
  f.head_dim = D;
  f.q_tile = tiling.q_tile;
  f.k_tile = tiling.k_tile;
  f.scale = scale;
  f.causal = causal;
  const std::size_t bytes =
      Functor::ScratchView::shmem_size(Functor::scratch_elements(f.q_tile, f.k_tile, D));
  f.scratch_level = bytes <= std::size_t(Policy::scratch_size_max(0)) ? 0 : 1;
  Policy policy(exec, batch * num_items, tiling.team_size, tiling.vector_length);
  Kokkos::parallel_for("ringattn::backward_dq",
                       policy.set_scratch_size(f.scratch_level, Kokkos::PerTeam(bytes)), f);
}

/// dK/dV pass of one branch: writes the partial dK/dV of every block row
/// the branch's key runs hold.
template <class ExecSpace, class Scalar>
void backward_dkv(
    const ExecSpace &exec, const BackwardViews<ExecSpace, Scalar> &in,
    const Kokkos::View<const BlockTask *, typename ExecSpace::memory_space> &tasks,
    const Kokkos::View<const KeyWorkItem *, typename ExecSpace::memory_space> &items,
    const Kokkos::View<const std::int64_t *, typename ExecSpace::memory_space> &task_index,
    const Tensor4<accumulate_t<Scalar>, typename ExecSpace::memory_space> &partial,
    accumulate_t<Scalar> scale, bool causal, const Tiling &tiling) {
  const std::int64_t num_items = std::int64_t(items.extent(0));
  const std::int64_t batch = std::int64_t(in.q.extent(0));
  if (num_items == 0 || batch == 0) return;
  const std::int64_t per_launch = items_per_launch(tiling, batch);
  if (num_items > per_launch) {
    for (std::int64_t i0 = 0; i0 < num_items; i0 += per_launch) {
      const Kokkos::View<const KeyWorkItem *, typename ExecSpace::memory_space> part =
          Kokkos::subview(items, Kokkos::make_pair(i0, std::min(num_items, i0 + per_launch)));
      backward_dkv<ExecSpace, Scalar>(exec, in, tasks, part, task_index, partial, scale, causal,
                                      tiling);
    }
    return;
  }
  const int D = int(in.q.extent(3));
#ifdef RINGATTN_ENABLE_BLAS
  if constexpr (std::is_same_v<Scalar, float> && compat::is_host_execution_v<ExecSpace>) {
    if (backward_uses_blas<ExecSpace, Scalar>(tasks, std::int64_t(in.q.extent(2)), D, tiling)) {
      using F = HostBackwardDkvFunctor<ExecSpace>;
      F f{in.q,       in.dout, in.lse,    in.delta,      in.kv,         tasks, items,
          task_index, partial, num_items, tiling.q_tile, tiling.k_tile, scale, causal};
      const std::size_t bytes =
          F::ScratchView::shmem_size(F::scratch_elements(tiling.q_tile, tiling.k_tile, D));
      SingleThreadedBlas one_blas_thread;
      using HostPolicy = Kokkos::TeamPolicy<ExecSpace, Kokkos::Schedule<Kokkos::Dynamic>>;
      Kokkos::parallel_for(
          "ringattn::backward_dkv_host",
          HostPolicy(exec, batch * num_items, 1).set_scratch_size(1, Kokkos::PerTeam(bytes)), f);
      exec.fence();
      return;
    }
  }
#endif
  using Functor = BackwardDkvFunctor<ExecSpace, Scalar>;
  using Policy = Kokkos::TeamPolicy<ExecSpace>;
  Functor f;
  f.in = in;
  f.tasks = tasks;
  f.items = items;
  f.task_index = task_index;
  f.partial = partial;
  f.num_items = num_items;
  f.head_dim = D;
  f.q_tile = tiling.q_tile;
  f.k_tile = tiling.k_tile;
  f.scale = scale;
  f.causal = causal;
  const std::size_t bytes =
      Functor::ScratchView::shmem_size(Functor::scratch_elements(f.q_tile, f.k_tile, D));
  f.scratch_level = bytes <= std::size_t(Policy::scratch_size_max(0)) ? 0 : 1;
  Policy policy(exec, batch * num_items, tiling.team_size, tiling.vector_length);
  Kokkos::parallel_for("ringattn::backward_dkv",
                       policy.set_scratch_size(f.scratch_level, Kokkos::PerTeam(bytes)), f);
}

} // namespace ringattn::Details

#endif
