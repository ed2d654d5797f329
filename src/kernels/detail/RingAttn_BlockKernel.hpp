#ifndef RINGATTN_BLOCKKERNEL_HPP
#define RINGATTN_BLOCKKERNEL_HPP

// The portable block kernel (docs/DESIGN.md layer 2): a tile of queries of one task
// against the keys/values of a K/V block, with the streaming (online)
// softmax, and the result merged into the member's running (O, LSE) with the
// log-sum-exp merge (docs/SPEC.md section 3). One team per (batch, work item); the Q tile,
// a K^T tile, a V tile, the score tile and the accumulator live in team
// scratch, so nothing larger than a tile is ever formed.

#include <api/RingAttn_Options.hpp>
#include <core/RingAttn_Types.hpp>
#include <core/detail/RingAttn_KokkosCompat.hpp>
#include <kernels/detail/RingAttn_BlockKernelHost.hpp>
#include <kernels/detail/RingAttn_BlockLaunch.hpp>
#include <kernels/detail/RingAttn_BlockTask.hpp>
#include <kernels/detail/RingAttn_FastExp.hpp>
#include <kernels/detail/RingAttn_KernelArgs.hpp>
#include <kernels/detail/RingAttn_Merge.hpp>

#include <algorithm>
#include <cstdint>

namespace ringattn::Details {

template <class ExecSpace, class Scalar>
struct BlockAttentionFunctor {
  using memory_space = typename ExecSpace::memory_space;
  using Acc = accumulate_t<Scalar>;
  using member_type = typename Kokkos::TeamPolicy<ExecSpace>::member_type;
  using ScratchView = Kokkos::View<Acc *, typename ExecSpace::scratch_memory_space,
                                   Kokkos::MemoryTraits<Kokkos::Unmanaged>>;

  BlockKernelArgs<memory_space, Scalar> args;
  int head_dim = 0;
  int scratch_level = 0;

  KOKKOS_INLINE_FUNCTION static std::size_t scratch_elements(int QT, int KT, int D) {
    // Q, K^T, V, S, accumulator tiles and three per-row vectors
    return std::size_t(QT) * D * 2 + std::size_t(KT) * D * 2 + std::size_t(QT) * KT + 3 * QT;
  }

  KOKKOS_FUNCTION void operator()(const member_type &team) const {
    const Acc ninf = -compat::infinity<Acc>();
    const int D = head_dim, QT = args.q_tile, KT = args.k_tile;
    const Acc scale = args.scale;
    const QueryTile query =
        QueryTile::of_team(team.league_rank(), args.num_items, args.items, args.tasks);
    const std::int64_t b = query.b, stride = query.stride;
    const int h = query.h, nq = query.nq;
    const int g = args.kv.kv_head(h, int(args.q.extent(2)));
    const std::int64_t row_step = args.kv.row_step(stride);

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
      const std::int64_t row = query.qrow(i);
      Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, D), [&](const int d) {
        qs[i * D + d] = valid ? scale * Acc(args.q(b, row, h, d)) : Acc(0);
        acc[i * D + d] = 0;
      });
      Kokkos::single(Kokkos::PerThread(team), [&]() {
        mrow[i] = ninf;
        lrow[i] = 0;
      });
    });

    for (int r = 0; r < query.task.num_key_runs; ++r) {
      const KeyRun run = query.task.key_runs[r];
      for (std::int64_t k0 = 0; k0 < run.count; k0 += KT) {
        const KeyTile key = KeyTile::of_run(run, k0, stride, KT, row_step);
        const CausalBounds bounds = CausalBounds::of(args.causal, query, key);
        if (bounds.skip) break; // keys only grow from here
        const int nk = key.nk;

        team.team_barrier(); // previous tile fully consumed
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, KT), [&](const int j) {
          const bool valid = j < nk;
          const std::int64_t row = valid ? key.krow(j) : 0;
          Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, D), [&](const int d) {
            kt[d * KT + j] = valid ? Acc(args.kv.k(b, row, g, d)) : Acc(0);
            vs[j * D + d] = valid ? Acc(args.kv.v(b, row, g, d)) : Acc(0);
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
          Acc mx = ninf;
          Kokkos::parallel_reduce(
              Kokkos::ThreadVectorRange(team, KT),
              [&](const int j, Acc &m) {
                const bool keep = j < nk && bounds.keep(query, key, i, j);
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
      const std::int64_t row = query.qrow(i);
      const MergeWeights<Acc> w = lse_merge<Acc>(args.lse(b, h, row), lse_part);
      const Acc wb = w.wb / l;
      const Acc *const arow = acc + std::size_t(i) * D;
      Kokkos::parallel_for(Kokkos::ThreadVectorRange(team, D), [&](const int d) {
        Acc &out = args.o(b, row - args.o_row0, h, d);
        out = w.wa * out + wb * arow[d];
      });
      Kokkos::single(Kokkos::PerThread(team), [&]() { args.lse(b, h, row) = w.lse; });
    });
  }
};

/// Runs the block kernel: for every work item, its query tile against its
/// task's key runs in `kv` (a packed block or a member's K/V in place),
/// merged into (o, lse); o holds rows from o_row0 on. Rows of different items are disjoint, so
/// items run concurrently without atomics.
template <class ExecSpace, class Scalar>
void block_attention(const ExecSpace &exec,
                     const Kokkos::View<const Scalar ****, Kokkos::LayoutStride,
                                        typename ExecSpace::memory_space> &q,
                     const KeyValueRows<typename ExecSpace::memory_space, Scalar> &kv,
                     const Kokkos::View<const BlockTask *, typename ExecSpace::memory_space> &tasks,
                     const Kokkos::View<const WorkItem *, typename ExecSpace::memory_space> &items,
                     const Tensor4<accumulate_t<Scalar>, typename ExecSpace::memory_space> &o,
                     const Tensor3<accumulate_t<Scalar>, typename ExecSpace::memory_space> &lse,
                     accumulate_t<Scalar> scale, bool causal, const Tiling &tiling,
                     std::int64_t o_row0 = 0) {
  const int head_dim = int(q.extent(3));
  // One team per (batch entry, item); a league is at most max_league_size
  // teams, so more items are launched in turns (items touch disjoint rows).
  const auto args = [&](const auto &part, std::int64_t num_items) {
    return BlockKernelArgs<typename ExecSpace::memory_space, Scalar>{
        q, kv, tasks, part, o, lse, num_items, tiling.q_tile, tiling.k_tile, scale, causal, o_row0};
  };
  launch_block_kernel<ExecSpace, Scalar>(
      exec, "ringattn::block_attention", items, tasks, std::int64_t(q.extent(0)),
      std::int64_t(std::max({q.stride_1(), kv.k.stride_1(), kv.v.stride_1()})), head_dim, tiling,
      [&]([[maybe_unused]] const auto &part, [[maybe_unused]] std::int64_t num_items) {
#ifdef RINGATTN_ENABLE_BLAS
        if constexpr (host_tile_type_v<Scalar>) {
          // AMX first (bfloat16), then MKL's 16-bit GEMMs where asked, then
          // the AVX-512 fused tile, then CBLAS sgemm
          const bool amx = std::is_same_v<Scalar, bfloat16_t> && tiling.host_amx &&
                           amx_takes_head_dim(head_dim) && amx_permitted();
          const bool native =
              tiling.native_16bit_gemm && host_native_16bit_gemm && !std::is_same_v<Scalar, float>;
          const bool avx512 = !amx && !native && tiling.host_avx512 && host_avx512_available() &&
                              avx512_takes_head_dim(head_dim);
          return HostBlockAttentionFunctor<ExecSpace, Scalar>{
              args(part, num_items), tiling.native_16bit_gemm, amx, avx512};
        }
#endif
      },
      [&](const auto &part, std::int64_t num_items, int scratch_level) {
        return BlockAttentionFunctor<ExecSpace, Scalar>{args(part, num_items), head_dim,
                                                        scratch_level};
      });
}

} // namespace ringattn::Details

#endif
