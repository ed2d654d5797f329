#ifndef RINGATTN_BENCHMARKACCESS_HPP
#define RINGATTN_BENCHMARKACCESS_HPP

// Benchmarks only: RingAttention's MPI forward and backward with their
// messages skipped,
// which measures the ring's compute alone (perf_tests/RingBenchmark.cpp,
// "messages skipped"). Not part of the public options: a skipped message
// leaves the receiver computing on stale blocks.

#include <api/RingAttn_RingAttention.hpp>

#ifdef RINGATTN_ENABLE_MPI
namespace ringattn::Details {

struct RingBenchmarkAccess {
  template <class Attention, class Q, class K, class V, class O, class Lse>
  static RingStats forward(const Attention &attention, MPI_Comm comm, const Q &q, const K &k,
                           const V &v, const O &o, const Lse &lse, bool overlap,
                           bool skip_messages) {
    return attention.forward_mpi(comm, q, k, v, o, lse, MpiRingSettings{overlap, skip_messages},
                                 typename Attention::execution_space());
  }
  template <class Attention, class In, class Lse, class Out>
  static RingStats backward(const Attention &attention, MPI_Comm comm, const In &q, const In &k,
                            const In &v, const In &o, const Lse &lse, const In &dout, const Out &dq,
                            const Out &dk, const Out &dv, bool overlap, bool skip_messages) {
    return attention.backward_mpi(comm, q, k, v, o, lse, dout, dq, dk, dv,
                                  MpiRingSettings{overlap, skip_messages},
                                  typename Attention::execution_space());
  }
};

} // namespace ringattn::Details
#endif

#endif
