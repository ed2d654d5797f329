// The backward pass of `ringattn run` (docs/SPEC.md section 7, attention.backward: true):
// after the forward's repeats, each rank (MPI) loads its Q, K, V and dO,
// runs the forward once for O and LSE, then times the backward's warm-up
// and repeats; the simulated ring does the same member by member
// (SimulatedBackward.cpp), its memory growing as N / R. dQ, dK, dV go to
// output.dq/dk/dv (written atomically, in global order); sampled rows are
// checked against float64 (reference_dq_row, reference_dkv_row below).
#include "BackwardOutputs.hpp"
#include "InputChecks.hpp"
#include "Plan.hpp"
#include "ProcessMemory.hpp"
#include "RunModes.hpp"

#include "Commands.hpp"

#include <Kokkos_Timer.hpp>

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>
#include <map>
#include <optional>
#include <string>

#include <unistd.h>

namespace ringattn::driver {

namespace {

std::int64_t backward_key_pairs(const Pattern &pattern, std::int64_t batch) {
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

/// Bytes member p sends in one backward pass at the analytic minimum: the
/// forward's K/V wire rows (each needed (kv head, row) once) to every other
/// member, plus the same rows of dK/dV of every wire it received, returned
/// in the accumulate type.
std::int64_t backward_model_bytes(const Pattern &pattern, const Partition &part, int p,
                                  std::int64_t batch, std::int64_t dim, std::int64_t scalar_bytes,
                                  std::int64_t acc_bytes) {
  std::int64_t bytes = 0;
  for (int j = 0; j < part.members; ++j) {
    if (j == p) continue;
    bytes += ringattn::Details::plan_exchange(pattern, part, j, p, false).rows * 2 * batch * dim *
             scalar_bytes;
    bytes += ringattn::Details::plan_exchange(pattern, part, p, j, false).rows * 2 * batch * dim *
             acc_bytes;
  }
  return bytes;
}

/// |got - ref| into max_err; NaN or an infinity flags.
void compare(const std::vector<double> &got, const std::vector<double> &ref, double &max_err,
             bool &nonfinite) {
  for (std::size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(got[i]) || !std::isfinite(ref[i])) {
      nonfinite = true;
      continue;
    }
    max_err = std::max(max_err, std::abs(got[i] - ref[i]));
  }
}

/// Float64 dQ [H][D] of query row (b, t), from the input source (docs/SPEC.md section 7):
/// O and LSE from reference_row, then dS_u = P_u (dO . v_u - dO . O) over
/// the same (branch, key) pairs.
std::vector<double> reference_dq_row(const InputData &data, const Pattern &pattern, double scale,
                                     const SampledRow &row) {
  const int H = pattern.heads, Hkv = pattern.kv_heads;
  const std::int64_t D = data.head_dim(), t = row.t;
  const RowValues fwd = reference_row(data, pattern, scale, row);
  std::vector<double> q(std::size_t(H * D)), dout(std::size_t(H * D)), delta(H, 0.0);
  data.read_rows(TensorId::q, row.b, t, 1, q.data());
  data.read_rows(TensorId::dout, row.b, t, 1, dout.data());
  for (int h = 0; h < H; ++h)
    for (std::int64_t d = 0; d < D; ++d) delta[h] += dout[h * D + d] * fwd.o[h * D + d];
  std::vector<double> dq(std::size_t(H * D), 0.0), k(std::size_t(Hkv * D)), v(k.size());
  for (int i = 0; i < pattern.num_branches; ++i) {
    const std::int64_t s = pattern.segment(t, i), r = pattern.dilation_rate[i];
    const std::int64_t begin = pattern.segment_begin(s, i);
    const std::int64_t end = pattern.causal ? t + 1 : pattern.segment_end(s, i);
    for (int h = 0; h < H; ++h) {
      const std::int64_t off = pattern.offset(h, i);
      if (off < 0 || pattern.phase(t, i) != off || std::isinf(fwd.lse[h])) continue;
      const int g = pattern.kv_head(h);
      for (std::int64_t u = begin + off; u < end; u += r) {
        data.read_rows(TensorId::k, row.b, u, 1, k.data());
        data.read_rows(TensorId::v, row.b, u, 1, v.data());
        double dot = 0, dp = 0;
        for (std::int64_t d = 0; d < D; ++d) {
          dot += q[h * D + d] * k[g * D + d];
          dp += dout[h * D + d] * v[g * D + d];
        }
        const double ds = std::exp(scale * dot - fwd.lse[h]) * (dp - delta[h]);
        for (std::int64_t d = 0; d < D; ++d) dq[h * D + d] += scale * ds * k[g * D + d];
      }
    }
  }
  return dq;
}

/// Float64 dK and dV [Hkv][D] of key row (b, u): every (branch, query head,
/// query) pair that sees u, each query's O and LSE from reference_row.
/// `budget` (pairs of work left) is charged; false when it would run out.
/// The first key row (`first`) may overdraw it up to first_row_cap pairs
/// (about a minute), so that a run checks one key row where one is
/// affordable; a dense key row of a long sequence is seen by every query
/// (N^2 H pairs) and is never forced.
constexpr double first_row_cap = 2e8;
bool reference_dkv_row(const InputData &data, const Pattern &pattern, double scale,
                       const SampledRow &row, double &budget, bool first, std::vector<double> &dk,
                       std::vector<double> &dv) {
  const int H = pattern.heads, Hkv = pattern.kv_heads;
  const std::int64_t D = data.head_dim(), u = row.t;
  // the queries that see u, per branch: u's segment, u's phase, t >= u when causal
  double cost = 0;
  std::vector<std::int64_t> queries;
  for (int i = 0; i < pattern.num_branches; ++i) {
    const std::int64_t s = pattern.segment(u, i), r = pattern.dilation_rate[i];
    const std::int64_t begin = pattern.segment_begin(s, i), end = pattern.segment_end(s, i);
    const std::int64_t ph = pattern.phase(u, i);
    for (std::int64_t t = begin + ph; t < end; t += r)
      if (!pattern.causal || t >= u) {
        queries.push_back(t);
        for (int h = 0; h < H; ++h) cost += double(pattern.pairs_for_query(t, h));
      }
  }
  if (cost > budget && !(first && cost <= first_row_cap)) return false;
  budget -= cost;
  std::sort(queries.begin(), queries.end());
  queries.erase(std::unique(queries.begin(), queries.end()), queries.end());
  std::vector<double> k(std::size_t(Hkv * D)), v(k.size()), q(std::size_t(H * D)), dout(q.size());
  data.read_rows(TensorId::k, row.b, u, 1, k.data());
  data.read_rows(TensorId::v, row.b, u, 1, v.data());
  dk.assign(std::size_t(Hkv * D), 0.0);
  dv.assign(std::size_t(Hkv * D), 0.0);
  for (const std::int64_t t : queries) {
    const RowValues fwd = reference_row(data, pattern, scale, SampledRow{row.b, t});
    data.read_rows(TensorId::q, row.b, t, 1, q.data());
    data.read_rows(TensorId::dout, row.b, t, 1, dout.data());
    for (int h = 0; h < H; ++h) {
      if (std::isinf(fwd.lse[h])) continue;
      const int g = pattern.kv_head(h);
      // (branch, key) pairs: u counts once per branch that keeps (t, u)
      int times = 0;
      for (int i = 0; i < pattern.num_branches; ++i) times += pattern.keeps(t, u, h, i) ? 1 : 0;
      if (times == 0) continue;
      double dot = 0, dp = 0, delta = 0;
      for (std::int64_t d = 0; d < D; ++d) {
        dot += q[h * D + d] * k[g * D + d];
        dp += dout[h * D + d] * v[g * D + d];
        delta += dout[h * D + d] * fwd.o[h * D + d];
      }
      const double p = std::exp(scale * dot - fwd.lse[h]);
      const double ds = p * (dp - delta);
      for (std::int64_t d = 0; d < D; ++d) {
        dv[g * D + d] += times * p * dout[h * D + d];
        dk[g * D + d] += times * scale * ds * q[h * D + d];
      }
    }
  }
  return true;
}

/// The MPI ring's backward: this rank's rows of Q, K, V and dO, one forward
/// for O and LSE, then the warm-up and timed repeats.
template <class Scalar>
int backward_on_ranks(const PointRun<Scalar> &run, GradientFiles &files, BackwardReport &report,
                      RingStats &stats, GradientSamples &got) {
  const RunConfig &cfg = run.cfg;
  const DriverComm &comm = run.comm;
  const std::int64_t B = cfg.problem.batch, H = cfg.problem.heads, D = cfg.problem.head_dim;
  const std::int64_t Hkv = cfg.problem.kv_heads;
  const Partition &part = run.part;
  const int p = comm.rank();
  const std::int64_t n = part.local_size(p);
  Tensor4<Scalar, Mem> q("q", B, n, H, D), k("k", B, n, Hkv, D), v("v", B, n, Hkv, D);
  Tensor4<Scalar, Mem> dout("do", B, n, H, D), o("o", B, n, H, D), dq("dq", B, n, H, D);
  Tensor4<Scalar, Mem> dk("dk", B, n, Hkv, D), dv("dv", B, n, Hkv, D);
  typename RingAttention<Exec, Scalar>::OutTensor3 lse("lse", B, H, n);
  int rc = exit_ok;
  std::string message;
  try {
    const RunConfig *check = run.check_finite ? &cfg : nullptr;
    load_member(run.data, TensorId::q, part, p, q, check);
    load_member(run.data, TensorId::k, part, p, k, check);
    load_member(run.data, TensorId::v, part, p, v, check);
    load_member(run.data, TensorId::dout, part, p, dout, check);
  } catch (const std::exception &e) {
    rc = exit_bad_input;
    message = "ringattn: error on rank " + std::to_string(p) + ": " + e.what();
  }
  if ((rc = comm.agree(rc, message)) != exit_ok) return rc;
#ifdef RINGATTN_ENABLE_MPI
  run.attention.forward(comm.comm(), q, k, v, o, lse);
  for (int rep = 0; rep < run.repeats; ++rep) {
    run.progress.begin_repeat(rep);
    comm.barrier();
    Kokkos::Timer timer;
    stats = run.attention.backward(comm.comm(), q, k, v, o, lse, dout, dq, dk, dv);
    Exec().fence();
    const double seconds = comm.max(timer.seconds());
    if (rep >= cfg.benchmark.warmup) report.repeat_seconds.push_back(seconds);
  }
#else
  (void)report;
  (void)stats;
#endif
  auto dqh = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), dq);
  auto dkh = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), dk);
  auto dvh = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), dv);
  files.write_member(0, part, p, dqh.data());
  files.write_member(1, part, p, dkh.data());
  files.write_member(2, part, p, dvh.data());
  capture_gradient_rows(run.samples, part, p, H * D, dqh.data(), got.dq);
  capture_gradient_rows(run.samples, part, p, Hkv * D, dkh.data(), got.dk);
  capture_gradient_rows(run.samples, part, p, Hkv * D, dvh.data(), got.dv);
  return exit_ok;
}

} // namespace

template <class Scalar>
int run_backward(const PointRun<Scalar> &run, BackwardReport &report) {
  const RunConfig &cfg = run.cfg;
  const DriverComm &comm = run.comm;
  const bool mpi = cfg.ring.mode == RingMode::mpi;
  const std::int64_t B = cfg.problem.batch, D = cfg.problem.head_dim;
  GradientFiles files(cfg, comm);
  int rc = exit_ok;
  if ((rc = files.open()) != exit_ok) return rc;
  RingStats stats;
  GradientSamples got;
  return_freed_memory(); // the forward's buffers
  reset_peak_resident();
  rc = mpi ? backward_on_ranks(run, files, report, stats, got)
           : backward_member_by_member(run, files, report, stats, got);
  if (rc != exit_ok) return rc;
  report.peak_bytes = comm.max(peak_resident_bytes());
  files.commit();

  // the model of that peak: what the backward holds (under MPI beside the
  // largest member's forward buffers, which it keeps: all but the running O)
  {
    const ModelProblem pp = make_model_problem(cfg, run.attention.tiling(D), Exec().concurrency());
    const RingModel ring = analyse_ring(pp, cfg.problem.seq_len, run.part.members);
    report.model_bytes = model_backward(pp, ring, mpi).memory();
    if (mpi)
      report.model_bytes = ringattn::Details::sat_add(
          report.model_bytes, max_member_total(pp, cfg.problem.seq_len, run.part.members, true));
  }

  // work and traffic
  const Pattern pattern = make_pattern(cfg);
  report.key_pairs = backward_key_pairs(pattern, B);
  report.flops = 10.0 * double(D) * double(report.key_pairs);
  if (mpi) {
    report.bytes_sent_per_member = comm.gather(stats.bytes_sent[comm.rank()]);
    report.hops_made = comm.sum(stats.hops_made);
    report.hops_skipped = comm.sum(stats.hops_skipped);
  } else {
    report.bytes_sent_per_member = stats.bytes_sent;
    report.hops_made = stats.hops_made;
    report.hops_skipped = stats.hops_skipped;
  }
  for (int j = 0; j < run.part.members; ++j)
    report.model_bytes_sent_per_member.push_back(
        backward_model_bytes(pattern, run.part, j, B, D, std::int64_t(sizeof(Scalar)),
                             std::int64_t(sizeof(accumulate_t<Scalar>))));

  // verification: the sampled rows this process's members produced, dQ as
  // query rows and dK, dV as key rows, within a budget of reference work
  // for the key rows
  report.verified = !run.samples.empty();
  const double scale = cfg.effective_scale();
  // (query, key) pairs the key-row references may cost: about 10 s of the
  // float64 reference, which reads every key row it scores from the input
  double budget = 2e7;
  for (std::size_t i = 0; i < run.samples.size(); ++i) {
    const SampledRow &s = run.samples[i];
    const auto dq_row = got.dq.find(i);
    if (dq_row == got.dq.end()) continue; // another rank's row
    compare(dq_row->second, reference_dq_row(run.data, pattern, scale, s), report.max_abs_error_dq,
            report.nonfinite);
    ++report.dq_rows;
    std::vector<double> rk, rv;
    if (!reference_dkv_row(run.data, pattern, scale, s, budget, report.dkv_rows == 0, rk, rv))
      continue;
    compare(got.dk.at(i), rk, report.max_abs_error_dk, report.nonfinite);
    compare(got.dv.at(i), rv, report.max_abs_error_dv, report.nonfinite);
    ++report.dkv_rows;
  }
  if (mpi) {
    report.dq_rows = comm.sum(report.dq_rows);
    report.dkv_rows = comm.sum(report.dkv_rows);
    report.max_abs_error_dq = comm.max(report.max_abs_error_dq);
    report.max_abs_error_dk = comm.max(report.max_abs_error_dk);
    report.max_abs_error_dv = comm.max(report.max_abs_error_dv);
    report.nonfinite = comm.sum(std::int64_t(report.nonfinite)) > 0;
  }
  return exit_ok;
}

template int run_backward<float>(const PointRun<float> &, BackwardReport &);
template int run_backward<double>(const PointRun<double> &, BackwardReport &);
template int run_backward<bfloat16_t>(const PointRun<bfloat16_t> &, BackwardReport &);
template int run_backward<float16_t>(const PointRun<float16_t> &, BackwardReport &);

} // namespace ringattn::driver
