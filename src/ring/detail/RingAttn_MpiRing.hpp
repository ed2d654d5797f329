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
// large message only inside MPI calls). Device buffers are staged through the host
// (the MPI need not be CUDA-aware), unless RingAttn was configured with
// RingAttn_ENABLE_CUDA_AWARE_MPI, which hands MPI the device buffers.

#include <RingAttn_Config.hpp>
#include <api/RingAttn_Options.hpp>
#include <ring/RingAttn_RingStats.hpp>
#include <ring/detail/RingAttn_RingMember.hpp>

#include <Kokkos_Timer.hpp>
#include <mpi.h>

#include <climits>
#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>

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

/// A block buffer plus, where the memory space is not host accessible and the
/// MPI is not CUDA-aware, a host staging copy that MPI reads and writes.
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
RingStats run_mpi_ring(
    const ExecSpace &exec, MPI_Comm comm, const Pattern &pattern, PartitionKind partition_kind,
    accumulate_t<Scalar> scale, const Tiling &tiling, const MpiRingSettings &options,
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
  using Buffer = MessageBuffer<Scalar, Mem>;
  using Acc = accumulate_t<Scalar>;
  int P = 1, p = 0;
  MPI_Comm_size(comm, &P);
  MPI_Comm_rank(comm, &p);
  const Partition partition(partition_kind, pattern.seq_len, P);
  const std::int64_t batch = std::int64_t(q.extent(0));
  const std::int64_t dim = std::int64_t(q.extent(3));
  const std::int64_t n = partition.local_size(p);
  if (std::int64_t(q.extent(1)) != n || std::int64_t(k.extent(1)) != n ||
      std::int64_t(o.extent(1)) != n || std::int64_t(lse.extent(2)) != n)
    throw std::invalid_argument("ringattn: rank " + std::to_string(p) + " holds " +
                                std::to_string(q.extent(1)) + " rows but the partition gives it " +
                                std::to_string(n));

  MPI_Comm ring;
  MPI_Comm_dup(comm, &ring); // private tag space
  RingStats stats;
  stats.resize(P);
  RingMember<ExecSpace, Scalar> member(pattern, partition, p, scale, tiling);
  // The running O: the caller's o, or for 16-bit storage a float copy
  // rounded into it at the end; a float chunk of rows at a time when the
  // member's own block is its only one (consume_in_chunks).
  constexpr bool widened = !std::is_same_v<Acc, Scalar>;
  const bool chunked = widened && member.receives_only_own();
  const Tensor4<Acc, Mem> o_run = [&] {
    if constexpr (!widened)
      return o;
    else
      return Tensor4<Acc, Mem>(
          Kokkos::view_alloc("ringattn::o_running", Kokkos::WithoutInitializing), o.extent(0),
          chunked ? 0 : o.extent(1), o.extent(2), o.extent(3));
  }();
  const std::int64_t chunk = running_o_chunk_rows(n);
  const Kokkos::View<Acc *, Mem> o_chunk(
      Kokkos::view_alloc("ringattn::o_chunk", Kokkos::WithoutInitializing),
      chunked ? std::size_t(batch * chunk * o.extent(2) * dim) : 0);
  if (chunked)
    RingMember<ExecSpace, Scalar>::reset_lse(exec, lse);
  else
    RingMember<ExecSpace, Scalar>::reset(exec, o_run, lse);

  Buffer recv[2], send; // wires: rows that cross, each (kv head, position) once
  // The block the kernels read, for a hop whose wire holds rows read twice.
  BlockBuffer<Scalar, Mem> expanded("ringattn::expanded");
  const MPI_Datatype type = mpi_type<Scalar>();
  auto count_of = [&](std::int64_t rows) { return 2 * batch * rows * dim; };
  // Non-blocking send or receive of `count` values: past MPI's int count,
  // as one element of a datatype that spans them.
  auto start = [&](auto mpi_call, Scalar *data, std::int64_t count, int peer, int tag,
                   MPI_Request *req) {
    if (count <= INT_MAX) {
      mpi_call(data, int(count), type, peer, tag, ring, req);
      return;
    }
    MPI_Datatype whole = contiguous_type(count, type);
    mpi_call(data, 1, whole, peer, tag, ring, req);
    MPI_Type_free(&whole);
  };
  const auto isend = [](Scalar *d, int c, MPI_Datatype t, int peer, int tag, MPI_Comm cm,
                        MPI_Request *r) { MPI_Isend(d, c, t, peer, tag, cm, r); };
  const auto irecv = [](Scalar *d, int c, MPI_Datatype t, int peer, int tag, MPI_Comm cm,
                        MPI_Request *r) { MPI_Irecv(d, c, t, peer, tag, cm, r); };

  struct Step {
    Exchange ex;
    Buffer *buffer = nullptr;
    MPI_Request req[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
  };
  auto post = [&](int s) {
    Step st;
    const int dst = (p + s) % P, src = (p - s + P) % P;
    st.ex = member.plan_receive(src);
    st.buffer = &recv[s % 2];
    const Exchange out = member.plan_send(dst);
    if (!out.empty() && !options.skip_messages) {
      send.shape(batch, out.rows, dim);
      member.pack(exec, k, v, out, send.block);
      exec.fence();
      send.to_host();
      start(isend, send.mpi_data(), count_of(out.rows), dst, s, &st.req[1]);
      // bytes of the wire: unique rows, not the expanded block
      stats.bytes_sent[p] += count_of(out.rows) * std::int64_t(sizeof(Scalar));
    }
    if (!st.ex.empty()) {
      st.buffer->shape(batch, st.ex.rows, dim);
      if (!options.skip_messages)
        start(irecv, st.buffer->mpi_data(), count_of(st.ex.rows), src, s, &st.req[0]);
      else // benchmark only: finite values in place of the message (no denormal garbage)
        Kokkos::deep_copy(exec, st.buffer->block, Scalar(0));
    }
    return st;
  };

  using KV = KeyValueRows<Mem, Scalar>;
  // Step 0, the member's own rows: read in place from its K and V (no copy,
  // no buffer; the receive buffers hold only rows that crossed).
  Step current;
  current.ex = member.plan_receive(p);
  read_keys_in_place(current.ex, false);
  // chunked with no block at all: no row sees a key, O = 0 (docs/SPEC.md section 1)
  if (chunked && current.ex.empty()) Kokkos::deep_copy(exec, o, Scalar(0.0f));
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
      if (current.ex.empty())
        ++stats.hops_skipped;
      else
        ++stats.hops_made;
    }
    if (options.overlap && s + 1 < P) pending = post(s + 1);
    const bool in_flight = pending.req[0] != MPI_REQUEST_NULL || pending.req[1] != MPI_REQUEST_NULL;
    if (!current.ex.empty()) {
      exec.fence();
      Kokkos::Timer timer;
      const KV kv = [&] {
        if (s == 0) return KV::of_member(k, v);
        if (!current.ex.expands()) return KV::of_block(current.buffer->block);
        const Tensor4<Scalar, Mem> block = expanded.view(batch, current.ex.block_rows, dim);
        member.expand(exec, current.buffer->block, current.ex, block);
        return KV::of_block(block);
      }();
      const std::function<void()> between = in_flight ? progress_messages : std::function<void()>{};
      if (chunked) // s == 0: every other block is empty
        member.consume_in_chunks(exec, q, kv, current.ex, {Range{0, n}}, chunk, o_chunk, o, lse,
                                 between);
      else
        member.consume(exec, q, kv, current.ex, o_run, lse, between);
      exec.fence();
      stats.compute_seconds[p] += timer.seconds();
    }
    if (progress) progress(RingProgress{p, P, s + 1, P});
  }
  if constexpr (widened) {
    if (!chunked) RingMember<ExecSpace, Scalar>::to_storage(exec, o_run, o);
    exec.fence();
  }
  MPI_Comm_free(&ring);
  return stats;
}

} // namespace ringattn::Details

#endif
