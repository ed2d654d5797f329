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
//    query ranges), and adds onto the block rows' partial dK/dV
//    [2, B, rows, D] (zeroed by the caller, or holding other branches' sums
//    where they share the rows: the MPI ring's wire), or, for the member's
//    own K/V read in place, onto its dK/dV (KeyValueGrads). Within one
//    launch each (kv head, row) belongs to one team.
// The partials go back to the block's owner, who adds them into its dK/dV
// through the exchange's pack runs (unpack_add_block), in a fixed order.
// On the host path (float, CBLAS) the backward is instead one fused sweep per
// set of tasks that share key runs (backward_fused, docs/backward.md), which
// does a pair's work once; with fewer sets than threads, each set in chunks
// of its query tiles with private dK/dV partials summed in a fixed order.

#include <api/RingAttn_Options.hpp>
#include <core/RingAttn_Types.hpp>
#include <core/detail/RingAttn_KokkosCompat.hpp>
#include <kernels/detail/RingAttn_BackwardKernelHost.hpp>
#include <kernels/detail/RingAttn_BackwardTask.hpp>
#include <kernels/detail/RingAttn_BlockLaunch.hpp>
#include <kernels/detail/RingAttn_BlockTask.hpp>
#include <kernels/detail/RingAttn_FastExp.hpp>
#include <kernels/detail/RingAttn_KernelArgs.hpp>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <vector>

namespace ringattn::Details {

/// The dK/dV pass's work of one branch: key tiles and, per run, the tasks
/// reading it (in task order, so the reduction order is fixed).
struct KeyWork {
  std::vector<KeyWorkItem> items;
  std::vector<std::int64_t> task_index;
};

/// A key run's identity: its kv head and its first row. Runs of one branch
/// never share rows of one kv head; in a block the rows of different kv
/// heads differ too, but read in place (KeyValueRows) the kv heads share
/// row numbers. `heads_per_kv` query heads read each kv head.
using RunKey = std::pair<int, std::int64_t>;
inline RunKey run_key(const BlockTask &task, const KeyRun &run, int heads_per_kv) {
  return RunKey{task.head / heads_per_kv, run.block_row};
}

inline KeyWork make_key_work(const std::vector<BlockTask> &tasks, int k_tile, int heads_per_kv) {
  std::map<RunKey, std::vector<std::int64_t>> readers;
  std::map<RunKey, std::pair<KeyRun, std::int64_t>> runs;
  for (std::size_t t = 0; t < tasks.size(); ++t)
    for (int r = 0; r < tasks[t].num_key_runs; ++r) {
      const KeyRun &run = tasks[t].key_runs[r];
      const RunKey key = run_key(tasks[t], run, heads_per_kv);
      readers[key].push_back(std::int64_t(t));
      runs[key] = {run, tasks[t].stride};
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

/// The fused pass's work of one branch: the tasks grouped into sets closed
/// under sharing a key run (union-find on run_key). Sets come in the order
/// of their first task, tasks in index order.
struct FusedWork {
  std::vector<FusedWorkItem> items;
  std::vector<std::int64_t> task_order;
};

inline FusedWork make_fused_work(const std::vector<BlockTask> &tasks, int heads_per_kv) {
  std::vector<std::int64_t> parent(tasks.size());
  for (std::size_t t = 0; t < tasks.size(); ++t) parent[t] = std::int64_t(t);
  const auto root = [&](std::int64_t t) {
    while (parent[t] != t) t = parent[t] = parent[parent[t]];
    return t;
  };
  std::map<RunKey, std::int64_t> reader; // a run -> a task reading it
  for (std::size_t t = 0; t < tasks.size(); ++t)
    for (int r = 0; r < tasks[t].num_key_runs; ++r) {
      const auto [it, fresh] =
          reader.emplace(run_key(tasks[t], tasks[t].key_runs[r], heads_per_kv), std::int64_t(t));
      if (!fresh) {
        const std::int64_t a = root(it->second), c = root(std::int64_t(t));
        parent[std::max(a, c)] = std::min(a, c); // the set's root is its first task
      }
    }
  std::map<std::int64_t, std::vector<std::int64_t>> sets;
  for (std::size_t t = 0; t < tasks.size(); ++t)
    sets[root(std::int64_t(t))].push_back(std::int64_t(t));
  FusedWork work;
  for (const auto &[first, members] : sets) {
    const std::int64_t begin = std::int64_t(work.task_order.size());
    work.task_order.insert(work.task_order.end(), members.begin(), members.end());
    work.items.push_back(FusedWorkItem{begin, std::int64_t(work.task_order.size())});
  }
  return work;
}

/// Pairs a task set of `work` meets, before causal masking (the fused
/// pass's cost model): per task, its queries times its runs' keys.
inline std::vector<double> fused_set_work(const std::vector<BlockTask> &tasks,
                                          const FusedWork &work) {
  std::vector<double> pairs;
  for (const FusedWorkItem &item : work.items) {
    double sum = 0;
    for (std::int64_t t = item.task_begin; t < item.task_end; ++t) {
      const BlockTask &task = tasks[std::size_t(work.task_order[std::size_t(t)])];
      for (int r = 0; r < task.num_key_runs; ++r)
        sum += double(task.q_count) * double(task.key_runs[r].count);
    }
    pairs.push_back(sum);
  }
  return pairs;
}

/// Pairs of each query tile of `task` (tiles of q_tile queries, in order),
/// causal masking counted: the split's balance.
inline void append_tile_pairs(const BlockTask &task, int q_tile, bool causal,
                              std::vector<double> &pairs) {
  for (std::int64_t q0 = 0; q0 < task.q_count; q0 += q_tile) {
    const QueryTile query = QueryTile::of_task(0, task, q0, task.stride, q_tile);
    double sum = 0;
    for (int r = 0; r < task.num_key_runs; ++r) {
      const KeyRun &run = task.key_runs[r];
      if (!causal) {
        sum += double(query.nq) * double(run.count);
        continue;
      }
      for (int i = 0; i < query.nq; ++i) { // keys at or before the query
        const std::int64_t qpos = query.qpos(i);
        if (qpos >= run.pos0)
          sum += double(std::min(run.count, (qpos - run.pos0) / task.stride + 1));
      }
    }
    pairs.push_back(sum);
  }
}

/// The fused pass's work with every set of `work` cut into at most `chunks`
/// consecutive runs of its query tiles (counted over its tasks in order)
/// of about equal pairs, chunk c of a set tagged c: for fewer sets than
/// threads. Chunks of a set own disjoint dQ rows; their dK/dV go to private
/// partials (FusedWorkItem).
inline std::vector<FusedWorkItem> split_fused_work(const std::vector<BlockTask> &tasks,
                                                   const FusedWork &work, int chunks, int q_tile,
                                                   bool causal) {
  std::vector<FusedWorkItem> items;
  for (const FusedWorkItem &set : work.items) {
    std::vector<double> pairs;
    for (std::int64_t t = set.task_begin; t < set.task_end; ++t)
      append_tile_pairs(tasks[std::size_t(work.task_order[std::size_t(t)])], q_tile, causal, pairs);
    double total = 0;
    for (const double p : pairs) total += p;
    const std::int64_t tiles = std::int64_t(pairs.size());
    std::int64_t begin = 0;
    double sum = 0;
    int c = 0;
    for (std::int64_t i = 0; i < tiles; ++i) {
      sum += pairs[std::size_t(i)];
      if (c + 1 < chunks && i + 1 < tiles && sum >= total * double(c + 1) / chunks) {
        items.push_back(FusedWorkItem{set.task_begin, set.task_end, begin, i + 1, c++});
        begin = i + 1;
      }
    }
    if (begin < tiles)
      items.push_back(FusedWorkItem{set.task_begin, set.task_end, begin, tiles, c});
  }
  return items;
}

/// The fused items cut into `pieces` sequential launches by query tiles
/// (for message progress between them, as the forward's chunks): launch p
/// holds the p-th consecutive share of every item's tiles, so each set's
/// tiles still run in order into the same partial and the result is
/// bitwise the same as one launch.
inline std::vector<std::vector<FusedWorkItem>>
fused_work_pieces(const std::vector<BlockTask> &tasks, const std::vector<std::int64_t> &task_order,
                  const std::vector<FusedWorkItem> &items, int q_tile, int pieces) {
  std::vector<std::vector<FusedWorkItem>> launches(std::size_t(std::max(pieces, 1)));
  for (const FusedWorkItem &item : items) {
    std::int64_t tiles = 0; // the set's tiles, counted over its tasks
    for (std::int64_t t = item.task_begin; t < item.task_end; ++t)
      tiles += (tasks[std::size_t(task_order[std::size_t(t)])].q_count + q_tile - 1) / q_tile;
    const std::int64_t begin = item.tile_begin, end = std::min(item.tile_end, tiles);
    for (int p = 0; p < int(launches.size()); ++p) {
      FusedWorkItem piece = item;
      piece.tile_begin = begin + (end - begin) * p / std::int64_t(launches.size());
      piece.tile_end = begin + (end - begin) * (p + 1) / std::int64_t(launches.size());
      if (piece.tile_begin < piece.tile_end) launches[std::size_t(p)].push_back(piece);
    }
  }
  return launches;
}

/// At most this many sequential launches per branch of the fused backward
/// when it progresses messages between them.
inline constexpr int max_progress_pieces = 64;

/// Whether the host path's fused backward takes a branch whose task sets
/// meet `set_pairs` pairs each, over `batch` entries on `threads` threads.
/// A set is one team's sequential work (dense single-head attention is one
/// set), so the fused pass (10 D flops per pair) wins only if its makespan,
/// the sets dealt in order to the least loaded thread as the dynamic
/// schedule does, stays under the two passes' 14 D of evenly shared work:
/// makespan < 1.4 x total / threads. Always on one thread.
inline bool use_fused_backward(const std::vector<double> &set_pairs, std::int64_t batch,
                               int threads) {
  if (threads <= 1) return true;
  std::vector<double> load(std::size_t(threads), 0.0);
  double total = 0;
  for (std::int64_t b = 0; b < batch; ++b)
    for (const double pairs : set_pairs) {
      *std::min_element(load.begin(), load.end()) += pairs;
      total += pairs;
    }
  const double makespan = *std::max_element(load.begin(), load.end());
  return makespan < 1.4 * total / threads;
}

/// Delta = rowsum(dO * O) per (batch, head, row), in the accumulate type.
template <class ExecSpace, class Scalar>
void backward_delta(const ExecSpace &exec,
                    const Kokkos::View<const Scalar ****, Kokkos::LayoutStride,
                                       typename ExecSpace::memory_space> &o,
                    const Kokkos::View<const Scalar ****, Kokkos::LayoutStride,
                                       typename ExecSpace::memory_space> &dout,
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
/// appear in several runs (one per branch), so one team per (batch, kv
/// head) walks the runs in order, its threads splitting the head dim the
/// same way for every row: no two threads touch one element, the order of
/// the sums is fixed, and a row's D values are read and written
/// contiguously.
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
  using Policy = Kokkos::TeamPolicy<ExecSpace>;
  Kokkos::parallel_for(
      "ringattn::unpack_add_block", Policy(exec, int(B * G), Kokkos::AUTO),
      KOKKOS_LAMBDA(const typename Policy::member_type &team) {
        const std::int64_t b = team.league_rank() / G, g = team.league_rank() % G;
        for (std::int64_t r = 0; r < num_runs; ++r) {
          const PackRun run = runs(r);
          if (run.kv_head != g) continue;
          for (std::int64_t c = 0; c < run.count; ++c) {
            const std::int64_t src = run.src_row0 + c * run.stride, row = run.block_row + c;
            Kokkos::parallel_for(Kokkos::TeamThreadRange(team, D), [&](const std::int64_t d) {
              dk(b, src, g, d) += partial(0, b, row, d);
              dv(b, src, g, d) += partial(1, b, row, d);
            });
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
    const QueryTile query = QueryTile::of_team(team.league_rank(), num_items, items, tasks);
    const std::int64_t b = query.b, stride = query.stride;
    const int h = query.h, nq = query.nq;
    // the kv head read, and its keys' row step (KeyValueRows)
    const int g = in.kv.kv_head(h, int(in.q.extent(2)));
    const std::int64_t row_step = in.kv.row_step(stride);

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
      const std::int64_t row = query.qrow(i);
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

    for (int r = 0; r < query.task.num_key_runs; ++r) {
      const KeyRun run = query.task.key_runs[r];
      for (std::int64_t k0 = 0; k0 < run.count; k0 += KT) {
        const KeyTile key = KeyTile::of_run(run, k0, stride, KT, row_step);
        const CausalBounds bounds = CausalBounds::of(causal, query, key);
        if (bounds.skip) break; // keys only grow from here
        const int nk = key.nk;

        team.team_barrier(); // previous tile fully consumed
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, KT), [&](const int j) {
          const bool valid = j < nk;
          const std::int64_t row = key.krow(j);
          Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, D), [&](const int d) {
            kt[d * KT + j] = valid ? Acc(in.kv.k(b, row, g, d)) : Acc(0);
            vt[d * KT + j] = valid ? Acc(in.kv.v(b, row, g, d)) : Acc(0);
          });
        });
        team.team_barrier();

        // dS of the tile
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, nq), [&](const int i) {
          const Acc l = lrow[i], dl = drow[i];
          Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, KT), [&](const int j) {
            const bool keep = l != ninf && j < nk && bounds.keep(query, key, i, j);
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
      const std::int64_t row = query.qrow(i);
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
  KeyValueGrads<typename ExecSpace::memory_space, Acc> grads; // the key rows' dK/dV, added onto
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
    // the run's kv head (the tasks reading it share it: make_key_work)
    const int g = in.kv.kv_head(tasks(task_index(item.task_begin)).head, int(in.q.extent(2)));
    const KeyTile key = KeyTile::of_run(item.run, item.k_begin, stride, KT, in.kv.row_step(stride));
    const int nk = key.nk;

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
        ks[j * D + d] = valid ? Acc(in.kv.k(b, key.krow(j), g, d)) : Acc(0);
        vs[j * D + d] = valid ? Acc(in.kv.v(b, key.krow(j), g, d)) : Acc(0);
        dka[j * D + d] = 0;
        dva[j * D + d] = 0;
      });
    });

    for (std::int64_t ti = item.task_begin; ti < item.task_end; ++ti) {
      const BlockTask task = tasks(task_index(ti));
      for (std::int64_t q0 = 0; q0 < task.q_count; q0 += QT) {
        const QueryTile query = QueryTile::of_task(b, task, q0, stride, QT);
        const CausalBounds bounds = CausalBounds::of(causal, query, key);
        if (bounds.skip) continue; // every pair masked
        const int h = query.h, nq = query.nq;

        team.team_barrier(); // previous query tile fully consumed
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, QT), [&](const int i) {
          const bool valid = i < nq;
          const std::int64_t row = query.qrow(i);
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
          Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, QT), [&](const int i) {
            const Acc l = lrow[i];
            const bool keep = l != ninf && bounds.keep(query, key, i, j);
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
        grads.dk(b, key.krow(j), g, d) += scale * dka[j * D + d];
        grads.dv(b, key.krow(j), g, d) += dva[j * D + d];
      });
    });
  }
};

/// dQ pass of one branch: dq += contributions of the block's keys.
template <class ExecSpace, class Scalar>
void backward_dq(const ExecSpace &exec, const BackwardViews<ExecSpace, Scalar> &in,
                 const Kokkos::View<const BlockTask *, typename ExecSpace::memory_space> &tasks,
                 const Kokkos::View<const WorkItem *, typename ExecSpace::memory_space> &items,
                 const Tensor4<accumulate_t<Scalar>, typename ExecSpace::memory_space> &dq,
                 accumulate_t<Scalar> scale, bool causal, const Tiling &tiling) {
  const int D = int(in.q.extent(3));
  launch_block_kernel<ExecSpace, Scalar>(
      exec, "ringattn::backward_dq", items, tasks, std::int64_t(in.q.extent(0)),
      std::int64_t(in.q.extent(2)) * D, D, tiling,
      // no host functor: the host path's backward is the fused pass
      [](const auto &, std::int64_t) {},
      [&](const auto &part, std::int64_t num_items, int scratch_level) {
        return BackwardDqFunctor<ExecSpace, Scalar>{
            in,    tasks, part, dq, num_items, D, tiling.q_tile, tiling.k_tile, scratch_level,
            scale, causal};
      });
}

/// Fused pass of one branch on the host path, where it applies (float or
/// 16-bit storage, a host space, the CBLAS path): dq += the block's contributions and the
/// key rows' dK/dV in `grads` (a block's partial, or the member's own dK,
/// dV for its K/V read in place) += theirs, in one sweep. With enough task
/// sets for the threads (use_fused_backward) one team per set; else each
/// set in as many chunks of its query tiles as there are threads, chunks 1,
/// 2, ... into private copies of `grads` that are then summed into it in
/// chunk order (per element, so the result repeats bitwise for a thread
/// count). Returns false, doing nothing, where it does not apply.
template <class ExecSpace, class Scalar>
bool backward_fused(
    [[maybe_unused]] const ExecSpace &exec,
    [[maybe_unused]] const BackwardViews<ExecSpace, Scalar> &in,
    [[maybe_unused]] const std::vector<BlockTask> &branch_tasks,
    [[maybe_unused]] const Kokkos::View<const BlockTask *, typename ExecSpace::memory_space> &tasks,
    [[maybe_unused]] const Tensor4<accumulate_t<Scalar>, typename ExecSpace::memory_space> &dq,
    [[maybe_unused]] const KeyValueGrads<typename ExecSpace::memory_space, accumulate_t<Scalar>>
        &grads,
    [[maybe_unused]] accumulate_t<Scalar> scale, [[maybe_unused]] bool causal,
    [[maybe_unused]] const Tiling &tiling,
    [[maybe_unused]] const std::function<void()> &between = {}) {
#ifdef RINGATTN_ENABLE_BLAS
  // float storage, or 16-bit storage widened a tile at a time (the sums in float either way)
  if constexpr (host_tile_type_v<Scalar> && compat::is_host_execution_v<ExecSpace>) {
    using Mem = typename ExecSpace::memory_space;
    const std::int64_t B = std::int64_t(in.q.extent(0));
    const int D = int(in.q.extent(3));
    // the GEMMs' leading dimensions: stride x the row pitch of Q and of dO
    // (and of K, V, dK, dV read in place)
    const std::int64_t pitch =
        std::int64_t(std::max({in.q.stride_1(), in.dout.stride_1(), in.kv.k.stride_1(),
                               in.kv.v.stride_1(), grads.dk.stride_1(), grads.dv.stride_1()}));
    if (!host_blas_takes<ExecSpace, Scalar>(tasks, pitch, tiling)) return false;
    const FusedWork work =
        make_fused_work(branch_tasks, int(in.q.extent(2)) / int(in.kv.k.extent(2)));
    if (work.items.empty() || B == 0) return true;
    const int threads = exec.concurrency();
    const int chunks =
        use_fused_backward(fused_set_work(branch_tasks, work), B, threads) ? 1 : threads;
    const std::vector<FusedWorkItem> split =
        chunks == 1 ? work.items
                    : split_fused_work(branch_tasks, work, chunks, tiling.q_tile, causal);
    int used = 1; // chunks some set was cut into
    for (const FusedWorkItem &item : split) used = std::max(used, item.chunk + 1);
    const std::int64_t size = std::int64_t(grads.dk.size()); // of dK, and of dV
    const Kokkos::View<float *, Mem> chunk_partial(
        Kokkos::view_alloc(exec, std::string("ringattn::backward_chunk_partial")),
        std::size_t(used - 1) * 2 * std::size_t(size));
    // Host memory: the schedule is used where it is built.
    const Kokkos::View<const std::int64_t *, Mem> order(work.task_order.data(),
                                                        work.task_order.size());
    // With `between` (the MPI ring's message progress): in sequential
    // pieces, `between` after each.
    const std::vector<std::vector<FusedWorkItem>> launches =
        between ? fused_work_pieces(branch_tasks, work.task_order, split, tiling.q_tile,
                                    max_progress_pieces)
                : std::vector<std::vector<FusedWorkItem>>{split};
    for (const std::vector<FusedWorkItem> &launch : launches) {
      if (launch.empty()) continue;
      const Kokkos::View<const FusedWorkItem *, Mem> items(launch.data(), launch.size());
      for_each_launch(items, B, tiling, [&](const auto &part) {
        const std::int64_t num_items = std::int64_t(part.extent(0));
        launch_host_teams(exec, "ringattn::backward_fused_host", B * num_items, D, tiling,
                          HostBackwardFusedFunctor<ExecSpace, Scalar>{
                              in, tasks, part, order, dq, grads, chunk_partial, num_items,
                              tiling.q_tile, tiling.k_tile, scale, causal});
      });
      if (between) {
        exec.fence();
        between();
      }
    }
    if (used > 1) {
      // grads += the chunks' copies, in chunk order, element by element
      float *const dk = grads.dk.data(), *const dv = grads.dv.data();
      const float *const parts = chunk_partial.data();
      Kokkos::parallel_for(
          "ringattn::backward_chunk_sum",
          Kokkos::RangePolicy<ExecSpace, Kokkos::IndexType<std::int64_t>>(exec, 0, size),
          [=](const std::int64_t e) {
            float xk = dk[e], xv = dv[e];
            for (int c = 0; c + 1 < used; ++c) {
              xk += parts[(2 * std::int64_t(c)) * size + e];
              xv += parts[(2 * std::int64_t(c) + 1) * size + e];
            }
            dk[e] = xk;
            dv[e] = xv;
          });
      exec.fence();
    }
    return true;
  }
#endif
  return false;
}

/// dK/dV pass of one branch: adds to `grads` the dK/dV of every key row the
/// branch's key runs hold (one work item per (kv head, row), so no two
/// threads add to one element; as the fused pass, it sums onto what is there).
template <class ExecSpace, class Scalar>
void backward_dkv(
    const ExecSpace &exec, const BackwardViews<ExecSpace, Scalar> &in,
    const Kokkos::View<const BlockTask *, typename ExecSpace::memory_space> &tasks,
    const Kokkos::View<const KeyWorkItem *, typename ExecSpace::memory_space> &items,
    const Kokkos::View<const std::int64_t *, typename ExecSpace::memory_space> &task_index,
    const KeyValueGrads<typename ExecSpace::memory_space, accumulate_t<Scalar>> &grads,
    accumulate_t<Scalar> scale, bool causal, const Tiling &tiling) {
  const int D = int(in.q.extent(3));
  launch_block_kernel<ExecSpace, Scalar>(
      exec, "ringattn::backward_dkv", items, tasks, std::int64_t(in.q.extent(0)),
      std::int64_t(in.q.extent(2)) * D, D, tiling,
      // no host functor: the host path's backward is the fused pass
      [](const auto &, std::int64_t) {},
      [&](const auto &part, std::int64_t num_items, int scratch_level) {
        return BackwardDkvFunctor<ExecSpace, Scalar>{
            in, tasks,         part,          task_index,    grads, num_items,
            D,  tiling.q_tile, tiling.k_tile, scratch_level, scale, causal};
      });
}

} // namespace ringattn::Details

#endif
