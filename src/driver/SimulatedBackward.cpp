// The backward of `ringattn run` in mode simulated (docs/SPEC.md section 7): one member
// at a time, so that the process's memory grows as N / R as the forward's
// does. The forward runs once through a MemberIO that spills every member's
// O and LSE to an unlinked temporary file; the backward then runs through a
// BackwardMemberIO that loads Q, dO, K and V from the input and O, LSE from
// that file, and writes each member's dQ, dK and dV to the output files and
// the verification samples (RingAttention::backward with an io).
#include "BackwardOutputs.hpp"
#include "InputChecks.hpp"
#include "NpyFile.hpp"
#include "RunModes.hpp"

#include <Kokkos_Timer.hpp>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <unistd.h>

namespace ringattn::driver {

namespace {

/// An unlinked temporary file in $TMPDIR (else /tmp): nothing is left behind
/// however the run ends.
class SpillFile {
public:
  SpillFile() {
    const char *env = std::getenv("TMPDIR");
    dir_ = env && *env ? env : "/tmp";
    std::string path = dir_ + "/ringattn-spill-XXXXXX";
    fd_ = ::mkstemp(path.data());
    if (fd_ < 0)
      throw std::runtime_error("cannot create a temporary file in " + dir_ +
                               " for the forward's O and LSE: " + std::strerror(errno) +
                               " (set TMPDIR)");
    ::unlink(path.c_str());
  }
  ~SpillFile() { ::close(fd_); }
  SpillFile(const SpillFile &) = delete;
  SpillFile &operator=(const SpillFile &) = delete;

  void write(std::int64_t offset, const void *data, std::size_t bytes) const {
    if (!Details::pwrite_all(fd_, data, bytes, offset))
      throw std::runtime_error("cannot write the forward's O and LSE to a temporary file in " +
                               dir_ + ": " + std::strerror(errno) + " (set TMPDIR)");
  }
  void read(std::int64_t offset, void *data, std::size_t bytes) const {
    if (!Details::pread_all(fd_, data, bytes, offset))
      throw std::runtime_error("cannot read the forward's O and LSE back from " + dir_);
  }

private:
  std::string dir_;
  int fd_ = -1;
};

/// Where member p's O and LSE lie in the spill file: every member's O, then
/// every member's LSE.
struct SpillLayout {
  std::vector<std::int64_t> o_offset, lse_offset;

  template <class Scalar>
  static SpillLayout of(const Partition &part, std::int64_t B, std::int64_t H, std::int64_t D) {
    SpillLayout s;
    std::int64_t at = 0;
    for (int p = 0; p < part.members; ++p) {
      s.o_offset.push_back(at);
      at += B * part.local_size(p) * H * D * std::int64_t(sizeof(Scalar));
    }
    for (int p = 0; p < part.members; ++p) {
      s.lse_offset.push_back(at);
      at += B * H * part.local_size(p) * std::int64_t(sizeof(accumulate_t<Scalar>));
    }
    return s;
  }
};

/// The forward's MemberIO: inputs from the deck's source, O and LSE to the
/// spill file.
template <class Scalar>
class SpillingForwardIO final : public MemberIO<Scalar, Mem> {
public:
  SpillingForwardIO(MemberLoader &loader, const SpillFile &spill, const SpillLayout &layout)
      : loader_(loader), spill_(spill), layout_(layout) {}

  void load_q(int p, const Tensor4<Scalar, Mem> &q) override { loader_.load(TensorId::q, p, q); }
  void load_kv(int p, const Tensor4<Scalar, Mem> &k, const Tensor4<Scalar, Mem> &v) override {
    loader_.load(TensorId::k, p, k);
    loader_.load(TensorId::v, p, v);
  }
  void store(int p, const Tensor4<Scalar, Mem> &o,
             const Tensor3<accumulate_t<Scalar>, Mem> &lse) override {
    auto oh = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), o);
    auto lh = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), lse);
    spill_.write(layout_.o_offset[std::size_t(p)], oh.data(), oh.span() * sizeof(Scalar));
    spill_.write(layout_.lse_offset[std::size_t(p)], lh.data(),
                 lh.span() * sizeof(accumulate_t<Scalar>));
  }

private:
  MemberLoader &loader_;
  const SpillFile &spill_;
  const SpillLayout &layout_;
};

/// The backward's BackwardMemberIO: Q, dO, K, V from the deck's source, O
/// and LSE from the spill file; gradients to the output files and the
/// verification samples (on the final repeat).
template <class Scalar>
class DriverBackwardIO final : public BackwardMemberIO<Scalar, Mem> {
public:
  using T4 = Tensor4<Scalar, Mem>;
  DriverBackwardIO(const RunConfig &cfg, const Partition &part, MemberLoader &loader,
                   const SpillFile &spill, const SpillLayout &layout, GradientFiles &files,
                   const std::vector<SampledRow> &samples, GradientSamples &got)
      : cfg_(cfg), part_(part), loader_(loader), spill_(spill), layout_(layout), files_(files),
        samples_(samples), got_(got) {}
  bool final_repeat = false;

  void load_queries(int p, const T4 &q, const T4 &o, const T4 &dout,
                    const Tensor3<accumulate_t<Scalar>, Mem> &lse) override {
    loader_.load(TensorId::q, p, q);
    loader_.load(TensorId::dout, p, dout);
    auto oh = Kokkos::create_mirror_view(o);
    auto lh = Kokkos::create_mirror_view(lse);
    spill_.read(layout_.o_offset[std::size_t(p)], oh.data(), oh.span() * sizeof(Scalar));
    spill_.read(layout_.lse_offset[std::size_t(p)], lh.data(),
                lh.span() * sizeof(accumulate_t<Scalar>));
    Kokkos::deep_copy(o, oh);
    Kokkos::deep_copy(lse, lh);
  }
  void load_kv(int p, const T4 &k, const T4 &v) override {
    loader_.load(TensorId::k, p, k);
    loader_.load(TensorId::v, p, v);
  }
  void store_dq(int p, const T4 &dq) override {
    if (final_repeat) store(0, p, dq, got_.dq);
  }
  void store_dkv(int p, const T4 &dk, const T4 &dv) override {
    if (!final_repeat) return;
    store(1, p, dk, got_.dk);
    store(2, p, dv, got_.dv);
  }

private:
  void store(int which, int p, const T4 &g, std::map<std::size_t, std::vector<double>> &got) {
    auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), g);
    files_.write_member(which, part_, p, h.data());
    capture_gradient_rows(samples_, part_, p, std::int64_t(g.extent(2) * g.extent(3)), h.data(),
                          got);
  }
  const RunConfig &cfg_;
  const Partition &part_;
  MemberLoader &loader_;
  const SpillFile &spill_;
  const SpillLayout &layout_;
  GradientFiles &files_;
  const std::vector<SampledRow> &samples_;
  GradientSamples &got_;
};

} // namespace

template <class Scalar>
int backward_member_by_member(const PointRun<Scalar> &run, GradientFiles &files,
                              BackwardReport &report, RingStats &stats, GradientSamples &got) {
  const RunConfig &cfg = run.cfg;
  const std::int64_t B = cfg.problem.batch, D = cfg.problem.head_dim;
  int rc = exit_ok;
  std::string message;
  try {
    const SpillFile spill;
    const SpillLayout layout = SpillLayout::of<Scalar>(run.part, B, cfg.problem.heads, D);
    MemberLoader loader(cfg, run.data, run.part, run.check_finite);
    SpillingForwardIO<Scalar> forward_io(loader, spill, layout);
    run.attention.forward(forward_io, B, D); // O and LSE, spilled
    DriverBackwardIO<Scalar> io(cfg, run.part, loader, spill, layout, files, run.samples, got);
    for (int rep = 0; rep < run.repeats; ++rep) {
      run.progress.begin_repeat(rep);
      io.final_repeat = rep + 1 == run.repeats;
      Kokkos::Timer timer;
      stats = run.attention.backward(io, B, D);
      Exec().fence();
      if (rep >= cfg.benchmark.warmup) report.repeat_seconds.push_back(timer.seconds());
    }
  } catch (const NonFiniteInput &e) { // one process: nobody waits on us
    rc = exit_bad_input;
    message = std::string("ringattn: error: ") + e.what();
  } catch (const std::exception &e) { // I/O, the spill file, an allocation
    rc = exit_failure;
    message = std::string("ringattn: error: ") + e.what();
  }
  return run.comm.agree(rc, message);
}

template int backward_member_by_member<float>(const PointRun<float> &, GradientFiles &,
                                              BackwardReport &, RingStats &, GradientSamples &);
template int backward_member_by_member<double>(const PointRun<double> &, GradientFiles &,
                                               BackwardReport &, RingStats &, GradientSamples &);
template int backward_member_by_member<bfloat16_t>(const PointRun<bfloat16_t> &, GradientFiles &,
                                                   BackwardReport &, RingStats &,
                                                   GradientSamples &);
template int backward_member_by_member<float16_t>(const PointRun<float16_t> &, GradientFiles &,
                                                  BackwardReport &, RingStats &, GradientSamples &);

} // namespace ringattn::driver
