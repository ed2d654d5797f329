#ifndef RINGATTN_BLOCKLAUNCH_HPP
#define RINGATTN_BLOCKLAUNCH_HPP

// How the block kernels (forward, and the backward's two passes) are
// launched: one team per (batch entry, work item), in turns of at most
// max_league_size teams; the CBLAS host functor where it takes the launch,
// else the portable functor with its tiles in team scratch.

#include <api/RingAttn_Options.hpp>
#include <core/RingAttn_Types.hpp>
#include <core/detail/RingAttn_KokkosCompat.hpp>
#include <kernels/detail/RingAttn_BlasThreads.hpp>
#include <kernels/detail/RingAttn_BlockKernelHost.hpp>
#include <kernels/detail/RingAttn_BlockTask.hpp>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <string>
#include <type_traits>

namespace ringattn::Details {

/// Teams per launch: batch x items, in turns of at most max_league_size.
inline std::int64_t items_per_launch(const Tiling &tiling, std::int64_t batch) {
  return std::max<std::int64_t>(1, std::min<std::int64_t>(tiling.max_league_size, INT_MAX) / batch);
}

/// Calls launch(part) for consecutive parts of `items`, each small enough
/// for one league of batch x part teams (items touch disjoint rows, so the
/// turns may run in any order); nothing when there is no item or no batch.
template <class Item, class Mem, class Launch>
void for_each_launch(const Kokkos::View<const Item *, Mem> &items, std::int64_t batch,
                     const Tiling &tiling, const Launch &launch) {
  const std::int64_t num_items = std::int64_t(items.extent(0));
  if (num_items == 0 || batch == 0) return;
  const std::int64_t per_launch = items_per_launch(tiling, batch);
  if (num_items <= per_launch) {
    launch(items);
    return;
  }
  for (std::int64_t i0 = 0; i0 < num_items; i0 += per_launch) {
    const Kokkos::View<const Item *, Mem> part =
        Kokkos::subview(items, Kokkos::make_pair(i0, std::min(num_items, i0 + per_launch)));
    launch(part);
  }
}

/// Whether the CBLAS host path takes this launch (float on a host space,
/// strided query and key rows addressable by CBLAS's int leading dimension:
/// the GEMMs take them as a leading dimension of stride * row_elements,
/// row_elements the most values between consecutive rows of an operand).
template <class ExecSpace, class Scalar>
bool host_blas_takes(
    [[maybe_unused]] const Kokkos::View<const BlockTask *, typename ExecSpace::memory_space> &tasks,
    [[maybe_unused]] std::int64_t row_elements, [[maybe_unused]] const Tiling &tiling) {
#ifdef RINGATTN_ENABLE_BLAS
  if constexpr (host_tile_type_v<Scalar> && compat::is_host_execution_v<ExecSpace>) {
    if (tiling.portable) return false;
    std::int64_t max_stride = 1;
    for (std::size_t t = 0; t < tasks.extent(0); ++t)
      max_stride = std::max(max_stride, tasks(t).stride);
    return max_stride <= std::int64_t(INT_MAX) / std::max<std::int64_t>(row_elements, 1);
  }
#endif
  return false;
}

/// Runs a portable functor over `league` teams, its tiles (head dim D) in
/// team scratch: level 0 when they fit there, else level 1.
/// make(scratch_level) builds the functor by aggregate initialisation.
template <class Functor, class ExecSpace, class Make>
void launch_portable_teams(const ExecSpace &exec, const std::string &label, std::int64_t league,
                           int D, const Tiling &tiling, const Make &make) {
  using Policy = Kokkos::TeamPolicy<ExecSpace>;
  const std::size_t bytes =
      Functor::ScratchView::shmem_size(Functor::scratch_elements(tiling.q_tile, tiling.k_tile, D));
  const int scratch_level = bytes <= std::size_t(Policy::scratch_size_max(0)) ? 0 : 1;
  const Functor f = make(scratch_level);
  Policy policy(exec, league, tiling.team_size, tiling.vector_length);
  Kokkos::parallel_for(label, policy.set_scratch_size(scratch_level, Kokkos::PerTeam(bytes)), f);
}

#ifdef RINGATTN_ENABLE_BLAS
/// Runs a CBLAS host functor over `league` one-thread teams, its tiles (head
/// dim D) in level-1 scratch, with BLAS itself on one thread.
template <class ExecSpace, class HostFunctor>
void launch_host_teams(const ExecSpace &exec, const std::string &label, std::int64_t league, int D,
                       const Tiling &tiling, const HostFunctor &f) {
  const std::size_t bytes = HostFunctor::ScratchView::shmem_size(
      HostFunctor::scratch_elements(tiling.q_tile, tiling.k_tile, D));
  [[maybe_unused]] const SingleThreadedBlas one_blas_thread;
  // Dynamic schedule, one team at a time: causal work items differ in cost
  // (later queries see more keys), and a static split would leave one
  // thread the heavy half. Each team is a whole query tile (milliseconds),
  // so teams are stolen one by one, where Kokkos' automatic chunk grows to
  // 2-128 teams on leagues of more than 40 teams per thread.
  using HostPolicy = Kokkos::TeamPolicy<ExecSpace, Kokkos::Schedule<Kokkos::Dynamic>>;
  Kokkos::parallel_for(
      label,
      HostPolicy(exec, league, 1).set_chunk_size(1).set_scratch_size(1, Kokkos::PerTeam(bytes)), f);
  exec.fence();
}
#endif

/// Runs a block kernel: one team per (batch entry, item of `items`), in
/// turns (for_each_launch). Where host_blas_takes the launch, the functor
/// make_host(part, num_items) on host_teams, labelled label + "_host"
/// (make_host returns nothing where there is no host functor: without BLAS,
/// or for a storage type the host functor does not take); else the portable functor
/// make_portable(part, num_items, scratch_level), labelled `label`.
template <class ExecSpace, class Scalar, class Item, class MakeHost, class MakePortable>
void launch_block_kernel(
    const ExecSpace &exec, const std::string &label,
    const Kokkos::View<const Item *, typename ExecSpace::memory_space> &items,
    [[maybe_unused]] const Kokkos::View<const BlockTask *, typename ExecSpace::memory_space> &tasks,
    std::int64_t batch, [[maybe_unused]] std::int64_t row_elements, int D, const Tiling &tiling,
    [[maybe_unused]] const MakeHost &make_host, const MakePortable &make_portable) {
  for_each_launch(items, batch, tiling, [&](const auto &part) {
    const std::int64_t num_items = std::int64_t(part.extent(0));
#ifdef RINGATTN_ENABLE_BLAS
    using HostFunctor = decltype(make_host(part, num_items));
    if constexpr (!std::is_void_v<HostFunctor> && compat::is_host_execution_v<ExecSpace>) {
      if (host_blas_takes<ExecSpace, Scalar>(tasks, row_elements, tiling)) {
        launch_host_teams(exec, label + "_host", batch * num_items, D, tiling,
                          make_host(part, num_items));
        return;
      }
    }
#endif
    using Functor = decltype(make_portable(part, num_items, 0));
    launch_portable_teams<Functor>(exec, label, batch * num_items, D, tiling, [&](int level) {
      return make_portable(part, num_items, level);
    });
  });
}

} // namespace ringattn::Details

#endif
