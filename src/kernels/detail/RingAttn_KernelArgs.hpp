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

/// The forward block kernel's arguments (RingAttn_BlockKernel.hpp).
template <class MemorySpace, class Scalar>
struct BlockKernelArgs {
  Kokkos::View<const Scalar ****, Kokkos::LayoutRight, MemorySpace> q;  // [B, n, H, D]
  Kokkos::View<const Scalar ****, Kokkos::LayoutRight, MemorySpace> kv; // [2, B, rows, Dkv]
  Kokkos::View<const BlockTask *, MemorySpace> tasks;
  Kokkos::View<const WorkItem *, MemorySpace> items;
  // The running result, in the accumulate type (float for 16-bit storage)
  Kokkos::View<accumulate_t<Scalar> ****, Kokkos::LayoutRight, MemorySpace> o;  // [B, n, H, D]
  Kokkos::View<accumulate_t<Scalar> ***, Kokkos::LayoutRight, MemorySpace> lse; // [B, H, n]
  std::int64_t num_items = 0;
  int q_tile = 0;
  int k_tile = 0;
  accumulate_t<Scalar> scale = 1;
  bool causal = false;
};

/// The backward kernels' inputs (RingAttn_BackwardKernel.hpp).
template <class ExecSpace, class Scalar>
struct BackwardViews {
  using Mem = typename ExecSpace::memory_space;
  using Acc = accumulate_t<Scalar>;
  Kokkos::View<const Scalar ****, Kokkos::LayoutRight, Mem> q;    // [B, n, H, D]
  Kokkos::View<const Scalar ****, Kokkos::LayoutRight, Mem> dout; // [B, n, H, D]
  Kokkos::View<const Acc ***, Kokkos::LayoutRight, Mem> lse;      // [B, H, n]
  Kokkos::View<const Acc ***, Kokkos::LayoutRight, Mem> delta;    // [B, H, n]
  Kokkos::View<const Scalar ****, Kokkos::LayoutRight, Mem> kv;   // [2, B, rows, D]
};

} // namespace ringattn::Details

#endif
