#ifndef RINGATTN_SIMULATEDRING_HPP
#define RINGATTN_SIMULATEDRING_HPP

// The simulated ring (docs/SPEC.md section 3, mode simulated): R virtual members run one
// after another in one process, on the schedule of the MPI ring. A member's
// rows come from a MemberIO (generated, read from a file, or sliced from
// in-memory views) and its result goes back to it, so the process holds one
// member's state at a time and its memory grows as N/R.

#include <ring/RingAttn_MemberIO.hpp>
#include <ring/RingAttn_RingPlan.hpp>
#include <ring/RingAttn_RingStats.hpp>
#include <ring/detail/RingAttn_RingMember.hpp>

#include <Kokkos_Timer.hpp>

#include <algorithm>
#include <type_traits>

namespace ringattn::Details {

/// A hop the simulated ring makes: counted as the MPI ring would send it
/// (the wire, hop.rows unique rows), the member's own step excepted.
template <class MemorySpace>
void count_hop(RingStats &stats, const HopSchedule<MemorySpace> &hop, int source, int step,
               std::int64_t batch, std::int64_t head_dim, std::size_t scalar_bytes) {
  if (step == 0) return;
  ++stats.hops_made;
  stats.bytes_sent[source] += 2 * batch * hop.rows * head_dim * std::int64_t(scalar_bytes);
}

/// The float running O of a simulated pass for 16-bit storage: whole rows
/// where some member receives a block from another, else (every member's
/// own block its only one) chunks of rows. Returns the largest chunk's rows
/// (0 where no member runs in chunks).
template <class ExecSpace, class Scalar>
std::int64_t largest_chunk(const RingSchedule<ExecSpace, Scalar> &plan, bool &whole_running_o) {
  std::int64_t chunk = 0;
  whole_running_o = !is_16bit_storage_v<Scalar>;
  for (const auto &m : plan.members) {
    if (m.chunks.empty()) whole_running_o = true;
    for (const Range &r : m.chunk_rows) chunk = std::max(chunk, r.size());
  }
  return chunk;
}

/// The simulated ring over rows that `io` provides and receives (plan of
/// kind member_io, which holds no member: each member's hops are built
/// when it starts and freed when it is done, so the process holds one
/// member's state and schedule at a time).
template <class ExecSpace, class Scalar>
RingStats run_simulated_ring(const ExecSpace &exec, const RingSchedule<ExecSpace, Scalar> &plan,
                             MemberIO<Scalar, typename ExecSpace::memory_space> &io,
                             const ProgressCallback &progress = {}) {
  using Mem = typename ExecSpace::memory_space;
  using T4 = Tensor4<Scalar, Mem>;
  using Acc = accumulate_t<Scalar>;
  using A4 = Tensor4<Acc, Mem>;
  constexpr bool widened_o = !std::is_same_v<Acc, Scalar>; // 16-bit storage
  const Partition &partition = plan.partition;
  const int R = partition.members;
  const int H = plan.pattern.heads, Hkv = plan.pattern.kv_heads;
  const std::int64_t batch = plan.batch, head_dim = plan.head_dim;
  RingStats stats;
  stats.resize(R);

  std::int64_t n_max = 0;
  for (int p = 0; p < R; ++p) n_max = std::max(n_max, partition.local_size(p));
  // One member's state at a time; buffers sized for the largest member.
  Kokkos::View<Scalar *, Mem> q_buf("ringattn::q", batch * n_max * H * head_dim);
  Kokkos::View<Acc *, Mem> lse_buf("ringattn::lse", batch * H * n_max);
  Kokkos::View<Scalar *, Mem> k_buf("ringattn::k", batch * n_max * Hkv * head_dim);
  Kokkos::View<Scalar *, Mem> v_buf("ringattn::v", batch * n_max * Hkv * head_dim);
  // 16-bit storage: O rounded to the storage type for the MemberIO
  Kokkos::View<Scalar *, Mem> o_store_buf("ringattn::o_storage",
                                          widened_o ? batch * n_max * H * head_dim : 0);
  // The running O (float for 16-bit storage) of a whole member, or of a
  // chunk of rows for a member whose own block is its only one: allocated
  // when a member first needs it.
  Kokkos::View<Acc *, Mem> o_buf, o_chunk;

  for (int p = 0; p < R; ++p) {
    const MemberSchedule<Mem> me = plan.make_member(exec, p);
    const bool chunked = !me.chunks.empty();
    if (chunked) {
      std::int64_t chunk = 0;
      for (const Range &r : me.chunk_rows) chunk = std::max(chunk, r.size());
      if (std::int64_t(o_chunk.extent(0)) < batch * chunk * H * head_dim)
        o_chunk = Kokkos::View<Acc *, Mem>("ringattn::o_chunk", batch * chunk * H * head_dim);
    } else if (o_buf.extent(0) == 0) {
      o_buf = Kokkos::View<Acc *, Mem>("ringattn::o", batch * n_max * H * head_dim);
    }
    const std::int64_t n = partition.local_size(p);
    const auto q = wrap_view<T4>(q_buf.data(), batch, n, H, head_dim);
    const auto o = wrap_view<A4>(o_buf.data(), batch, chunked ? 0 : n, H, head_dim);
    const auto o_store = wrap_view<T4>(widened_o ? o_store_buf.data() : nullptr, batch,
                                       widened_o ? n : 0, H, head_dim);
    const auto lse = wrap_view<Tensor3<Acc, Mem>>(lse_buf.data(), batch, H, n);
    io.load_q(p, q);
    RingMember<ExecSpace, Scalar> member(plan.pattern, partition, p, plan.scale, plan.tiling);
    if (chunked)
      RingMember<ExecSpace, Scalar>::reset_lse(exec, lse);
    else
      RingMember<ExecSpace, Scalar>::reset(exec, o, lse);

    for (int step = 0; step < R; ++step) {
      const int source = (p - step + R) % R;
      const HopSchedule<Mem> &hop = me.forward[std::size_t(step)];
      if (hop.empty() && !(chunked && step == 0)) {
        if (step > 0) ++stats.hops_skipped;
      } else {
        const std::int64_t nj = partition.local_size(source);
        const auto k = wrap_view<T4>(k_buf.data(), batch, nj, Hkv, head_dim);
        const auto v = wrap_view<T4>(v_buf.data(), batch, nj, Hkv, head_dim);
        if (!hop.empty()) io.load_kv(source, k, v);
        // The source's rows are at hand: the kernels read them in place;
        // the wire (hop.rows unique rows) is what would have crossed.
        count_hop(stats, hop, source, step, batch, head_dim, sizeof(Scalar));
        exec.fence();
        Kokkos::Timer timer;
        const auto kv = KeyValueRows<Mem, Scalar>::of_member(k, v);
        if (chunked) // step 0: every other block is empty; no block: O = 0
          member.consume_in_chunks(exec, q, kv, me.chunks, me.chunk_rows, o_chunk, o_store, lse);
        else
          member.consume(exec, q, kv, hop, o, lse);
        exec.fence();
        stats.compute_seconds[p] += timer.seconds();
      }
      if (progress) progress(RingProgress{p, R, step + 1, R});
    }
    if constexpr (widened_o) {
      if (!chunked) RingMember<ExecSpace, Scalar>::to_storage(exec, o, o_store);
      exec.fence();
      io.store(p, o_store, lse);
    } else {
      io.store(p, o, lse);
    }
  }
  return stats;
}

/// The simulated ring over whole-sequence views that the caller holds
/// (RingAttention::forward in one process, plan of kind in_memory): every
/// member reads Q, K and V in place and writes O and LSE in place, by
/// position, so the pass copies no input and allocates nothing (16-bit
/// storage: the plan's float running O, or a chunk of it, on the plan's
/// first forward). Members run one
/// after another, each on the schedule of the MPI ring, merging in the
/// same order.
template <class ExecSpace, class Scalar>
RingStats run_simulated_ring_in_place(
    const ExecSpace &exec, RingSchedule<ExecSpace, Scalar> &plan,
    const Kokkos::View<const Scalar ****, Kokkos::LayoutStride, typename ExecSpace::memory_space>
        &q,
    const Kokkos::View<const Scalar ****, Kokkos::LayoutStride, typename ExecSpace::memory_space>
        &k,
    const Kokkos::View<const Scalar ****, Kokkos::LayoutStride, typename ExecSpace::memory_space>
        &v,
    const Tensor4<Scalar, typename ExecSpace::memory_space> &o,
    const Tensor3<accumulate_t<Scalar>, typename ExecSpace::memory_space> &lse,
    const ProgressCallback &progress = {}) {
  using Mem = typename ExecSpace::memory_space;
  using Acc = accumulate_t<Scalar>;
  plan.build_forward(exec); // where a backward made the plan
  const Partition &partition = plan.partition;
  const int R = partition.members;
  const std::int64_t batch = plan.batch, head_dim = plan.head_dim;
  RingStats stats;
  stats.resize(R);
  // The running O: the caller's o, or for 16-bit storage a float copy
  // rounded into it member by member; a float chunk of rows at a time for
  // a member whose own block is its only one (RingMember::consume_in_chunks).
  constexpr bool widened = !std::is_same_v<Acc, Scalar>;
  bool whole_running_o = true;
  const std::int64_t chunk = largest_chunk(plan, whole_running_o);
  // (the plan's buffers: allocated by its first forward)
  const Tensor4<Acc, Mem> o_run = [&] {
    if constexpr (!widened) {
      return o;
    } else {
      const std::size_t rows = whole_running_o ? o.extent(1) : 0;
      return wrap_view<Tensor4<Acc, Mem>>(
          plan.running_o.values(o.extent(0) * rows * o.extent(2) * o.extent(3)).data(), o.extent(0),
          rows, o.extent(2), o.extent(3));
    }
  }();
  const Kokkos::View<Acc *, Mem> o_chunk =
      plan.running_o_chunk.values(std::size_t(batch * chunk * o.extent(2) * head_dim));
  if (whole_running_o)
    RingMember<ExecSpace, Scalar>::reset(exec, o_run, lse);
  else
    RingMember<ExecSpace, Scalar>::reset_lse(exec, lse);
  const auto kv = KeyValueRows<Mem, Scalar>::of_member(k, v);
  for (int p = 0; p < R; ++p) {
    const MemberSchedule<Mem> &me = plan.member(p);
    const bool chunked = !me.chunks.empty();
    RingMember<ExecSpace, Scalar> member(plan.pattern, partition, p, plan.scale, plan.tiling);
    for (int step = 0; step < R; ++step) {
      const int source = (p - step + R) % R;
      const HopSchedule<Mem> &hop = me.forward[std::size_t(step)];
      if (hop.empty() && !(chunked && step == 0)) {
        if (step > 0) ++stats.hops_skipped;
      } else {
        count_hop(stats, hop, source, step, batch, head_dim, sizeof(Scalar));
        exec.fence();
        Kokkos::Timer timer;
        if (chunked) // step 0: every other block is empty; no block: chunks of O = 0
          member.consume_in_chunks(exec, q, kv, me.chunks, me.chunk_rows, o_chunk, o, lse);
        else
          member.consume(exec, q, kv, hop, o_run, lse);
        exec.fence();
        stats.compute_seconds[p] += timer.seconds();
      }
      if (progress) progress(RingProgress{p, R, step + 1, R});
    }
    if constexpr (widened) {
      if (!chunked)
        for (const Range &range : me.rows)
          RingMember<ExecSpace, Scalar>::to_storage(exec, o_run, range, o, range.begin);
      exec.fence();
    }
  }
  return stats;
}

} // namespace ringattn::Details

#endif
