#ifndef RINGATTN_MPIRING_HPP
#define RINGATTN_MPIRING_HPP

// The MPI ring (docs/SPEC.md section 3, mode mpi): one member per rank of the caller's
// communicator. At step s member p receives from p - s what it needs and sends
// p + s what that member needs (RingAttn_Exchange.hpp); empty hops are not
// made. Only unique (kv head, position) rows cross (the wire of the
// exchange); the receiver expands them into the block its kernels read.
// Non-blocking and double-buffered: the messages of step s + 1 are in
// flight while step s is computed, and MPI_Testall between chunks of the
// block kernel moves them (Open MPI's TCP transport, for one, progresses a
// large message only inside MPI calls). In host memory a wire is sent from
// the caller's K and V in place, through a derived datatype over their rows
// (no send buffer, no pack kernel). Device buffers are packed and staged
// through the host (the MPI need not be CUDA-aware), unless RingAttn was
// configured with RingAttn_ENABLE_CUDA_AWARE_MPI, which hands MPI the device
// buffers. The schedule, the buffers and the private communicator come from
// the plan (ring/RingAttn_RingPlan.hpp).

#include <RingAttn_Config.hpp>
#include <api/RingAttn_Options.hpp>
#include <ring/RingAttn_RingPlan.hpp>
#include <ring/RingAttn_RingStats.hpp>
#include <ring/detail/RingAttn_RingMember.hpp>

#include <Kokkos_Timer.hpp>
#include <mpi.h>

#include <climits>
#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace ringattn::Details {

/// The MPI datatype of a storage type; 16-bit values cross as their bits.
template <class Scalar>
MPI_Datatype mpi_type() {
  if constexpr (std::is_same_v<Scalar, double>)
    return MPI_DOUBLE;
  else if constexpr (is_16bit_storage_v<Scalar>)
    return MPI_UINT16_T;
  else
    return MPI_FLOAT;
}

/// A committed datatype of `count` consecutive `base` elements, one of which
/// makes a message of any length (MPI counts are int; a K/V block of
/// 2 x B x rows x D values can pass 2^31): a struct of `count / chunk` runs
/// of `chunk` elements and one run of the rest. Free with MPI_Type_free (a
/// pending message keeps it alive).
inline MPI_Datatype contiguous_type(std::int64_t count, MPI_Datatype base,
                                    std::int64_t chunk = INT_MAX) {
  const std::int64_t runs = count / chunk, rest = count % chunk;
  if (runs > INT_MAX) throw std::length_error("ringattn: a message too long for MPI");
  MPI_Aint lb = 0, extent = 0;
  MPI_Type_get_extent(base, &lb, &extent);
  MPI_Datatype run_type, runs_type, out;
  MPI_Type_contiguous(int(chunk), base, &run_type);
  MPI_Type_contiguous(int(runs), run_type, &runs_type);
  int lengths[2] = {1, int(rest)};
  MPI_Aint displacements[2] = {0, MPI_Aint(runs * chunk) * extent};
  MPI_Datatype types[2] = {runs_type, base};
  MPI_Type_create_struct(2, lengths, displacements, types, &out);
  MPI_Type_commit(&out);
  MPI_Type_free(&run_type);
  MPI_Type_free(&runs_type);
  return out;
}

/// The wire of `runs` (pack runs in wire-row order, each `count` rows of kv
/// head `kv_head` from local row `src_row0`, `stride` rows apart) read in
/// place from K and V [B, n, Hkv, D] (head dim contiguous): a struct over
/// absolute addresses (send from MPI_BOTTOM) whose type map is the wire
/// [2, B, rows, D] in order, K then V, batch entry by batch entry, run by
/// run. Free with MPI_Type_free (a pending send keeps it).
template <class Scalar, class InView, class Runs>
MPI_Datatype wire_in_place_type(const InView &k, const InView &v, const Runs &runs,
                                std::int64_t batch, std::int64_t dim) {
  const MPI_Datatype base = mpi_type<Scalar>();
  const std::int64_t num_runs = std::int64_t(runs.extent(0));
  // one type per run: `count` rows of D values, `stride` rows apart
  std::vector<MPI_Datatype> run_types(std::size_t(num_runs) * 2);
  for (std::int64_t r = 0; r < num_runs; ++r)
    for (int kv = 0; kv < 2; ++kv) {
      const InView &t = kv == 0 ? k : v;
      const MPI_Aint row_pitch = MPI_Aint(t.stride_1() * sizeof(Scalar));
      if (runs(r).count > INT_MAX || dim > INT_MAX) {
        for (std::int64_t f = 0; f < 2 * r + kv; ++f) MPI_Type_free(&run_types[std::size_t(f)]);
        throw std::length_error("ringattn: a pack run too long for one MPI datatype");
      }
      MPI_Type_create_hvector(int(runs(r).count), int(dim), MPI_Aint(runs(r).stride) * row_pitch,
                              base, &run_types[std::size_t(2 * r + kv)]);
    }
  const std::int64_t entries = 2 * batch * num_runs;
  if (entries > INT_MAX) {
    for (MPI_Datatype &t : run_types) MPI_Type_free(&t);
    throw std::length_error("ringattn: a wire of too many runs for MPI");
  }
  const std::size_t count = std::size_t(entries);
  std::vector<int> lengths(count, 1);
  std::vector<MPI_Aint> addresses(count);
  std::vector<MPI_Datatype> types(count);
  std::size_t e = 0;
  for (int kv = 0; kv < 2; ++kv)
    for (std::int64_t b = 0; b < batch; ++b)
      for (std::int64_t r = 0; r < num_runs; ++r, ++e) {
        const InView &t = kv == 0 ? k : v;
        MPI_Get_address(&t(b, runs(r).src_row0, runs(r).kv_head, 0), &addresses[e]);
        types[e] = run_types[std::size_t(2 * r + kv)];
      }
  MPI_Datatype wire;
  MPI_Type_create_struct(int(entries), lengths.data(), addresses.data(), types.data(), &wire);
  MPI_Type_commit(&wire);
  for (MPI_Datatype &t : run_types) MPI_Type_free(&t);
  return wire;
}

/// Starts a non-blocking send (`is_send`) or receive of `count` values of
/// `base` on `comm`: past MPI's int count, as one element of a datatype
/// that spans them.
inline void start_message(bool is_send, void *data, std::int64_t count, MPI_Datatype base, int peer,
                          int tag, MPI_Comm comm, MPI_Request *req) {
  MPI_Datatype t = base;
  int c = int(count);
  if (count > INT_MAX) {
    t = contiguous_type(count, base);
    c = 1;
  }
  if (is_send)
    MPI_Isend(data, c, t, peer, tag, comm, req);
  else
    MPI_Irecv(data, c, t, peer, tag, comm, req);
  if (t != base) MPI_Type_free(&t); // a pending message keeps it alive
}

/// Starts sending the wire of `out` (a send hop of the plan) from K and V:
/// in place where MPI reads the memory from the host (sends_in_place),
/// else packed into `send` (staged through the host where it must be).
template <class ExecSpace, class Scalar, class InView>
void send_wire(const ExecSpace &exec, const InView &k, const InView &v,
               const HopSchedule<typename ExecSpace::memory_space> &out,
               MessageBuffer<Scalar, typename ExecSpace::memory_space> &send, int dst, int tag,
               MPI_Comm comm, MPI_Request *req) {
  using Mem = typename ExecSpace::memory_space;
  const std::int64_t batch = std::int64_t(k.extent(0)), dim = std::int64_t(k.extent(3));
  if constexpr (sends_in_place<Mem>) {
    MPI_Datatype wire = wire_in_place_type<Scalar>(k, v, out.pack, batch, dim);
    MPI_Isend(MPI_BOTTOM, 1, wire, dst, tag, comm, req);
    MPI_Type_free(&wire); // the pending send keeps it
  } else {
    send.shape(batch, out.rows, dim);
    RingMember<ExecSpace, Scalar>::pack(exec, k, v, out.pack, send.block);
    exec.fence();
    send.to_host();
    start_message(true, send.mpi_data(), 2 * batch * out.rows * dim, mpi_type<Scalar>(), dst, tag,
                  comm, req);
  }
}

/// The MPI ring's forward on `plan` (kind mpi: this rank's hops, its
/// private communicator and buffers).
template <class ExecSpace, class Scalar>
RingStats run_mpi_ring(
    const ExecSpace &exec, RingSchedule<ExecSpace, Scalar> &plan, const MpiRingSettings &options,
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
  const MPI_Comm ring = *plan.comm; // private tag space
  plan.build_forward(exec);         // where a backward made the plan
  const int P = plan.partition.members;
  MemberSchedule<Mem> &me = plan.members.front();
  const int p = me.rank;
  const std::int64_t batch = plan.batch, dim = plan.head_dim;

  RingStats stats;
  stats.resize(P);
  RingMember<ExecSpace, Scalar> member(plan.pattern, plan.partition, p, plan.scale, plan.tiling);
  // The running O: the caller's o, or for 16-bit storage a float copy
  // rounded into it at the end; a float chunk of rows at a time when the
  // member's own block is its only one (consume_in_chunks).
  constexpr bool widened = !std::is_same_v<Acc, Scalar>;
  const bool chunked = !me.chunks.empty();
  // (the plan's buffers: allocated by its first forward)
  const Tensor4<Acc, Mem> o_run = [&] {
    if constexpr (!widened) {
      return o;
    } else {
      const std::size_t rows = chunked ? 0 : o.extent(1);
      return wrap_view<Tensor4<Acc, Mem>>(
          plan.running_o.values(o.extent(0) * rows * o.extent(2) * o.extent(3)).data(), o.extent(0),
          rows, o.extent(2), o.extent(3));
    }
  }();
  std::int64_t chunk = 0;
  for (const Range &r : me.chunk_rows) chunk = std::max(chunk, r.size());
  const Kokkos::View<Acc *, Mem> o_chunk =
      plan.running_o_chunk.values(std::size_t(batch * chunk * o.extent(2) * dim));
  if (chunked)
    RingMember<ExecSpace, Scalar>::reset_lse(exec, lse);
  else
    RingMember<ExecSpace, Scalar>::reset(exec, o_run, lse);

  // The largest piece of a branch's block that a hop's wire expands into (allocated
  // here, on the plan's first forward, not in the ring loop)
  std::int64_t expand_rows = 0;
  for (const HopSchedule<Mem> &hop : me.forward)
    for (const BranchSchedule<Mem> &branch : hop.branches)
      expand_rows = std::max(expand_rows, branch.expand_rows);
  if (expand_rows > 0) plan.expanded.view(batch, expand_rows, dim);

  auto &recv = plan.recv; // wires: rows that cross, each (kv head, position) once
  auto &send = plan.send;
  const MPI_Datatype type = mpi_type<Scalar>();
  auto count_of = [&](std::int64_t rows) { return 2 * batch * rows * dim; };
  struct Step {
    const HopSchedule<Mem> *hop = nullptr;
    MessageBuffer<Scalar, Mem> *buffer = nullptr;
    MPI_Request req[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
  };
  auto post = [&](int s) {
    Step st;
    const int dst = (p + s) % P, src = (p - s + P) % P;
    st.hop = &me.forward[std::size_t(s)];
    st.buffer = &recv[s % 2];
    const HopSchedule<Mem> &out = me.send[std::size_t(s)];
    if (!out.empty() && !options.skip_messages) {
      send_wire(exec, k, v, out, send, dst, s, ring, &st.req[1]);
      // bytes of the wire: unique rows, not the expanded block
      stats.bytes_sent[p] += count_of(out.rows) * std::int64_t(sizeof(Scalar));
    }
    if (!st.hop->empty()) {
      st.buffer->shape(batch, st.hop->rows, dim);
      if (!options.skip_messages)
        start_message(false, st.buffer->mpi_data(), count_of(st.hop->rows), type, src, s, ring,
                      &st.req[0]);
      else // benchmark only: finite values in place of the message (no denormal garbage)
        Kokkos::deep_copy(exec, st.buffer->block, Scalar(0));
    }
    return st;
  };

  // K and V are read by MPI in place (sends_in_place): the caller's work on
  // its instance must be done
  exec.fence();
  using KV = KeyValueRows<Mem, Scalar>;
  // Step 0, the member's own rows: read in place from its K and V (no copy,
  // no buffer; the receive buffers hold only rows that crossed).
  Step current;
  current.hop = &me.forward[0];
  Step pending;
  // Between chunks of the block kernel: let MPI move the pending messages.
  const std::function<void()> progress_messages = [&] {
    int done = 0;
    MPI_Testall(2, pending.req, &done, MPI_STATUSES_IGNORE);
  };
  for (int s = 0; s < P; ++s) {
    if (s > 0) {
      if (!options.overlap) pending = post(s);
      MPI_Waitall(2, pending.req, MPI_STATUSES_IGNORE);
      current = pending;
      pending = Step{};
      current.buffer->from_host();
      if (current.hop->empty())
        ++stats.hops_skipped;
      else
        ++stats.hops_made;
    }
    if (options.overlap && s + 1 < P) pending = post(s + 1);
    const bool in_flight = pending.req[0] != MPI_REQUEST_NULL || pending.req[1] != MPI_REQUEST_NULL;
    const std::function<void()> between = in_flight ? progress_messages : std::function<void()>{};
    if (s == 0 && chunked) { // every other block is empty; no block at all: O = 0
      exec.fence();
      Kokkos::Timer timer;
      member.consume_in_chunks(exec, q, KV::of_member(k, v), me.chunks, me.chunk_rows, o_chunk, o,
                               lse, between);
      exec.fence();
      stats.compute_seconds[p] += timer.seconds();
    } else if (!current.hop->empty()) {
      exec.fence();
      Kokkos::Timer timer;
      // the wire, where it expands a branch at a time into plan.expanded
      typename RingMember<ExecSpace, Scalar>::WireExpansion expansion;
      if (s > 0) expansion = {current.buffer->block, &plan.expanded};
      member.consume(exec, q, s == 0 ? KV::of_member(k, v) : KV::of_block(current.buffer->block),
                     *current.hop, o_run, lse, between, 0, s == 0 ? nullptr : &expansion);
      exec.fence();
      stats.compute_seconds[p] += timer.seconds();
    }
    if (progress) progress(RingProgress{p, P, s + 1, P});
  }
  if constexpr (widened) {
    if (!chunked) RingMember<ExecSpace, Scalar>::to_storage(exec, o_run, o);
  }
  exec.fence();
  return stats;
}

} // namespace ringattn::Details

#endif
