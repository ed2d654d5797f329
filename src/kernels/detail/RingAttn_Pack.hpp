#ifndef RINGATTN_PACK_HPP
#define RINGATTN_PACK_HPP

// Gathers the rows an exchange names (PackRun list) from a member's local
// K and V [B, n, Hkv, D] into one contiguous K/V block [2, B, rows, D]:
// one buffer, one message per ring hop. On the receiver, expand_block copies
// the rows that crossed (each once) to every place the kernels read them.

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

} // namespace ringattn::Details

#endif
