// The simulated ring (ring.mode: simulated): every member in this process,
// one after another at each step, through a MemberIO that loads members'
// rows from the input and stores their results.
#include "InputChecks.hpp"
#include "RunModes.hpp"

#include "Commands.hpp"
#include "ProcessMemory.hpp"

#include <Kokkos_Timer.hpp>

#include <string>
#include <utility>

namespace ringattn::driver {

namespace {

/// The simulated ring's MemberIO: members' rows from the input; results to
/// the output files and the verification samples (on the final repeat).
template <class Scalar>
class DriverMemberIO final : public MemberIO<Scalar, Mem> {
public:
  DriverMemberIO(const RunConfig &cfg, const InputData &data, const Partition &part,
                 OutputFiles &files, const std::vector<SampledRow> &samples, bool check_finite)
      : cfg_(cfg), part_(part), files_(files), samples_(samples),
        loader_(cfg, data, part, check_finite) {}
  bool final_repeat = false;
  std::map<std::size_t, RowValues> got;
  bool outputs_nonfinite = false;

  void load_q(int p, const Tensor4<Scalar, Mem> &q) override { loader_.load(TensorId::q, p, q); }
  void load_kv(int p, const Tensor4<Scalar, Mem> &k, const Tensor4<Scalar, Mem> &v) override {
    loader_.load(TensorId::k, p, k);
    loader_.load(TensorId::v, p, v);
  }
  void store(int p, const Tensor4<Scalar, Mem> &o,
             const Tensor3<accumulate_t<Scalar>, Mem> &lse) override {
    if (!final_repeat) return;
    auto oh = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), o);
    auto lh = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), lse);
    files_.write_member(part_, p, oh.data(), lh.data());
    capture_samples(samples_, part_, p, cfg_.problem.heads, cfg_.problem.head_dim, oh.data(),
                    lh.data(), got);
    if (!samples_.empty() && driver::outputs_nonfinite(oh.data(), std::int64_t(oh.span()),
                                                       lh.data(), std::int64_t(lh.span())))
      outputs_nonfinite = true;
  }

private:
  const RunConfig &cfg_;
  const Partition &part_;
  OutputFiles &files_;
  const std::vector<SampledRow> &samples_;
  MemberLoader loader_; // the inputs do not change between repeats: scanned once
};

} // namespace

template <class Scalar>
int run_simulated(const PointRun<Scalar> &run, RunReport &report, MemberOutputs &out) {
  const RunConfig &cfg = run.cfg;
  DriverMemberIO<Scalar> io(cfg, run.data, run.part, run.files, run.samples, run.check_finite);
  RingStats stats;
  for (int rep = 0; rep < run.repeats; ++rep) {
    run.progress.begin_repeat(rep);
    io.final_repeat = rep + 1 == run.repeats;
    Kokkos::Timer timer;
    try {
      stats = run.attention.forward(io, cfg.problem.batch, cfg.problem.head_dim);
    } catch (const NonFiniteInput &e) { // one process: nobody waits on us
      return run.comm.agree(exit_bad_input, std::string("ringattn: error: ") + e.what());
    }
    Exec().fence();
    if (rep >= cfg.benchmark.warmup) report.repeat_seconds.push_back(timer.seconds());
  }
  out.got = std::move(io.got);
  out.nonfinite = io.outputs_nonfinite;
  report.bytes_sent_per_member = stats.bytes_sent;
  report.compute_seconds_per_member = stats.compute_seconds;
  report.hops_made = stats.hops_made;
  report.hops_skipped = stats.hops_skipped;
  report.peak_bytes_per_member.assign(cfg.ring.size, peak_resident_bytes());
  report.peak_scope = "process";
  return exit_ok;
}

template int run_simulated<float>(const PointRun<float> &, RunReport &, MemberOutputs &);
template int run_simulated<double>(const PointRun<double> &, RunReport &, MemberOutputs &);
template int run_simulated<bfloat16_t>(const PointRun<bfloat16_t> &, RunReport &, MemberOutputs &);
template int run_simulated<float16_t>(const PointRun<float16_t> &, RunReport &, MemberOutputs &);

} // namespace ringattn::driver
