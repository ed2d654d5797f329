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
  // 16-bit storage: a member whose own block is its only one keeps its float
  // running O a chunk of rows at a time (RingMember::consume_in_chunks); the
  // float O of a whole member only where some member receives.
  std::vector<char> chunked(R, 0);
  bool whole_running_o = !widened_o;
  if constexpr (widened_o)
    for (int p = 0; p < R; ++p) {
      chunked[p] =
          RingMember<ExecSpace, Scalar>(pattern, partition, p, scale, tiling).receives_only_own();
      whole_running_o = whole_running_o || !chunked[p];
    }
  const std::int64_t chunk = running_o_chunk_rows(n_max);
  // One member's state at a time; buffers sized for the largest member.
  Kokkos::View<Scalar *, Mem> q_buf("ringattn::q", batch * n_max * H * head_dim);
  Kokkos::View<Acc *, Mem> o_buf("ringattn::o", whole_running_o ? batch * n_max * H * head_dim : 0);
  const bool any_chunked = std::count(chunked.begin(), chunked.end(), 1) > 0;
  Kokkos::View<Acc *, Mem> o_chunk("ringattn::o_chunk",
                                   any_chunked ? batch * chunk * H * head_dim : 0);
  Kokkos::View<Acc *, Mem> lse_buf("ringattn::lse", batch * H * n_max);
  // 16-bit storage: O rounded to the storage type for the MemberIO
  Kokkos::View<Scalar *, Mem> o_store_buf("ringattn::o_storage",
                                          widened_o ? batch * n_max * H * head_dim : 0);
  Kokkos::View<Scalar *, Mem> k_buf("ringattn::k", batch * n_max * Hkv * head_dim);
  Kokkos::View<Scalar *, Mem> v_buf("ringattn::v", batch * n_max * Hkv * head_dim);

  for (int p = 0; p < R; ++p) {
    const std::int64_t n = partition.local_size(p);
    const auto q = wrap_view<T4>(q_buf.data(), batch, n, H, head_dim);
    const auto o = wrap_view<A4>(o_buf.data(), batch, chunked[p] ? 0 : n, H, head_dim);
    const auto o_store = wrap_view<T4>(widened_o ? o_store_buf.data() : nullptr, batch,
                                       widened_o ? n : 0, H, head_dim);
    const auto lse = wrap_view<Tensor3<Acc, Mem>>(lse_buf.data(), batch, H, n);
    io.load_q(p, q);
    RingMember<ExecSpace, Scalar> member(pattern, partition, p, scale, tiling);
    if (chunked[p])
      RingMember<ExecSpace, Scalar>::reset_lse(exec, lse);
    else
      RingMember<ExecSpace, Scalar>::reset(exec, o, lse);
    bool stored = false; // chunked: O written

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
        const auto kv = KeyValueRows<Mem, Scalar>::of_member(k, v);
        if (chunked[p]) { // step 0: every other block is empty
          member.consume_in_chunks(exec, q, kv, ex, {Range{0, n}}, chunk, o_chunk, o_store, lse);
          stored = true;
        } else {
          member.consume(exec, q, kv, ex, o, lse);
        }
        exec.fence();
        stats.compute_seconds[p] += timer.seconds();
      }
      if (progress) progress(RingProgress{p, R, step + 1, R});
    }
    if constexpr (widened_o) {
      if (!chunked[p])
        RingMember<ExecSpace, Scalar>::to_storage(exec, o, o_store);
      else if (!stored) // no block at all: no row sees a key
        Kokkos::deep_copy(exec, o_store, Scalar(0.0f));
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
/// 16-bit storage, the float running O, or a chunk of it). Members run one after another, each
/// on the schedule of the MPI ring, merging in the same order.
template <class ExecSpace, class Scalar>
RingStats run_simulated_ring_in_place(
    const ExecSpace &exec, const Pattern &pattern, const Partition &partition,
    accumulate_t<Scalar> scale, const Tiling &tiling,
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
  const int R = partition.members;
  const std::int64_t batch = std::int64_t(q.extent(0)), head_dim = std::int64_t(q.extent(3));
  RingStats stats;
  stats.resize(R);
  // The running O: the caller's o, or for 16-bit storage a float copy
  // rounded into it member by member; a float chunk of rows at a time for
  // a member whose own block is its only one (RingMember::consume_in_chunks).
  constexpr bool widened = !std::is_same_v<Acc, Scalar>;
  std::vector<char> chunked(R, 0);
  bool whole_running_o = !widened;
  std::int64_t n_max = 0;
  for (int p = 0; p < R; ++p) {
    n_max = std::max(n_max, partition.local_size(p));
    if constexpr (widened) {
      chunked[p] =
          RingMember<ExecSpace, Scalar>(pattern, partition, p, scale, tiling).receives_only_own();
      whole_running_o = whole_running_o || !chunked[p];
    }
  }
  const Tensor4<Acc, Mem> o_run = [&] {
    if constexpr (!widened)
      return o;
    else
      return Tensor4<Acc, Mem>(
          Kokkos::view_alloc("ringattn::o_running", Kokkos::WithoutInitializing), o.extent(0),
          whole_running_o ? o.extent(1) : 0, o.extent(2), o.extent(3));
  }();
  const std::int64_t chunk = running_o_chunk_rows(n_max);
  const bool any_chunked = std::count(chunked.begin(), chunked.end(), 1) > 0;
  const Kokkos::View<Acc *, Mem> o_chunk(
      Kokkos::view_alloc("ringattn::o_chunk", Kokkos::WithoutInitializing),
      any_chunked ? std::size_t(batch * chunk * o.extent(2) * head_dim) : 0);
  if (whole_running_o)
    RingMember<ExecSpace, Scalar>::reset(exec, o_run, lse);
  else
    RingMember<ExecSpace, Scalar>::reset_lse(exec, lse);
  const auto kv = KeyValueRows<Mem, Scalar>::of_member(k, v);
  for (int p = 0; p < R; ++p) {
    RingMember<ExecSpace, Scalar> member(pattern, partition, p, scale, tiling);
    std::vector<Range> rows; // the member's rows, by position
    for (int r = 0; r < partition.num_ranges(); ++r)
      if (partition.range(p, r).size() > 0) rows.push_back(partition.range(p, r));
    bool stored = false; // chunked: O written
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
        if (chunked[p]) { // step 0: every other block is empty
          member.consume_in_chunks(exec, q, kv, ex, rows, chunk, o_chunk, o, lse);
          stored = true;
        } else {
          member.consume(exec, q, kv, ex, o_run, lse);
        }
        exec.fence();
        stats.compute_seconds[p] += timer.seconds();
      }
      if (progress) progress(RingProgress{p, R, step + 1, R});
    }
    if constexpr (widened) {
      if (!chunked[p])
        for (const Range &range : rows)
          RingMember<ExecSpace, Scalar>::to_storage(exec, o_run, range, o, range.begin);
      else if (!stored) // no block at all: no row sees a key, chunks of O = 0
        member.consume_in_chunks(exec, q, kv, Exchange{}, rows, chunk, o_chunk, o, lse);
      exec.fence();
    }
  }
  return stats;
}

} // namespace ringattn::Details

#endif
