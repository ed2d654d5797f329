#ifndef RINGATTN_BENCHMARKACCESS_HPP
#define RINGATTN_BENCHMARKACCESS_HPP

// Benchmarks only: RingAttention's MPI forward with its messages skipped,
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
};

} // namespace ringattn::Details
#endif

#endif
