#ifndef RINGATTN_MPIRING_HPP
#define RINGATTN_MPIRING_HPP

// The MPI ring (SPEC 3, mode mpi): one member per rank of the caller's
// communicator. At step s member p receives from p - s what it needs and sends
// p + s what that member needs (RingAttn_Exchange.hpp); empty hops are not
// made. Non-blocking and double-buffered: the messages of step s + 1 are in
// flight while step s is computed. Device buffers are staged through the host
// (the MPI need not be CUDA-aware), unless RingAttn was configured with
// RingAttn_ENABLE_CUDA_AWARE_MPI, which hands MPI the device buffers.

#include <RingAttn_Config.hpp>
#include <ring/RingAttn_RingMember.hpp>
#include <ring/RingAttn_RingStats.hpp>

#include <Kokkos_Timer.hpp>
#include <mpi.h>

#include <climits>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace ringattn {

struct MpiRingOptions {
  bool overlap = true;        ///< post step s+1's messages before computing step s
  bool skip_messages = false; ///< benchmark only: compute on stale blocks, send nothing
};

namespace Details {

template <class Scalar>
MPI_Datatype mpi_type() {
  if constexpr (std::is_same_v<Scalar, double>)
    return MPI_DOUBLE;
  else
    return MPI_FLOAT;
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

} // namespace Details

template <class ExecSpace, class Scalar>
RingStats run_mpi_ring(
    const ExecSpace &exec, MPI_Comm comm, const Pattern &pattern, PartitionKind partition_kind,
    accumulate_t<Scalar> scale, const Tiling &tiling, const MpiRingOptions &options,
    const Kokkos::View<const Scalar ****, Kokkos::LayoutRight, typename ExecSpace::memory_space> &q,
    const Kokkos::View<const Scalar ****, Kokkos::LayoutRight, typename ExecSpace::memory_space> &k,
    const Kokkos::View<const Scalar ****, Kokkos::LayoutRight, typename ExecSpace::memory_space> &v,
    const Tensor4<Scalar, typename ExecSpace::memory_space> &o,
    const Tensor3<Scalar, typename ExecSpace::memory_space> &lse,
    const ProgressCallback &progress = {}) {
  using Mem = typename ExecSpace::memory_space;
  using Buffer = Details::MessageBuffer<Scalar, Mem>;
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
  RingMember<ExecSpace, Scalar>::reset(exec, o, lse);

  Buffer recv[2], send;
  const MPI_Datatype type = Details::mpi_type<Scalar>();
  auto count_of = [&](std::int64_t rows) {
    const std::int64_t c = 2 * batch * rows * dim;
    if (c > INT_MAX) throw std::length_error("ringattn: a K/V block exceeds MPI's int count");
    return int(c);
  };

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
      MPI_Isend(send.mpi_data(), count_of(out.rows), type, dst, s, ring, &st.req[1]);
      stats.bytes_sent[p] += std::int64_t(count_of(out.rows)) * std::int64_t(sizeof(Scalar));
    }
    if (!st.ex.empty()) {
      st.buffer->shape(batch, st.ex.rows, dim);
      if (!options.skip_messages)
        MPI_Irecv(st.buffer->mpi_data(), count_of(st.ex.rows), type, src, s, ring, &st.req[0]);
      else // benchmark only: finite values in place of the message (no denormal garbage)
        Kokkos::deep_copy(exec, st.buffer->block, Scalar(0));
    }
    return st;
  };

  Step current;
  current.ex = member.plan_receive(p);
  current.buffer = &recv[0];
  current.buffer->shape(batch, current.ex.rows, dim);
  if (!current.ex.empty()) member.pack(exec, k, v, current.ex, current.buffer->block);
  Step pending;
  for (int s = 0; s < P; ++s) {
    if (s > 0) {
      if (!options.overlap) pending = post(s);
      MPI_Waitall(2, pending.req, MPI_STATUSES_IGNORE);
      current = pending;
      current.buffer->from_host();
      if (current.ex.empty())
        ++stats.hops_skipped;
      else
        ++stats.hops_made;
    }
    if (options.overlap && s + 1 < P) pending = post(s + 1);
    if (!current.ex.empty()) {
      exec.fence();
      Kokkos::Timer timer;
      member.consume(exec, q, current.buffer->block, current.ex, o, lse);
      exec.fence();
      stats.compute_seconds[p] += timer.seconds();
    }
    if (progress) progress(RingProgress{p, P, s + 1, P});
  }
  MPI_Comm_free(&ring);
  return stats;
}

} // namespace ringattn

#endif
