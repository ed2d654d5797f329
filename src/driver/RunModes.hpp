#ifndef RINGATTN_DRIVER_RUNMODES_HPP
#define RINGATTN_DRIVER_RUNMODES_HPP

// The two modes of `ringattn run` (docs/SPEC.md section 3): the simulated
// ring, all members in this process (SimulatedRun.cpp), and the MPI ring, one
// member per rank (MpiRun.cpp). RunCommand.cpp sets up a PointRun (inputs,
// output files, samples, memory check) and calls one of them; each runs the
// warm-up and timed repeats, writes its members' rows of O and LSE, and
// keeps the sampled rows for verification.

#include "DriverComm.hpp"
#include "FaultInjection.hpp"
#include "InputData.hpp"
#include "OutputFiles.hpp"
#include "Results.hpp"
#include "RunProgress.hpp"
#include "Verify.hpp"

#include <RingAttn.hpp>

#include <Kokkos_Core.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

namespace ringattn::driver {

using Exec = Kokkos::DefaultExecutionSpace;
using Mem = Exec::memory_space;

/// What both modes need for one point of the deck (one configuration).
template <class Scalar>
struct PointRun {
  const RunConfig &cfg;
  const DriverComm &comm;
  const Partition &part;
  const RingAttention<Exec, Scalar> &attention;
  const InputData &data;
  OutputFiles &files;
  const std::vector<SampledRow> &samples;
  Progress &progress;
  const TestFault &fault;
  bool check_finite; // scan the inputs for NaN and infinities as they load
  int repeats;       // warm-up and timed
};

/// What this process's members produced, for verification.
struct MemberOutputs {
  std::map<std::size_t, RowValues> got; // sample index -> the ring's values
  bool nonfinite = false;               // a NaN or a stray infinity anywhere in O or LSE
};

/// Each returns an exit code (agreed on every rank); on exit_ok the report's
/// timings, bytes, hops and peaks are filled in, and `out` too.
template <class Scalar>
int run_simulated(const PointRun<Scalar> &run, RunReport &report, MemberOutputs &out);
template <class Scalar>
int run_mpi(const PointRun<Scalar> &run, RunReport &report, MemberOutputs &out);
/// attention.backward: dQ, dK, dV after the forward (BackwardRun.cpp), either mode.
template <class Scalar>
int run_backward(const PointRun<Scalar> &run, BackwardReport &report);

/// What the ring produced for the sampled rows a member owns.
template <class Scalar, class Lse>
void capture_samples(const std::vector<SampledRow> &samples, const Partition &part, int p,
                     std::int64_t H, std::int64_t D, const Scalar *o_host, const Lse *lse_host,
                     std::map<std::size_t, RowValues> &got) {
  const std::int64_t n = part.local_size(p);
  for (std::size_t s = 0; s < samples.size(); ++s) {
    if (part.owner(samples[s].t) != p) continue;
    const std::int64_t b = samples[s].b, row = part.local_index(samples[s].t);
    RowValues v;
    for (std::int64_t h = 0; h < H; ++h) {
      v.lse.push_back(double(lse_host[(b * H + h) * n + row]));
      for (std::int64_t d = 0; d < D; ++d)
        v.o.push_back(double(o_host[((b * n + row) * H + h) * D + d]));
    }
    got[s] = std::move(v);
  }
}

} // namespace ringattn::driver

#endif
