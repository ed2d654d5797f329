#ifndef RINGATTN_SIMULATEDRING_HPP
#define RINGATTN_SIMULATEDRING_HPP

// The simulated ring (docs/SPEC.md section 3, mode simulated): R virtual members run one
// after another in one process, on the schedule of the MPI ring. A member's
// rows come from a MemberIO (generated, read from a file, or sliced from
// in-memory views) and its result goes back to it, so the process holds one
// member's state at a time and its memory grows as N/R.

#include <ring/RingAttn_MemberIO.hpp>
#include <ring/RingAttn_RingStats.hpp>
#include <ring/detail/RingAttn_RingMember.hpp>

#include <Kokkos_Timer.hpp>

#include <algorithm>
#include <type_traits>

namespace ringattn::Details {

/// A hop the simulated ring makes: counted as the MPI ring would send it
/// (the wire, ex.rows unique rows), the member's own step excepted.
inline void count_hop(RingStats &stats, const Exchange &ex, int source, int step,
                      std::int64_t batch, std::int64_t head_dim, std::size_t scalar_bytes) {
  if (step == 0) return;
  ++stats.hops_made;
  stats.bytes_sent[source] += 2 * batch * ex.rows * head_dim * std::int64_t(scalar_bytes);
}

/// The simulated ring over rows that `io` provides and receives.
template <class ExecSpace, class Scalar>
RingStats run_simulated_ring(const ExecSpace &exec, const Pattern &pattern,
                             const Partition &partition, accumulate_t<Scalar> scale,
                             const Tiling &tiling, std::int64_t batch, std::int64_t head_dim,
                             MemberIO<Scalar, typename ExecSpace::memory_space> &io,
                             const ProgressCallback &progress = {}) {
  using Mem = typename ExecSpace::memory_space;
  using T4 = Tensor4<Scalar, Mem>;
  using Acc = accumulate_t<Scalar>;
  using A4 = Tensor4<Acc, Mem>;
  constexpr bool widened_o = !std::is_same_v<Acc, Scalar>; // 16-bit storage
  const int R = partition.members;
  const int H = pattern.heads, Hkv = pattern.kv_heads;
  RingStats stats;
  stats.resize(R);

  std::int64_t n_max = 0;
  for (int p = 0; p < R; ++p) n_max = std::max(n_max, partition.local_size(p));
  // One member's state at a time; buffers sized for the largest member.
  Kokkos::View<Scalar *, Mem> q_buf("ringattn::q", batch * n_max * H * head_dim);
  Kokkos::View<Acc *, Mem> o_buf("ringattn::o", batch * n_max * H * head_dim);
  Kokkos::View<Acc *, Mem> lse_buf("ringattn::lse", batch * H * n_max);
  // 16-bit storage: O rounded to the storage type for the MemberIO
  Kokkos::View<Scalar *, Mem> o_store_buf("ringattn::o_storage",
                                          widened_o ? batch * n_max * H * head_dim : 0);
  Kokkos::View<Scalar *, Mem> k_buf("ringattn::k", batch * n_max * Hkv * head_dim);
  Kokkos::View<Scalar *, Mem> v_buf("ringattn::v", batch * n_max * Hkv * head_dim);

  for (int p = 0; p < R; ++p) {
    const std::int64_t n = partition.local_size(p);
    const auto q = wrap_view<T4>(q_buf.data(), batch, n, H, head_dim);
    const auto o = wrap_view<A4>(o_buf.data(), batch, n, H, head_dim);
    const auto lse = wrap_view<Tensor3<Acc, Mem>>(lse_buf.data(), batch, H, n);
    io.load_q(p, q);
    RingMember<ExecSpace, Scalar> member(pattern, partition, p, scale, tiling);
    RingMember<ExecSpace, Scalar>::reset(exec, o, lse);

    for (int step = 0; step < R; ++step) {
      const int source = (p - step + R) % R;
      Exchange ex = member.plan_receive(source);
      if (ex.empty()) {
        if (step > 0) ++stats.hops_skipped;
      } else {
        const std::int64_t nj = partition.local_size(source);
        const auto k = wrap_view<T4>(k_buf.data(), batch, nj, Hkv, head_dim);
        const auto v = wrap_view<T4>(v_buf.data(), batch, nj, Hkv, head_dim);
        io.load_kv(source, k, v);
        // The source's rows are at hand: the kernels read them in place;
        // the wire (ex.rows unique rows) is what would have crossed.
        read_keys_in_place(ex, false);
        count_hop(stats, ex, source, step, batch, head_dim, sizeof(Scalar));
        exec.fence();
        Kokkos::Timer timer;
        member.consume(exec, q, KeyValueRows<Mem, Scalar>::of_member(k, v), ex, o, lse);
        exec.fence();
        stats.compute_seconds[p] += timer.seconds();
      }
      if (progress) progress(RingProgress{p, R, step + 1, R});
    }
    if constexpr (widened_o) {
      const auto o_store = wrap_view<T4>(o_store_buf.data(), batch, n, H, head_dim);
      RingMember<ExecSpace, Scalar>::to_storage(exec, o, o_store);
      exec.fence();
      io.store(p, o_store, lse);
    } else {
      io.store(p, o, lse);
    }
  }
  return stats;
}

/// The simulated ring over whole-sequence views that the caller holds
/// (RingAttention::forward in one process): every member reads Q, K and V in
/// place and writes O and LSE in place, by position, so the pass copies no
/// input and allocates nothing but the schedule and tile scratch (and, for
/// 16-bit storage, the float running O). Members run one after another, each
/// on the schedule of the MPI ring, merging in the same order.
template <class ExecSpace, class Scalar>
RingStats run_simulated_ring_in_place(
    const ExecSpace &exec, const Pattern &pattern, const Partition &partition,
    accumulate_t<Scalar> scale, const Tiling &tiling,
    const Kokkos::View<const Scalar ****, Kokkos::LayoutRight, typename ExecSpace::memory_space> &q,
    const Kokkos::View<const Scalar ****, Kokkos::LayoutRight, typename ExecSpace::memory_space> &k,
    const Kokkos::View<const Scalar ****, Kokkos::LayoutRight, typename ExecSpace::memory_space> &v,
    const Tensor4<Scalar, typename ExecSpace::memory_space> &o,
    const Tensor3<accumulate_t<Scalar>, typename ExecSpace::memory_space> &lse,
    const ProgressCallback &progress = {}) {
  using Mem = typename ExecSpace::memory_space;
  using Acc = accumulate_t<Scalar>;
  const int R = partition.members;
  const std::int64_t batch = std::int64_t(q.extent(0)), head_dim = std::int64_t(q.extent(3));
  RingStats stats;
  stats.resize(R);
  // The running O: the caller's o, or for 16-bit storage a float copy
  // rounded into it at the end.
  const Tensor4<Acc, Mem> o_run = [&] {
    if constexpr (std::is_same_v<Acc, Scalar>)
      return o;
    else
      return Tensor4<Acc, Mem>(
          Kokkos::view_alloc("ringattn::o_running", Kokkos::WithoutInitializing), o.extent(0),
          o.extent(1), o.extent(2), o.extent(3));
  }();
  RingMember<ExecSpace, Scalar>::reset(exec, o_run, lse);
  const auto kv = KeyValueRows<Mem, Scalar>::of_member(k, v);
  for (int p = 0; p < R; ++p) {
    RingMember<ExecSpace, Scalar> member(pattern, partition, p, scale, tiling);
    for (int step = 0; step < R; ++step) {
      const int source = (p - step + R) % R;
      Exchange ex = member.plan_receive(source);
      if (ex.empty()) {
        if (step > 0) ++stats.hops_skipped;
      } else {
        read_keys_in_place(ex, true);
        count_hop(stats, ex, source, step, batch, head_dim, sizeof(Scalar));
        exec.fence();
        Kokkos::Timer timer;
        member.consume(exec, q, kv, ex, o_run, lse);
        exec.fence();
        stats.compute_seconds[p] += timer.seconds();
      }
      if (progress) progress(RingProgress{p, R, step + 1, R});
    }
  }
  if constexpr (!std::is_same_v<Acc, Scalar>) {
    RingMember<ExecSpace, Scalar>::to_storage(exec, o_run, o);
    exec.fence();
  }
  return stats;
}

} // namespace ringattn::Details

#endif
