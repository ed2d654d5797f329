#ifndef RINGATTN_PACK_HPP
#define RINGATTN_PACK_HPP

// Gathers the rows an exchange names (PackRun list) from a member's local
// K and V [B, n, Hkv, D] into one contiguous K/V block [2, B, rows, D]:
// one buffer, one message per ring hop. On the receiver, expand_block copies
// the rows that crossed (each once) to every place the kernels read them;
// contract_block sums the backward's partials back the other way.

#include <core/RingAttn_Types.hpp>
#include <kernels/detail/RingAttn_BlockTask.hpp>

#include <cstdint>

namespace ringattn::Details {

template <class ExecSpace, class Scalar>
void pack_block(const ExecSpace &exec,
                const Kokkos::View<const Scalar ****, Kokkos::LayoutStride,
                                   typename ExecSpace::memory_space> &k,
                const Kokkos::View<const Scalar ****, Kokkos::LayoutStride,
                                   typename ExecSpace::memory_space> &v,
                const Kokkos::View<const PackRun *, typename ExecSpace::memory_space> &runs,
                const Tensor4<Scalar, typename ExecSpace::memory_space> &block) {
  const std::int64_t batch = std::int64_t(block.extent(1));
  const std::int64_t rows = std::int64_t(block.extent(2));
  const int D = int(block.extent(3));
  const std::int64_t num_runs = std::int64_t(runs.extent(0));
  if (rows == 0 || batch == 0) return;
  Kokkos::parallel_for(
      "ringattn::pack_block",
      // 64-bit indices: the default index type is 32 bits on some devices
      Kokkos::RangePolicy<ExecSpace, Kokkos::IndexType<std::int64_t>>(exec, 0, batch * rows),
      KOKKOS_LAMBDA(const std::int64_t idx) {
        const std::int64_t b = idx / rows;
        const std::int64_t row = idx % rows;
        // the run holding `row`: last run with block_row <= row
        std::int64_t lo = 0, hi = num_runs;
        while (hi - lo > 1) {
          const std::int64_t mid = (lo + hi) / 2;
          if (runs(mid).block_row <= row)
            lo = mid;
          else
            hi = mid;
        }
        const PackRun run = runs(lo);
        const std::int64_t src = run.src_row0 + (row - run.block_row) * run.stride;
        for (int d = 0; d < D; ++d) {
          block(0, b, row, d) = k(b, src, run.kv_head, d);
          block(1, b, row, d) = v(b, src, run.kv_head, d);
        }
      });
}

/// block(:, b, dst_row0 + c * dst_stride, :) = wire(:, b, src_row0 + c *
/// src_stride, :) for every run (ExpandRun) and c < count; the runs write
/// disjoint rows, so every row is copied in parallel.
template <class ExecSpace, class Scalar>
void expand_block(const ExecSpace &exec,
                  const Kokkos::View<const Scalar ****, Kokkos::LayoutRight,
                                     typename ExecSpace::memory_space> &wire,
                  const Kokkos::View<const ExpandRun *, typename ExecSpace::memory_space> &runs,
                  std::int64_t elements,
                  const Tensor4<Scalar, typename ExecSpace::memory_space> &block) {
  const std::int64_t batch = std::int64_t(block.extent(1));
  const int D = int(block.extent(3));
  const std::int64_t num_runs = std::int64_t(runs.extent(0));
  if (elements == 0 || batch == 0) return;
  Kokkos::parallel_for(
      "ringattn::expand_block",
      Kokkos::RangePolicy<ExecSpace, Kokkos::IndexType<std::int64_t>>(exec, 0, batch * elements),
      KOKKOS_LAMBDA(const std::int64_t idx) {
        const std::int64_t b = idx / elements;
        const std::int64_t e = idx % elements;
        std::int64_t lo = 0, hi = num_runs; // last run with elem0 <= e
        while (hi - lo > 1) {
          const std::int64_t mid = (lo + hi) / 2;
          if (runs(mid).elem0 <= e)
            lo = mid;
          else
            hi = mid;
        }
        const ExpandRun run = runs(lo);
        const std::int64_t c = e - run.elem0;
        const std::int64_t src = run.src_row0 + c * run.src_stride;
        const std::int64_t dst = run.dst_row0 + c * run.dst_stride;
        for (int d = 0; d < D; ++d) {
          block(0, b, dst, d) = wire(0, b, src, d);
          block(1, b, dst, d) = wire(1, b, src, d);
        }
      });
}

/// The adjoint of expand_block, for the backward's dK/dV partials: wire =
/// 0 (unless `accumulate`: a branch at a time sums onto what the branches
/// before it left), then wire(:, b, src_row0 + c * src_stride, :) += block(:, b, dst_row0 +
/// c * dst_stride, :) for every run in order and c < count. A wire row that
/// several block rows read (one per branch or phase) gets their sum, in run
/// order: one team per (half, batch entry, 16 head dims) walks the runs, its
/// threads splitting the 16 dims the same way for every row, so no two
/// threads touch one element and the order of the sums is fixed (bitwise
/// repeatable on every backend).
template <class ExecSpace, class Acc>
void contract_block(const ExecSpace &exec,
                    const Kokkos::View<const Acc ****, Kokkos::LayoutRight,
                                       typename ExecSpace::memory_space> &block,
                    const Kokkos::View<const ExpandRun *, typename ExecSpace::memory_space> &runs,
                    const Tensor4<Acc, typename ExecSpace::memory_space> &wire,
                    bool accumulate = false) {
  if (!accumulate) Kokkos::deep_copy(exec, wire, Acc(0));
  const std::int64_t batch = std::int64_t(wire.extent(1));
  const std::int64_t D = std::int64_t(wire.extent(3));
  const std::int64_t num_runs = std::int64_t(runs.extent(0));
  constexpr std::int64_t dims = 16; // one 64-byte line of float per team and row
  const std::int64_t chunks = (D + dims - 1) / dims;
  if (batch * D == 0 || num_runs == 0) return;
  using Policy = Kokkos::TeamPolicy<ExecSpace>;
  Kokkos::parallel_for(
      "ringattn::contract_block", Policy(exec, int(2 * batch * chunks), Kokkos::AUTO),
      KOKKOS_LAMBDA(const typename Policy::member_type &team) {
        const std::int64_t league = team.league_rank();
        const int half = int(league / (batch * chunks));
        const std::int64_t b = (league / chunks) % batch;
        const std::int64_t d0 = (league % chunks) * dims;
        const std::int64_t d1 = d0 + dims < D ? d0 + dims : D;
        for (std::int64_t r = 0; r < num_runs; ++r) {
          const ExpandRun run = runs(r);
          for (std::int64_t c = 0; c < run.count; ++c) {
            const std::int64_t src = run.src_row0 + c * run.src_stride;
            const std::int64_t dst = run.dst_row0 + c * run.dst_stride;
            Kokkos::parallel_for(Kokkos::TeamThreadRange(team, d0, d1), [&](const std::int64_t d) {
              wire(half, b, src, d) += block(half, b, dst, d);
            });
          }
        }
      });
}

} // namespace ringattn::Details

#endif
