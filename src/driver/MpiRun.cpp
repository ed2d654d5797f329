// The MPI ring (ring.mode: mpi): this rank is one member; it loads its own
// rows, and the ring passes K and V blocks between ranks.
#include "InputChecks.hpp"
#include "RunModes.hpp"

#include "Commands.hpp"
#include "ProcessMemory.hpp"

#include <Kokkos_Timer.hpp>

#include <exception>
#include <stdexcept>
#include <string>

namespace ringattn::driver {

template <class Scalar>
int run_mpi(const PointRun<Scalar> &run, RunReport &report, MemberOutputs &out) {
#ifdef RINGATTN_ENABLE_MPI
  const RunConfig &cfg = run.cfg;
  const DriverComm &comm = run.comm;
  if (comm.comm() == MPI_COMM_NULL) throw std::logic_error("ring.mode mpi without MPI_Init");
  const Partition &part = run.part;
  const std::int64_t B = cfg.problem.batch, H = cfg.problem.heads, D = cfg.problem.head_dim;
  const int p = comm.rank();
  const std::int64_t n = part.local_size(p);
  const std::int64_t Hkv = cfg.problem.kv_heads;
  Tensor4<Scalar, Mem> q("q", B, n, H, D), k("k", B, n, Hkv, D), v("v", B, n, Hkv, D);
  Tensor4<Scalar, Mem> o("o", B, n, H, D);
  typename RingAttention<Exec, Scalar>::OutTensor3 lse("lse", B, H, n); // float for 16-bit
  int rc = exit_ok;
  std::string message;
  try {
    if (run.fault.at("load", p)) throw std::runtime_error("injected fault while reading inputs");
    const RunConfig *check = run.check_finite ? &cfg : nullptr;
    load_member(run.data, TensorId::q, part, p, q, check);
    load_member(run.data, TensorId::k, part, p, k, check);
    load_member(run.data, TensorId::v, part, p, v, check);
  } catch (const std::exception &e) {
    rc = exit_bad_input;
    message = "ringattn: error on rank " + std::to_string(p) + ": " + e.what();
  }
  if ((rc = comm.agree(rc, message)) != exit_ok) return rc;
  RingStats stats;
  for (int rep = 0; rep < run.repeats; ++rep) {
    run.progress.begin_repeat(rep);
    comm.barrier();
    Kokkos::Timer timer;
    stats = run.attention.forward(comm.comm(), q, k, v, o, lse);
    Exec().fence();
    const double seconds = comm.max(timer.seconds());
    if (rep >= cfg.benchmark.warmup) report.repeat_seconds.push_back(seconds);
  }
  auto oh = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), o);
  auto lh = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), lse);
  run.files.write_member(part, p, oh.data(), lh.data());
  capture_samples(run.samples, part, p, H, D, oh.data(), lh.data(), out.got);
  out.nonfinite = !run.samples.empty() && outputs_nonfinite(oh.data(), std::int64_t(oh.span()),
                                                            lh.data(), std::int64_t(lh.span()));
  report.bytes_sent_per_member = comm.gather(stats.bytes_sent[p]);
  report.compute_seconds_per_member = comm.gather(stats.compute_seconds[p]);
  report.hops_made = comm.sum(stats.hops_made);
  report.hops_skipped = comm.sum(stats.hops_skipped);
  report.peak_bytes_per_member = comm.gather(peak_resident_bytes());
  report.peak_scope = "rank";
  return exit_ok;
#else
  (void)report, (void)out;
  return run.comm.agree(exit_bad_input,
                        run.cfg.where("ring.mode") +
                            ": mpi needs a ringattn built with MPI (RingAttn_ENABLE_MPI=ON); "
                            "this one is not, use ring.mode: simulated");
#endif
}

template int run_mpi<float>(const PointRun<float> &, RunReport &, MemberOutputs &);
template int run_mpi<double>(const PointRun<double> &, RunReport &, MemberOutputs &);
template int run_mpi<bfloat16_t>(const PointRun<bfloat16_t> &, RunReport &, MemberOutputs &);
template int run_mpi<float16_t>(const PointRun<float16_t> &, RunReport &, MemberOutputs &);

} // namespace ringattn::driver
