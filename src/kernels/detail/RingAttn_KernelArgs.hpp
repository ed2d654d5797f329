#ifndef RINGATTN_KERNELARGS_HPP
#define RINGATTN_KERNELARGS_HPP

// The inputs and outputs of the block kernels, held as one member by both
// the portable functor and its CBLAS host counterpart. Aggregates, built by
// aggregate initialisation only: default construction then assignment of
// Views crashes with the mdspan-based View of Kokkos 5.x under GCC 12
// (Kokkos issue #8187).

#include <core/RingAttn_Types.hpp>
#include <kernels/detail/RingAttn_BlockTask.hpp>

#include <cstdint>

namespace ringattn::Details {

/// Where the forward kernels read keys and values: K and V as [B, rows, G,
/// D], query head h reading kv head h / (H / G). Either a packed K/V block
/// [2, B, rows, D] (G = 1; the keys of a run are consecutive rows) or a
/// member's own K and V [B, n, Hkv, D] read in place, with no copy (the keys
/// of a run are `stride` rows apart, as their positions are; the run's row
/// is the row of its first key: read_keys_in_place, RingAttn_Exchange.hpp).
template <class MemorySpace, class Scalar>
struct KeyValueRows {
  // Strided: a member's K and V may be subviews of the caller's packed
  // projection (the head dim contiguous; RingAttention checks).
  using ConstTensor4 = Kokkos::View<const Scalar ****, Kokkos::LayoutStride, MemorySpace>;
  using Packed = Kokkos::View<const Scalar ****, Kokkos::LayoutRight, MemorySpace>;
  ConstTensor4 k; // [B, rows, G, D]
  ConstTensor4 v; // [B, rows, G, D]
  bool in_place = false;

  /// Rows between consecutive keys of a run whose positions step `stride`.
  KOKKOS_INLINE_FUNCTION std::int64_t row_step(std::int64_t stride) const {
    return in_place ? stride : 1;
  }
  /// The kv head (index into G) that query head h of H reads.
  KOKKOS_INLINE_FUNCTION int kv_head(int h, int heads) const {
    return h / (heads / int(k.extent(2)));
  }

  /// A packed block [2, B, rows, D] (contiguous, as BlockBuffer makes it).
  static KeyValueRows of_block(const Packed &block) {
    const std::size_t B = block.extent(0 + 1), rows = block.extent(2), D = block.extent(3);
    const Scalar *const data = block.data();
    return KeyValueRows{ConstTensor4(Packed(data, B, rows, 1, D)),
                        ConstTensor4(Packed(data + B * rows * D, B, rows, 1, D)), false};
  }
  /// The packed block [2, B, rows, D] that of_block wrapped (not in place).
  Packed block() const { return Packed(k.data(), 2, k.extent(0), k.extent(1), k.extent(3)); }
  /// A member's K and V [B, n, Hkv, D], read in place.
  static KeyValueRows of_member(const ConstTensor4 &k, const ConstTensor4 &v) {
    return KeyValueRows{k, v, true};
  }
};

/// Where the backward kernels add dK/dV, laid out as KeyValueRows reads K
/// and V: a block's partial [2, B, rows, D] (G = 1, a run's keys on
/// consecutive rows), or a member's own dK and dV [B, n, Hkv, D] in place
/// (a run's keys `stride` rows apart), for a block of its own K/V read in
/// place. Contiguous (LayoutRight): the host sweep's chunk partials mirror
/// them element for element.
template <class MemorySpace, class Acc>
struct KeyValueGrads {
  using Tensor4 = Kokkos::View<Acc ****, Kokkos::LayoutRight, MemorySpace>;
  Tensor4 dk;            // [B, rows, G, D]
  Tensor4 dv;            // [B, rows, G, D]
  bool in_place = false; // as the KeyValueRows read: the kernels step both alike

  /// A block's partial [2, B, rows, D] (contiguous).
  static KeyValueGrads of_block(const Tensor4 &partial) {
    const std::size_t B = partial.extent(1), rows = partial.extent(2), D = partial.extent(3);
    Acc *const data = partial.data();
    return KeyValueGrads{Tensor4(data, B, rows, 1, D), Tensor4(data + B * rows * D, B, rows, 1, D),
                         false};
  }
  /// A member's dK and dV [B, n, Hkv, D], added onto in place.
  static KeyValueGrads of_member(const Tensor4 &dk, const Tensor4 &dv) {
    return KeyValueGrads{dk, dv, true};
  }
};

/// The forward block kernel's arguments (RingAttn_BlockKernel.hpp).
template <class MemorySpace, class Scalar>
struct BlockKernelArgs {
  Kokkos::View<const Scalar ****, Kokkos::LayoutStride, MemorySpace> q; // [B, n, H, D]
  KeyValueRows<MemorySpace, Scalar> kv;
  Kokkos::View<const BlockTask *, MemorySpace> tasks;
  Kokkos::View<const WorkItem *, MemorySpace> items;
  // The running result, in the accumulate type (float for 16-bit storage);
  // O's row of local row t is t - o_row0 (a window of rows, o_row0 below)
  Kokkos::View<accumulate_t<Scalar> ****, Kokkos::LayoutRight, MemorySpace> o;  // [B, n, H, D]
  Kokkos::View<accumulate_t<Scalar> ***, Kokkos::LayoutRight, MemorySpace> lse; // [B, H, n]
  std::int64_t num_items = 0;
  int q_tile = 0;
  int k_tile = 0;
  accumulate_t<Scalar> scale = 1;
  bool causal = false;
  /// First row of the window that `o` holds: 0, or the first row of a chunk
  /// (RingMember::consume_own_in_chunks).
  std::int64_t o_row0 = 0;
};

/// The backward kernels' inputs (RingAttn_BackwardKernel.hpp).
template <class ExecSpace, class Scalar>
struct BackwardViews {
  using Mem = typename ExecSpace::memory_space;
  using Acc = accumulate_t<Scalar>;
  // Q and dO as the caller holds them: strided, the head dim contiguous
  Kokkos::View<const Scalar ****, Kokkos::LayoutStride, Mem> q;    // [B, n, H, D]
  Kokkos::View<const Scalar ****, Kokkos::LayoutStride, Mem> dout; // [B, n, H, D]
  Kokkos::View<const Acc ***, Kokkos::LayoutRight, Mem> lse;       // [B, H, n]
  Kokkos::View<const Acc ***, Kokkos::LayoutRight, Mem> delta;     // [B, H, n]
  KeyValueRows<Mem, Scalar> kv; // a block [2, B, rows, D] or the member's K/V in place
};

} // namespace ringattn::Details

#endif
