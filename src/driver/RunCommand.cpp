// `ringattn run` (docs/SPEC.md sections 4-6): deck -> inputs -> RingAttention
// (simulated ring or MPI ring, RunModes.hpp) -> timing over repeats -> O/LSE
// files -> verification of sampled rows -> results file (and a CSV row per
// sweep point). The pieces: OutputFiles (atomic O and LSE), InputChecks
// (NaN/Inf scans), MemoryCheck, FaultInjection (a test hook), RunProgress.
#include "AtomicFile.hpp"
#include "Commands.hpp"
#include "DriverComm.hpp"
#include "InputChecks.hpp"
#include "MemoryCheck.hpp"
#include "Npy.hpp"
#include "ProcessMemory.hpp"
#include "Results.hpp"
#include "RunModes.hpp"
#include "Verify.hpp"

#include <RingAttn.hpp>

#include <Kokkos_Core.hpp>

#include <csignal>
#include <iostream>
#include <memory>
#include <sstream>

namespace ringattn::driver {

namespace {

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

/// f(Scalar{}) with the storage type `dtype` names.
template <class F>
int with_storage_type(DType dtype, const F &f) {
  switch (dtype) {
  case DType::float64:
    return f(double{});
  case DType::bfloat16:
    return f(bfloat16_t{});
  case DType::float16:
    return f(float16_t{});
  default:
    return f(float{});
  }
}

/// A forward over a few rows in the point's storage type and head dim, run
/// before the baseline is taken, so that code the kernels load at first use
/// is resident by then: MKL opens its CPU-specific library at its first
/// GEMM (about 3.5 MiB resident here, the same at every ring size). The
/// baseline is then the program, and peak - baseline what the data holds.
/// Tiles of 16 keep Kokkos' team scratch, which the run counts, below the
/// run's own.
template <class Scalar>
void load_kernel_code(std::int64_t head_dim) {
  using Mem = Exec::memory_space;
  constexpr std::int64_t rows = 64;
  RingOptions options;
  Tiling tiling = default_tiling<Exec, Scalar>(int(head_dim));
  tiling.q_tile = tiling.k_tile = 16;
  options.tiling = tiling;
  try {
    const RingAttention<Exec, Scalar> attention(Pattern::dense(rows, 1, 1, false), options);
    const Tensor4<Scalar, Mem> q("ringattn::warm_up_q", 1, rows, 1, head_dim);
    const Tensor4<Scalar, Mem> o("ringattn::warm_up_o", 1, rows, 1, head_dim);
    const Tensor3<accumulate_t<Scalar>, Mem> lse("ringattn::warm_up_lse", 1, 1, rows);
    attention.forward(q, q, q, o, lse);
    Kokkos::fence();
  } catch (const std::exception &) {
    // Nothing is lost: the run itself checks the same head dim and reports
    // what is wrong with it (an unusable head dim fails here first).
  }
}

/// Bytes member p must send over a whole pass: the analytic minimum.
std::int64_t model_bytes_sent(const Pattern &pattern, const Partition &part, int p,
                              std::int64_t batch, std::int64_t dim, std::int64_t scalar_bytes) {
  std::int64_t rows = 0;
  for (int j = 0; j < part.members; ++j)
    if (j != p) rows += ringattn::Details::plan_exchange(pattern, part, j, p, false).rows;
  return rows * 2 * batch * dim * scalar_bytes;
}

template <class Scalar>
int run_point(const RunConfig &cfg, const CommandLine &cl, const DriverComm &comm,
              std::int64_t baseline, RunReport &report) {
  const bool mpi = cfg.ring.mode == RingMode::mpi;
  const int P = cfg.ring.size;
  const std::int64_t B = cfg.problem.batch, D = cfg.problem.head_dim;
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

  // Memory first: a problem that cannot fit fails here, cleanly, rather than
  // being killed by the OS half-way (agreed on every rank).
  int rc = exit_ok;
  std::string message =
      check_memory(cfg, part, mpi ? comm.rank() : -1, std::int64_t(sizeof(Scalar)));
  if ((rc = comm.agree(message.empty() ? exit_ok : exit_failure, message)) != exit_ok) return rc;

  // Inputs and output files, with every rank agreeing before the ring starts.
  std::unique_ptr<InputData> data;
  const bool check_finite = cfg.input.check_finite && cfg.input.source == InputSource::npy;
  try {
    check_input_files(cfg); // DeckError at input.q/k/v: expected shape, got ...
    data = InputData::create(cfg);
  } catch (const DeckError &e) {
    rc = exit_bad_input;
    message = e.what();
  } catch (const std::exception &e) {
    rc = exit_bad_input;
    message = cfg.where("input") + ": " + e.what();
  }
  if ((rc = comm.agree(rc, message)) != exit_ok) return rc;
  OutputFiles files(cfg, comm);
  if ((rc = files.open()) != exit_ok) return rc;
  const std::vector<SampledRow> samples = sample_rows(cfg);
  const PointRun<Scalar> run{cfg,     comm,     part,  attention,    *data,  files,
                             samples, progress, fault, check_finite, repeats};

  MemberOutputs outputs;
  rc = mpi ? run_mpi(run, report, outputs) : run_simulated(run, report, outputs);
  if (rc != exit_ok) return rc;
  files.commit();
  if (cfg.attention.backward) { // docs/SPEC.md section 7
    report.backward.emplace();
    report.backward->baseline_bytes = baseline;
    if ((rc = run_backward(run, *report.backward)) != exit_ok) return rc;
  }

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
  for (const auto &[s, values] : outputs.got)
    mine.add(values, reference_row(*data, pattern, cfg.effective_scale(), samples[s]));
  // Beyond the sampled rows: any NaN in the outputs fails the verification.
  if (outputs.nonfinite) mine.nonfinite = true;
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
  s << "ringattn: N=" << r.config.problem.seq_len << " " << dtype_name(r.config.problem.dtype)
    << " ring " << to_string(r.config.ring.mode) << " x" << r.config.ring.size << " ("
    << to_string(r.config.ring.partition) << "): median " << median << " s, "
    << (median > 0 ? r.flops / median * 1e-9 : 0.0) << " GFLOP/s";
  if (r.verified)
    s << ", verify " << (r.passed() ? "passed" : "FAILED") << " (" << r.verify.rows
      << " rows, max |dO| " << r.verify.max_abs_error_o << ", max |dLSE| "
      << r.verify.max_abs_error_lse << ")";
  if (r.backward) {
    const double b = r.backward->median_seconds();
    s << "; backward: median " << b << " s, " << (b > 0 ? r.backward->flops / b * 1e-9 : 0.0)
      << " GFLOP/s";
    if (r.backward->verified)
      s << ", verify " << (r.backward->passed(r.config.verify.tolerance) ? "passed" : "FAILED")
        << " (" << r.backward->dq_rows << " dQ rows, " << r.backward->dkv_rows
        << " dK/dV rows, max |ddQ| " << r.backward->max_abs_error_dq << ", max |ddK| "
        << r.backward->max_abs_error_dk << ", max |ddV| " << r.backward->max_abs_error_dv << ")";
  }
  std::cout << s.str() << std::endl;
}

} // namespace

int run_command(const RunConfig &deck, const CommandLine &cl) {
  const DriverComm comm;
  std::vector<RunConfig> points =
      deck.sweep.empty() ? std::vector<RunConfig>{deck} : expand_sweep(deck);
  // Mode checks, agreed on every rank.
  int rc = exit_ok;
  std::string message;
  try {
    for (RunConfig &p : points) {
      // Under mpirun with ring.mode left out, the ranks are the ring.
      if (comm.size() > 1 && !p.origins.count("ring.mode")) {
        p.ring.mode = RingMode::mpi;
        if (!p.origins.count("ring.size")) p.ring.size = 0;
      }
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

  // Every output can be written: found now, not after the run (when O and
  // LSE would already be in place without a results file).
  if (comm.rank() == 0) {
    const std::pair<const char *, const std::string *> outputs[] = {
        {"output.results", &deck.output.results},
        {"output.csv", &deck.output.csv},
        {"output.o", &deck.output.o},
        {"output.lse", &deck.output.lse},
        {"output.dq", &deck.output.dq},
        {"output.dk", &deck.output.dk},
        {"output.dv", &deck.output.dv}};
    for (const auto &[key, path] : outputs) {
      if (path->empty() || (std::string(key) == "output.csv" && deck.sweep.empty())) continue;
      try {
        check_writable(*path);
      } catch (const NpyError &e) {
        rc = exit_bad_input;
        message = deck.where(key) + ": " + e.what();
        break;
      }
    }
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
    // Kokkos, MPI and the program (its kernels' code loaded), before this
    // point's data; and this point's own peak.
    with_storage_type(cfg.problem.dtype, [&](auto scalar) {
      load_kernel_code<decltype(scalar)>(cfg.problem.head_dim);
      return 0;
    });
    return_freed_memory();
    reset_peak_resident();
    const std::int64_t baseline = resident_bytes();
    RunReport report;
    rc = with_storage_type(cfg.problem.dtype, [&](auto scalar) {
      return run_point<decltype(scalar)>(cfg, cl, comm, baseline, report);
    });
    if (rc != exit_ok) return rc;
    if (comm.rank() == 0 && !cl.quiet) print_summary(report);
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
