// `ringattn run` (SPEC 4-6): deck -> inputs -> RingAttention (simulated ring
// or MPI ring) -> timing over repeats -> O/LSE files -> verification of
// sampled rows -> results file (and a CSV row per sweep point).
#include "Commands.hpp"
#include "DriverComm.hpp"
#include "InputData.hpp"
#include "Npy.hpp"
#include "ProcessMemory.hpp"
#include "Results.hpp"
#include "Verify.hpp"

#include <RingAttn.hpp>

#include <Kokkos_Core.hpp>
#include <Kokkos_Timer.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>

#include <unistd.h>

namespace ringattn::driver {

namespace {

using Exec = Kokkos::DefaultExecutionSpace;
using Mem = Exec::memory_space;

/// Progress on long runs (SPEC 4): rank 0, stderr, at most once a second.
class Progress {
public:
  Progress(bool enabled, int repeats)
      : enabled_(enabled), repeats_(repeats), last_(std::chrono::steady_clock::now()) {}
  void begin_repeat(int repeat) {
    repeat_ = repeat;
    start_ = std::chrono::steady_clock::now();
  }
  void update(const RingProgress &p) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::seconds(1)) return;
    last_ = now;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    // fraction of this repeat done: members before this one, plus its steps
    const double done = (double(p.member) + double(p.step) / p.steps) / double(p.members);
    const bool simulated = p.members > 1 && members_are_virtual_;
    std::fprintf(stderr, "[ringattn] repeat %d/%d  %s %d/%d  step %d/%d  %.1f s, ~%.1f s left\n",
                 repeat_ + 1, repeats_, simulated ? "member" : "rank", p.member + 1, p.members,
                 p.step, p.steps, elapsed,
                 done > 0 && simulated ? elapsed * (1 - done) / done
                                       : elapsed * double(p.steps - p.step) / p.step);
  }
  void set_virtual_members(bool v) { members_are_virtual_ = v; }

private:
  bool enabled_;
  int repeats_;
  int repeat_ = 0;
  bool members_are_virtual_ = true;
  std::chrono::steady_clock::time_point last_, start_;
};

/// O and LSE files (SPEC 5): created under temporary names by rank 0, written
/// by every member at its own rows, renamed into place only when all is done.
class OutputFiles {
public:
  OutputFiles(const RunConfig &cfg, const DriverComm &comm) : cfg_(cfg), comm_(comm) {}

  /// Collective. Returns a nonzero exit code (agreed on every rank) on failure.
  int open() {
    int rc = exit_ok;
    std::string message;
    const long token = comm_.broadcast(long(::getpid()));
    try {
      if (comm_.rank() == 0) {
        if (!cfg_.output.o.empty()) o_file_.emplace(cfg_.output.o, token);
        if (!cfg_.output.lse.empty()) lse_file_.emplace(cfg_.output.lse, token);
        if (o_file_)
          o_ = NpyWriter::create(o_file_->temp_path(), cfg_.problem.dtype, cfg_.o_shape());
        if (lse_file_)
          lse_ = NpyWriter::create(lse_file_->temp_path(), cfg_.problem.dtype, cfg_.lse_shape());
      }
    } catch (const std::exception &e) {
      rc = exit_bad_input;
      message = std::string("ringattn: error: ") + e.what();
    }
    if ((rc = comm_.agree(rc, message)) != exit_ok) return rc;
    try {
      if (comm_.rank() != 0) {
        if (!cfg_.output.o.empty())
          o_ = NpyWriter::open(AtomicFile::temp_path_for(cfg_.output.o, token), cfg_.problem.dtype,
                               cfg_.o_shape());
        if (!cfg_.output.lse.empty())
          lse_ = NpyWriter::open(AtomicFile::temp_path_for(cfg_.output.lse, token),
                                 cfg_.problem.dtype, cfg_.lse_shape());
      }
    } catch (const std::exception &e) {
      rc = exit_failure;
      message = std::string("ringattn: error: ") + e.what();
    }
    return comm_.agree(rc, message);
  }

  bool any() const { return o_.has_value() || lse_.has_value(); }

  /// Member p's rows: o_host [B, n, H, D], lse_host [B, H, n] in local order.
  template <class Scalar>
  void write_member(const Partition &part, int p, const Scalar *o_host, const Scalar *lse_host) {
    const std::int64_t B = cfg_.problem.batch, N = cfg_.problem.seq_len;
    const std::int64_t H = cfg_.problem.heads, D = cfg_.problem.head_dim;
    const std::int64_t n = part.local_size(p);
    for (std::int64_t b = 0; b < B; ++b)
      for (int r = 0; r < part.num_ranges(); ++r) {
        const Range g = part.range(p, r);
        const std::int64_t l = part.range_local_begin(p, r);
        if (g.size() == 0) continue;
        if (o_)
          o_->write((b * N + g.begin) * H * D, g.size() * H * D, o_host + (b * n + l) * H * D);
        if (lse_)
          for (std::int64_t h = 0; h < H; ++h)
            lse_->write((b * H + h) * N + g.begin, g.size(), lse_host + (b * H + h) * n + l);
      }
  }

  /// Collective: everyone closes, then rank 0 renames the files into place.
  void commit() {
    if (o_) o_->close();
    if (lse_) lse_->close();
    comm_.barrier();
    if (o_file_) o_file_->commit();
    if (lse_file_) lse_file_->commit();
  }

private:
  const RunConfig &cfg_;
  const DriverComm &comm_;
  std::optional<AtomicFile> o_file_, lse_file_;
  std::optional<NpyWriter> o_, lse_;
};

/// Member p's rows of one tensor from the input, into a device view.
template <class Scalar>
void load_member(const InputData &data, TensorId id, const Partition &part, int p,
                 const Tensor4<Scalar, Mem> &view) {
  auto host = Kokkos::create_mirror_view(view);
  data.fill_member(id, part, p, host.data());
  Kokkos::deep_copy(view, host);
}

/// What the ring produced for the sampled rows a member owns.
template <class Scalar>
void capture_samples(const std::vector<SampledRow> &samples, const Partition &part, int p,
                     std::int64_t H, std::int64_t D, const Scalar *o_host, const Scalar *lse_host,
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

/// The simulated ring's MemberIO: members' rows from the input; results to
/// the output files and the verification samples (on the final repeat).
template <class Scalar>
class DriverMemberIO final : public MemberIO<Scalar, Mem> {
public:
  DriverMemberIO(const RunConfig &cfg, const InputData &data, const Partition &part,
                 OutputFiles &files, const std::vector<SampledRow> &samples)
      : cfg_(cfg), data_(data), part_(part), files_(files), samples_(samples) {}
  bool final_repeat = false;
  std::map<std::size_t, RowValues> got;

  void load_q(int p, const Tensor4<Scalar, Mem> &q) override {
    load_member(data_, TensorId::q, part_, p, q);
  }
  void load_kv(int p, const Tensor4<Scalar, Mem> &k, const Tensor4<Scalar, Mem> &v) override {
    load_member(data_, TensorId::k, part_, p, k);
    load_member(data_, TensorId::v, part_, p, v);
  }
  void store(int p, const Tensor4<Scalar, Mem> &o, const Tensor3<Scalar, Mem> &lse) override {
    if (!final_repeat) return;
    auto oh = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), o);
    auto lh = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), lse);
    files_.write_member(part_, p, oh.data(), lh.data());
    capture_samples(samples_, part_, p, cfg_.problem.heads, cfg_.problem.head_dim, oh.data(),
                    lh.data(), got);
  }

private:
  const RunConfig &cfg_;
  const InputData &data_;
  const Partition &part_;
  OutputFiles &files_;
  const std::vector<SampledRow> &samples_;
};

/// A testing hook for the fault tests (unit_tests/tools/run_mpi_faults.sh):
/// RINGATTN_TEST_FAULT=load:R fails rank R while it reads its inputs,
/// throw:R throws on rank R after its first ring step, kill:R kills rank R there.
struct TestFault {
  std::string kind;
  int rank = -1;
  static TestFault from_environment() {
    TestFault f;
    if (const char *e = std::getenv("RINGATTN_TEST_FAULT")) {
      const std::string s(e);
      const auto colon = s.find(':');
      if (colon != std::string::npos) {
        f.kind = s.substr(0, colon);
        f.rank = std::atoi(s.c_str() + colon + 1);
      }
    }
    return f;
  }
  bool at(const char *kind, int rank) const { return this->kind == kind && this->rank == rank; }
};

std::int64_t count_key_pairs(const Pattern &pattern, std::int64_t batch) {
  std::int64_t pairs = 0;
  Kokkos::parallel_reduce(
      "ringattn::count_pairs",
      Kokkos::RangePolicy<Kokkos::DefaultHostExecutionSpace>(0, pattern.seq_len),
      [&](const std::int64_t t, std::int64_t &sum) {
        for (int h = 0; h < pattern.heads; ++h) sum += pattern.pairs_for_query(t, h);
      },
      pairs);
  return pairs * batch;
}

/// Bytes member p must send over a whole pass: the analytic minimum.
std::int64_t model_bytes_sent(const Pattern &pattern, const Partition &part, int p,
                              std::int64_t batch, std::int64_t dim, std::int64_t scalar_bytes) {
  std::int64_t rows = 0;
  for (int j = 0; j < part.members; ++j)
    if (j != p) rows += plan_exchange(pattern, part, j, p, false).rows;
  return rows * 2 * batch * dim * scalar_bytes;
}

template <class Scalar>
int run_point(const RunConfig &cfg, const CommandLine &cl, const DriverComm &comm,
              std::int64_t baseline, RunReport &report) {
  const bool mpi = cfg.ring.mode == RingMode::mpi;
  const int P = cfg.ring.size;
  const std::int64_t B = cfg.problem.batch, H = cfg.problem.heads, D = cfg.problem.head_dim;
  const Pattern pattern = make_pattern(cfg);
  const Partition part(cfg.ring.partition, cfg.problem.seq_len, P);
  const int repeats = cfg.benchmark.warmup + cfg.benchmark.repeats;
  report.config = cfg;

  Progress progress(!cl.quiet && comm.rank() == 0, repeats);
  progress.set_virtual_members(!mpi);
  RingOptions options;
  options.partition = cfg.ring.partition;
  options.members = mpi ? 1 : P;
  options.overlap = cfg.ring.overlap;
  options.scale = cfg.effective_scale();
  const TestFault fault = TestFault::from_environment();
  options.progress = [&progress, &fault, rank = comm.rank()](const RingProgress &p) {
    if (p.step == 1 && fault.at("throw", rank))
      throw std::runtime_error("injected fault on rank " + std::to_string(rank));
    if (p.step == 1 && fault.at("kill", rank)) std::raise(SIGKILL);
    progress.update(p);
  };
  const RingAttention<Exec, Scalar> attention(pattern, options);

  // Inputs and output files, with every rank agreeing before the ring starts.
  std::unique_ptr<InputData> data;
  int rc = exit_ok;
  std::string message;
  try {
    data = InputData::create(cfg);
  } catch (const std::exception &e) {
    rc = exit_bad_input;
    message = cfg.where("input") + ": " + e.what();
  }
  if ((rc = comm.agree(rc, message)) != exit_ok) return rc;
  OutputFiles files(cfg, comm);
  if ((rc = files.open()) != exit_ok) return rc;
  const std::vector<SampledRow> samples = sample_rows(cfg);
  std::map<std::size_t, RowValues> got;
  RingStats stats;

  if (mpi) {
#ifdef RINGATTN_ENABLE_MPI
    const int p = comm.rank();
    const std::int64_t n = part.local_size(p);
    const std::int64_t Hkv = cfg.problem.kv_heads;
    Tensor4<Scalar, Mem> q("q", B, n, H, D), k("k", B, n, Hkv, D), v("v", B, n, Hkv, D);
    Tensor4<Scalar, Mem> o("o", B, n, H, D);
    Tensor3<Scalar, Mem> lse("lse", B, H, n);
    try {
      if (fault.at("load", p)) throw std::runtime_error("injected fault while reading inputs");
      load_member(*data, TensorId::q, part, p, q);
      load_member(*data, TensorId::k, part, p, k);
      load_member(*data, TensorId::v, part, p, v);
    } catch (const std::exception &e) {
      rc = exit_bad_input;
      message = "ringattn: error on rank " + std::to_string(p) + ": " + e.what();
    }
    if ((rc = comm.agree(rc, message)) != exit_ok) return rc;
    for (int rep = 0; rep < repeats; ++rep) {
      progress.begin_repeat(rep);
      comm.barrier();
      Kokkos::Timer timer;
      stats = attention.forward(comm.comm(), q, k, v, o, lse);
      Exec().fence();
      const double seconds = comm.max(timer.seconds());
      if (rep >= cfg.benchmark.warmup) report.repeat_seconds.push_back(seconds);
    }
    auto oh = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), o);
    auto lh = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), lse);
    files.write_member(part, p, oh.data(), lh.data());
    capture_samples(samples, part, p, H, D, oh.data(), lh.data(), got);
    report.bytes_sent_per_member = comm.gather(stats.bytes_sent[p]);
    report.compute_seconds_per_member = comm.gather(stats.compute_seconds[p]);
    report.hops_made = comm.sum(stats.hops_made);
    report.hops_skipped = comm.sum(stats.hops_skipped);
    report.peak_bytes_per_member = comm.gather(peak_resident_bytes());
    report.peak_scope = "rank";
#endif
  } else {
    DriverMemberIO<Scalar> io(cfg, *data, part, files, samples);
    for (int rep = 0; rep < repeats; ++rep) {
      progress.begin_repeat(rep);
      io.final_repeat = rep + 1 == repeats;
      Kokkos::Timer timer;
      stats = attention.forward(io, B, D);
      Exec().fence();
      if (rep >= cfg.benchmark.warmup) report.repeat_seconds.push_back(timer.seconds());
    }
    got = std::move(io.got);
    report.bytes_sent_per_member = stats.bytes_sent;
    report.compute_seconds_per_member = stats.compute_seconds;
    report.hops_made = stats.hops_made;
    report.hops_skipped = stats.hops_skipped;
    report.peak_bytes_per_member.assign(P, peak_resident_bytes());
    report.peak_scope = "process";
  }
  files.commit();

  // Work, models, verification.
  const std::int64_t scalar_bytes = std::int64_t(sizeof(Scalar));
  report.key_pairs = count_key_pairs(pattern, B);
  report.flops = 4.0 * double(D) * double(report.key_pairs);
  report.baseline_bytes = baseline;
  const Tiling tiling = attention.tiling(D);
  const int threads = Exec().concurrency();
  if (mpi) {
    report.model =
        model_member_memory(pattern, part, comm.rank(), B, D, scalar_bytes, true, tiling, threads);
    const std::int64_t largest = comm.max(report.model.total());
    if (report.model.total() != largest) report.model = MemberMemoryModel{}; // keep the max's
    const auto totals = comm.gather(report.model.total());
    for (int r = 0; r < comm.size(); ++r)
      if (totals[r] == largest) {
        report.model =
            model_member_memory(pattern, part, r, B, D, scalar_bytes, true, tiling, threads);
        break;
      }
  } else {
    report.model =
        model_member_memory(pattern, part, 0, B, D, scalar_bytes, false, tiling, threads);
  }
  for (int p = 0; p < P; ++p)
    report.model_bytes_sent_per_member.push_back(
        model_bytes_sent(pattern, part, p, B, D, scalar_bytes));

  report.verified = !samples.empty();
  VerifyErrors mine;
  for (const auto &[s, values] : got)
    mine.add(values, reference_row(*data, pattern, cfg.effective_scale(), samples[s]));
  report.verify = mine;
#ifdef RINGATTN_ENABLE_MPI
  if (mpi) {
    report.verify.rows = comm.sum(mine.rows);
    report.verify.max_abs_error_o = comm.max(mine.max_abs_error_o);
    report.verify.max_abs_error_lse = comm.max(mine.max_abs_error_lse);
    report.verify.nonfinite = comm.sum(std::int64_t(mine.nonfinite)) > 0;
  }
#endif
  return exit_ok;
}

void print_summary(const RunReport &r) {
  const double median = r.median_seconds();
  std::ostringstream s;
  s.precision(4);
  s << "ringattn: N=" << r.config.problem.seq_len << " ring " << to_string(r.config.ring.mode)
    << " x" << r.config.ring.size << " (" << to_string(r.config.ring.partition) << "): median "
    << median << " s, " << (median > 0 ? r.flops / median * 1e-9 : 0.0) << " GFLOP/s";
  if (r.verified)
    s << ", verify " << (r.passed() ? "passed" : "FAILED") << " (" << r.verify.rows
      << " rows, max |dO| " << r.verify.max_abs_error_o << ", max |dLSE| "
      << r.verify.max_abs_error_lse << ")";
  std::cout << s.str() << std::endl;
}

} // namespace

int run_command(const RunConfig &deck, const CommandLine &cl) {
  const DriverComm comm;
  const std::int64_t baseline = resident_bytes(); // Kokkos, MPI and the program, before data
  std::vector<RunConfig> points =
      deck.sweep.empty() ? std::vector<RunConfig>{deck} : expand_sweep(deck);
  // Mode checks, agreed on every rank.
  int rc = exit_ok;
  std::string message;
  try {
    for (RunConfig &p : points) {
      resolve_ring_size(p, comm.size());
      if (p.ring.mode == RingMode::simulated && comm.size() > 1)
        throw DeckError(p.where("ring.mode") + ": expected mpi when run under mpirun with " +
                        std::to_string(comm.size()) +
                        " ranks, got simulated (the simulated ring runs in one process)");
    }
  } catch (const DeckError &e) {
    rc = exit_bad_input;
    message = e.what();
  }
  if ((rc = comm.agree(rc, message)) != exit_ok) return rc;

  std::vector<RunReport> reports;
  std::string csv;
  if (!deck.sweep.empty()) csv = csv_header(deck);
  for (std::size_t i = 0; i < points.size(); ++i) {
    const RunConfig &cfg = points[i];
    if (!cl.quiet && comm.rank() == 0 && points.size() > 1) {
      std::cout << "ringattn: sweep point " << (i + 1) << "/" << points.size() << ":";
      for (const auto &[key, value] : cfg.sweep_point) std::cout << " " << key << "=" << value;
      std::cout << std::endl;
    }
    RunReport report;
    rc = cfg.problem.dtype == DType::float64 ? run_point<double>(cfg, cl, comm, baseline, report)
                                             : run_point<float>(cfg, cl, comm, baseline, report);
    if (rc != exit_ok) return rc;
    if (comm.rank() == 0) print_summary(report);
    if (!deck.sweep.empty()) csv += csv_row(report);
    reports.push_back(std::move(report));
    if (comm.rank() == 0 && !deck.sweep.empty()) // keep finished points if a later one fails
      write_file_atomically(deck.output.csv, csv);
  }
  if (comm.rank() == 0) {
    write_file_atomically(deck.output.results, results_yaml(deck, reports));
    if (!cl.quiet) std::cout << "ringattn: results in " << deck.output.results << std::endl;
  }
  bool passed = true;
  for (const auto &r : reports) passed = passed && r.passed();
  return passed ? exit_ok : exit_verification_failed;
}

} // namespace ringattn::driver
