#ifndef RINGATTN_RINGMEMBER_HPP
#define RINGATTN_RINGMEMBER_HPP

// One member of the ring: its running (O, LSE), and what it does with K/V
// rows: pack a wire for another member, expand a wire it received, and
// consume a block or its own K/V (read in place).
// Shared by the simulated and the MPI ring, so both run the same schedule.

#include <RingAttn_Config.hpp>
#include <core/RingAttn_Types.hpp>
#include <core/detail/RingAttn_KokkosCompat.hpp>
#include <kernels/detail/RingAttn_BlockKernel.hpp>
#include <kernels/detail/RingAttn_Pack.hpp>
#include <ring/detail/RingAttn_Exchange.hpp>
#include <ring/detail/RingAttn_HopSchedule.hpp>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace ringattn::Details {

/// A growable device buffer viewed as a K/V block [2, B, rows, D].
template <class Scalar, class MemorySpace>
class BlockBuffer {
public:
  BlockBuffer() = default;
  explicit BlockBuffer(const std::string &label) : label_(label) {}

  /// The block for `rows` rows; reallocates only to grow.
  Tensor4<Scalar, MemorySpace> view(std::int64_t batch, std::int64_t rows, std::int64_t dim) {
    return wrap_view<Tensor4<Scalar, MemorySpace>>(
        values(std::size_t(2 * batch * rows * dim)).data(), 2, batch, rows, dim);
  }
  /// `count` contiguous values; reallocates only to grow.
  Kokkos::View<Scalar *, MemorySpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>
  values(std::size_t count) {
    if (storage_.extent(0) < count)
      storage_ = Kokkos::View<Scalar *, MemorySpace>(
          Kokkos::view_alloc(label_, Kokkos::WithoutInitializing), count);
    return Kokkos::View<Scalar *, MemorySpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>(
        storage_.data(), count);
  }
  std::size_t capacity_bytes() const { return storage_.extent(0) * sizeof(Scalar); }

private:
  std::string label_ = "ringattn::block";
  Kokkos::View<Scalar *, MemorySpace> storage_;
};

/// Whether a wire is sent from the caller's K and V in place (a derived
/// datatype over their rows: no send buffer, no pack kernel): where MPI can
/// read the memory directly from the host.
template <class MemorySpace>
inline constexpr bool sends_in_place =
    Kokkos::SpaceAccessibility<Kokkos::HostSpace, MemorySpace>::accessible;

/// A block buffer plus, where the memory space is not host accessible and the
/// MPI is not CUDA-aware, a host staging copy that MPI reads and writes (the
/// MPI ring's messages; both grow only).
template <class Scalar, class MemorySpace>
struct MessageBuffer {
#ifdef RINGATTN_ENABLE_CUDA_AWARE_MPI
  static constexpr bool staged = false; // MPI reads and writes device memory
#else
  static constexpr bool staged =
      !Kokkos::SpaceAccessibility<Kokkos::HostSpace, MemorySpace>::accessible;
#endif
  BlockBuffer<Scalar, MemorySpace> device;
  BlockBuffer<Scalar, Kokkos::HostSpace> host;
  Tensor4<Scalar, MemorySpace> block;
  Tensor4<Scalar, Kokkos::HostSpace> staging;

  void shape(std::int64_t batch, std::int64_t rows, std::int64_t dim) {
    block = device.view(batch, rows, dim);
    if constexpr (staged) staging = host.view(batch, rows, dim);
  }
  Scalar *mpi_data() {
    if constexpr (staged)
      return staging.data();
    else
      return block.data();
  }
  void to_host() {
    if constexpr (staged) Kokkos::deep_copy(staging, block);
  }
  void from_host() {
    if constexpr (staged) Kokkos::deep_copy(block, staging);
  }
};

template <class ExecSpace, class Scalar>
class RingMember {
public:
  using memory_space = typename ExecSpace::memory_space;
  using Acc = accumulate_t<Scalar>;
  using ConstTensor4 = Kokkos::View<const Scalar ****, Kokkos::LayoutRight, memory_space>;
  /// Q, K and V as the caller holds them: strided (subviews of a packed
  /// projection, say), the head dim contiguous.
  using InTensor4 = Kokkos::View<const Scalar ****, Kokkos::LayoutStride, memory_space>;

  RingMember(const Pattern &pattern, const Partition &partition, int rank, Acc scale,
             const Tiling &tiling)
      : pattern_(pattern), partition_(partition), rank_(rank), scale_(scale), tiling_(tiling) {}

  int rank() const { return rank_; }

  /// O = 0 and LSE = -inf: the state of a row that has seen no key yet.
  /// The running (O, LSE) is in the accumulate type (float for 16-bit
  /// storage); to_storage rounds O to the storage type at the end.
  static void reset(const ExecSpace &exec, const Tensor4<Acc, memory_space> &o,
                    const Tensor3<Acc, memory_space> &lse) {
    Kokkos::deep_copy(exec, o, Acc(0));
    Kokkos::deep_copy(exec, lse, -compat::infinity<Acc>());
  }

  /// LSE = -inf alone (the running O is a chunk: consume_in_chunks).
  static void reset_lse(const ExecSpace &exec, const Tensor3<Acc, memory_space> &lse) {
    Kokkos::deep_copy(exec, lse, -compat::infinity<Acc>());
  }

  /// out = O rounded to the storage type (16-bit storage only).
  static void to_storage(const ExecSpace &exec, const Tensor4<Acc, memory_space> &o,
                         const Tensor4<Scalar, memory_space> &out) {
    to_storage(exec, o, Range{0, std::int64_t(o.extent(1))}, out, 0);
  }
  /// Rows out[:, out_row0 + t - rows.begin] = O[:, t] rounded to the storage
  /// type, t in `rows`.
  static void to_storage(const ExecSpace &exec, const Tensor4<Acc, memory_space> &o,
                         const Range &rows, const Tensor4<Scalar, memory_space> &out,
                         std::int64_t out_row0) {
    // by index, not by span: the caller's out may be a padded LayoutRight view
    const std::int64_t N = rows.size(), H = std::int64_t(o.extent(2)),
                       D = std::int64_t(o.extent(3)), t0 = rows.begin;
    // one (b, t, h) row of D values per index: the index arithmetic once per
    // row, the conversion loop over contiguous values
    const std::int64_t size = std::int64_t(o.extent(0)) * N * H;
    Kokkos::parallel_for(
        "ringattn::o_to_storage",
        Kokkos::RangePolicy<ExecSpace, Kokkos::IndexType<std::int64_t>>(exec, 0, size),
        KOKKOS_LAMBDA(const std::int64_t i) {
          const std::int64_t b = i / (N * H), t = (i / H) % N, h = i % H;
          for (std::int64_t d = 0; d < D; ++d)
            out(b, out_row0 + t, h, d) = Scalar(o(b, t0 + t, h, d));
        });
  }

  /// Packs the wire rows of `hop` (each needed (kv head, row) once; `runs`
  /// its pack runs) from K/V [B, n, Hkv, D] into `wire` [2, B, rows, D].
  static void pack(const ExecSpace &exec, const InTensor4 &k, const InTensor4 &v,
                   const Kokkos::View<const PackRun *, memory_space> &runs,
                   const Tensor4<Scalar, memory_space> &wire) {
    pack_block<ExecSpace, Scalar>(exec, k, v, runs, wire);
  }

  /// A received wire [2, B, hop.rows, D] and the buffer that a branch of a
  /// hop whose wire expands is expanded into (BranchSchedule::expand), one
  /// piece of a branch after another: the largest piece, not the hop's block.
  struct WireExpansion {
    ConstTensor4 wire;
    BlockBuffer<Scalar, memory_space> *expanded = nullptr;
  };

  /// Attends the local queries to the keys of `kv` (a packed block, or a
  /// member's K/V in place for a schedule whose tasks read it in place)
  /// under the branch schedules of `hop`, merging into (o, lse); one launch
  /// per branch, whose tasks touch disjoint rows. A branch that expands
  /// (hop's wire has rows read twice) reads instead its part of the block,
  /// a piece at a time (one BranchSchedule each), expanded from
  /// `expansion`'s wire into its buffer just before the piece's launch.
  /// With `between` (the MPI ring's message progress), each branch's work
  /// items are launched in chunks and `between` runs after each chunk, so
  /// pending messages move while the block is computed (an MPI progresses
  /// large messages only inside MPI calls).
  void consume(const ExecSpace &exec, const InTensor4 &q,
               const KeyValueRows<memory_space, Scalar> &kv, const HopSchedule<memory_space> &hop,
               const Tensor4<Acc, memory_space> &o, const Tensor3<Acc, memory_space> &lse,
               const std::function<void()> &between = {}, std::int64_t o_row0 = 0,
               const WireExpansion *expansion = nullptr) const {
    for (const BranchSchedule<memory_space> &branch : hop.branches) {
      const std::int64_t num_items = std::int64_t(branch.items.extent(0));
      if (num_items == 0) continue;
      KeyValueRows<memory_space, Scalar> branch_kv = kv;
      if (branch.expands()) {
        if (expansion == nullptr || expansion->expanded == nullptr)
          throw std::logic_error("ringattn: a hop whose wire expands needs the wire and a buffer");
        const std::int64_t batch = std::int64_t(expansion->wire.extent(1)),
                           dim = std::int64_t(expansion->wire.extent(3));
        const Tensor4<Scalar, memory_space> block =
            expansion->expanded->view(batch, branch.expand_rows, dim);
        expand_block<ExecSpace, Scalar>(exec, expansion->wire, branch.expand, branch.expand_rows,
                                        block);
        branch_kv = KeyValueRows<memory_space, Scalar>::of_block(block);
      }
      // Chunks of at least 4 items per thread (the tail of a chunk idles
      // threads), at most max_progress_chunks per branch.
      const std::int64_t chunk =
          between
              ? std::max<std::int64_t>(4 * std::int64_t(exec.concurrency()),
                                       (num_items + max_progress_chunks - 1) / max_progress_chunks)
              : num_items;
      for (std::int64_t i0 = 0; i0 < num_items; i0 += chunk) {
        const Kokkos::View<const WorkItem *, memory_space> part =
            Kokkos::subview(branch.items, Kokkos::make_pair(i0, std::min(num_items, i0 + chunk)));
        block_attention<ExecSpace, Scalar>(exec, q, branch_kv, branch.tasks, part, o, lse, scale_,
                                           pattern_.causal, tiling_, o_row0);
        if (between) {
          exec.fence();
          between();
        }
      }
    }
  }

  /// 16-bit storage, for a member whose own block is its only one
  /// (MemberSchedule::receives_only_own): consumes it chunk by chunk of
  /// rows (`chunks`, whose rows are `chunk_rows`), each chunk's running O in
  /// float in `o_chunk` (at least B * rows * H * D values of the largest
  /// chunk) and rounded into `o` when the chunk is done. The float O is
  /// then one chunk, not the member's rows. LSE must have been reset.
  void consume_in_chunks(
      const ExecSpace &exec, const InTensor4 &q, const KeyValueRows<memory_space, Scalar> &kv,
      const std::vector<HopSchedule<memory_space>> &chunks, const std::vector<Range> &chunk_rows,
      const Kokkos::View<Acc *, memory_space> &o_chunk, const Tensor4<Scalar, memory_space> &o,
      const Tensor3<Acc, memory_space> &lse, const std::function<void()> &between = {}) const {
    const std::int64_t B = std::int64_t(o.extent(0)), H = std::int64_t(o.extent(2)),
                       D = std::int64_t(o.extent(3));
    for (std::size_t c = 0; c < chunks.size(); ++c) {
      const Range rows = chunk_rows[c];
      const auto window =
          wrap_view<Tensor4<Acc, memory_space>>(o_chunk.data(), B, rows.size(), H, D);
      Kokkos::deep_copy(exec, window, Acc(0));
      consume(exec, q, kv, chunks[c], window, lse, between, rows.begin);
      to_storage(exec, window, Range{0, rows.size()}, o, rows.begin);
    }
  }

  /// At most this many launches per branch and hop when progressing messages.
  static constexpr std::int64_t max_progress_chunks = 64;

private:
  Pattern pattern_;
  Partition partition_;
  int rank_;
  Acc scale_;
  Tiling tiling_;
};

} // namespace ringattn::Details

#endif
