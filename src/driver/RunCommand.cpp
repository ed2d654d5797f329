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

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <type_traits>

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

/// A NaN or an infinity in the inputs (input.check_finite): exit 2.
class NonFiniteInput : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// Flat index of the first element of data[0, count) that is NaN or +-inf,
/// or -1 when all are finite. One parallel pass on the host.
template <class Scalar>
std::int64_t first_nonfinite(const Scalar *data, std::int64_t count) {
  std::int64_t first = std::numeric_limits<std::int64_t>::max();
  Kokkos::parallel_reduce(
      "ringattn::check_finite",
      Kokkos::RangePolicy<Kokkos::DefaultHostExecutionSpace, Kokkos::IndexType<std::int64_t>>(
          0, count),
      [=](const std::int64_t i, std::int64_t &m) {
        if (!std::isfinite(data[i]) && i < m) m = i;
      },
      Kokkos::Min<std::int64_t>(first));
  return first < count ? first : -1;
}

/// Throws NonFiniteInput naming the tensor, its file, and the (batch,
/// position, head) of the first NaN or infinity in member p's rows `host`
/// [B, n, heads, D] of tensor `id`.
template <class Scalar>
void check_member_finite(const RunConfig &cfg, TensorId id, const Partition &part, int p,
                         const Scalar *host, std::int64_t count) {
  const std::int64_t bad = first_nonfinite(host, count);
  if (bad < 0) return;
  const std::int64_t D = cfg.problem.head_dim;
  const std::int64_t heads = id == TensorId::q ? cfg.problem.heads : cfg.problem.kv_heads;
  const std::int64_t n = part.local_size(p);
  const std::int64_t d = bad % D, h = (bad / D) % heads, row = (bad / D / heads) % n;
  const std::int64_t b = bad / D / heads / n;
  const std::int64_t t = part.global_position(p, row);
  const double value = double(host[bad]);
  const char *name = id == TensorId::q ? "q" : id == TensorId::k ? "k" : "v";
  const std::string &file = id == TensorId::q   ? cfg.input.q
                            : id == TensorId::k ? cfg.input.k
                                                : cfg.input.v;
  const std::string what = std::isnan(value) ? "NaN" : value > 0 ? "+inf" : "-inf";
  throw NonFiniteInput(cfg.where(std::string("input.") + name) + ": " + file + ": " + what +
                       " in " + name + " at batch " + std::to_string(b) + ", position " +
                       std::to_string(t) + ", head " + std::to_string(h) + " (dim " +
                       std::to_string(d) +
                       "); fix the input, or set input.check_finite: false to run anyway");
}

/// Member p's rows of one tensor from the input, into a device view; with
/// `check`, the rows are scanned for NaN and infinities first (host copy).
template <class Scalar>
void load_member(const InputData &data, TensorId id, const Partition &part, int p,
                 const Tensor4<Scalar, Mem> &view, const RunConfig *check = nullptr) {
  auto host = Kokkos::create_mirror_view(view);
  data.fill_member(id, part, p, host.data());
  if (check) check_member_finite(*check, id, part, p, host.data(), std::int64_t(host.span()));
  Kokkos::deep_copy(view, host);
}

/// Whether a finished member's outputs hold a value the SPEC rules out:
/// NaN or an infinity in O, NaN or +inf in LSE (-inf is an empty row).
template <class Scalar>
bool outputs_nonfinite(const Scalar *o, std::int64_t o_count, const Scalar *lse,
                       std::int64_t lse_count) {
  if (first_nonfinite(o, o_count) >= 0) return true;
  std::int64_t bad = 0;
  Kokkos::parallel_reduce(
      "ringattn::check_lse",
      Kokkos::RangePolicy<Kokkos::DefaultHostExecutionSpace, Kokkos::IndexType<std::int64_t>>(
          0, lse_count),
      [=](const std::int64_t i, std::int64_t &sum) {
        if (std::isnan(lse[i]) || (std::isinf(lse[i]) && lse[i] > 0)) ++sum;
      },
      bad);
  return bad > 0;
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
                 OutputFiles &files, const std::vector<SampledRow> &samples, bool check_finite)
      : cfg_(cfg), data_(data), part_(part), files_(files), samples_(samples),
        unchecked_(check_finite ? 3 * std::size_t(part.members) : 0, true) {}
  bool final_repeat = false;
  std::map<std::size_t, RowValues> got;
  bool outputs_nonfinite = false;

  void load_q(int p, const Tensor4<Scalar, Mem> &q) override { load(TensorId::q, p, q); }
  void load_kv(int p, const Tensor4<Scalar, Mem> &k, const Tensor4<Scalar, Mem> &v) override {
    load(TensorId::k, p, k);
    load(TensorId::v, p, v);
  }
  void store(int p, const Tensor4<Scalar, Mem> &o, const Tensor3<Scalar, Mem> &lse) override {
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
  const InputData &data_;
  const Partition &part_;
  OutputFiles &files_;
  const std::vector<SampledRow> &samples_;
  std::vector<bool> unchecked_; // (tensor, member) not yet scanned for NaN/Inf

  void load(TensorId id, int p, const Tensor4<Scalar, Mem> &view) {
    // The inputs do not change between repeats: scan each member's rows once.
    const std::size_t slot = std::size_t(id) * std::size_t(part_.members) + std::size_t(p);
    const bool check = slot < unchecked_.size() && unchecked_[slot];
    load_member(data_, id, part_, p, view, check ? &cfg_ : nullptr);
    if (check) unchecked_[slot] = false;
  }
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

/// Bytes free for the ring's buffers in memory space Mem, or -1 if unknown:
/// the host's available memory (and cgroup limit), or the GPU's free memory.
std::int64_t available_bytes() {
#if defined(KOKKOS_ENABLE_CUDA)
  if constexpr (std::is_same_v<Mem, Kokkos::CudaSpace>) {
    std::size_t free = 0, total = 0;
    if (cudaMemGetInfo(&free, &total) == cudaSuccess) return std::int64_t(free);
    return -1;
  }
#endif
  return available_host_bytes();
}

std::string gib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / double(1 << 30));
  return buf;
}

/// Empty when the member's tensors (Q, K, V, O [B, n, H|Hkv, D], LSE [B, H, n],
/// a lower bound on what the ring allocates) fit the memory available; else
/// the error message. `rank` < 0: the simulated ring (its largest member).
/// RINGATTN_SKIP_MEMORY_CHECK=1 skips the check (allocation errors are still
/// reported, as exit 1).
template <class Scalar>
std::string check_memory(const RunConfig &cfg, const Partition &part, int rank) {
  if (const char *skip = std::getenv("RINGATTN_SKIP_MEMORY_CHECK"); skip && *skip == '1') return "";
  // The simulated ring sizes its buffers for its largest member: at most
  // ceil(N / pieces) rows per piece (no loop over what may be 2^31 members).
  const std::int64_t per_piece = (part.seq_len + part.num_pieces() - 1) / part.num_pieces();
  const std::int64_t n = rank >= 0
                             ? part.local_size(rank)
                             : std::min(part.seq_len, per_piece * std::int64_t(part.num_ranges()));
  const auto &pr = cfg.problem;
  // in double: the deck bounds B*N*H*D*bytes by 2^62, the sum of five can pass 2^63
  const double rows = double(pr.batch) * double(n);
  const double need = rows * double(sizeof(Scalar)) *
                      (double(pr.head_dim) * (2.0 * double(pr.heads) + 2.0 * double(pr.kv_heads)) +
                       double(pr.heads));
  const std::int64_t avail = available_bytes();
  if (avail < 0 || need <= double(avail)) return "";
  return "ringattn: error: not enough memory" +
         std::string(rank >= 0 ? " on rank " + std::to_string(rank) : "") +
         ": a ring member's Q, K, V, O and LSE (B=" + std::to_string(pr.batch) + ", " +
         std::to_string(n) + " of N=" + std::to_string(pr.seq_len) +
         " positions, H=" + std::to_string(pr.heads) + ", Hkv=" + std::to_string(pr.kv_heads) +
         ", D=" + std::to_string(pr.head_dim) + ", " + dtype_name(pr.dtype) + ") need " +
         gib(need) + ", " + gib(double(avail)) +
         " is available; use a larger ring.size or a smaller problem (ringattn plan DECK "
         "--memory SIZE gives the longest sequence that fits), or set "
         "RINGATTN_SKIP_MEMORY_CHECK=1 to try anyway";
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
  std::string message = check_memory<Scalar>(cfg, part, mpi ? comm.rank() : -1);
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
  std::map<std::size_t, RowValues> got;
  RingStats stats;
  bool outputs_bad = false; // a NaN or a stray infinity anywhere in this member's O or LSE

  if (mpi) {
#ifdef RINGATTN_ENABLE_MPI
    if (comm.comm() == MPI_COMM_NULL) throw std::logic_error("ring.mode mpi without MPI_Init");
    const int p = comm.rank();
    const std::int64_t n = part.local_size(p);
    const std::int64_t H = cfg.problem.heads;
    const std::int64_t Hkv = cfg.problem.kv_heads;
    Tensor4<Scalar, Mem> q("q", B, n, H, D), k("k", B, n, Hkv, D), v("v", B, n, Hkv, D);
    Tensor4<Scalar, Mem> o("o", B, n, H, D);
    Tensor3<Scalar, Mem> lse("lse", B, H, n);
    try {
      if (fault.at("load", p)) throw std::runtime_error("injected fault while reading inputs");
      const RunConfig *check = check_finite ? &cfg : nullptr;
      load_member(*data, TensorId::q, part, p, q, check);
      load_member(*data, TensorId::k, part, p, k, check);
      load_member(*data, TensorId::v, part, p, v, check);
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
    outputs_bad = !samples.empty() && outputs_nonfinite(oh.data(), std::int64_t(oh.span()),
                                                        lh.data(), std::int64_t(lh.span()));
    report.bytes_sent_per_member = comm.gather(stats.bytes_sent[p]);
    report.compute_seconds_per_member = comm.gather(stats.compute_seconds[p]);
    report.hops_made = comm.sum(stats.hops_made);
    report.hops_skipped = comm.sum(stats.hops_skipped);
    report.peak_bytes_per_member = comm.gather(peak_resident_bytes());
    report.peak_scope = "rank";
#else
    // check_build_supports() refuses such a deck up front; never run it as nothing.
    throw std::logic_error("ring.mode mpi reached a build without MPI");
#endif
  } else {
    DriverMemberIO<Scalar> io(cfg, *data, part, files, samples, check_finite);
    for (int rep = 0; rep < repeats; ++rep) {
      progress.begin_repeat(rep);
      io.final_repeat = rep + 1 == repeats;
      Kokkos::Timer timer;
      try {
        stats = attention.forward(io, B, D);
      } catch (const NonFiniteInput &e) { // one process: nobody waits on us
        return comm.agree(exit_bad_input, std::string("ringattn: error: ") + e.what());
      }
      Exec().fence();
      if (rep >= cfg.benchmark.warmup) report.repeat_seconds.push_back(timer.seconds());
    }
    got = std::move(io.got);
    outputs_bad = io.outputs_nonfinite;
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
  // Beyond the sampled rows: any NaN in the outputs fails the verification.
  if (outputs_bad) mine.nonfinite = true;
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
        {"output.lse", &deck.output.lse}};
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
    // Kokkos, MPI and the program, before this point's data; and this point's own peak.
    return_freed_memory();
    reset_peak_resident();
    const std::int64_t baseline = resident_bytes();
    RunReport report;
    rc = cfg.problem.dtype == DType::float64 ? run_point<double>(cfg, cl, comm, baseline, report)
                                             : run_point<float>(cfg, cl, comm, baseline, report);
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
