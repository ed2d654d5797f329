// `ringattn plan DECK [--memory SIZE]` (docs/SPEC.md section 4): the memory model per ring
// member, communication volume and FLOPs of the deck, the longest sequence
// that fits SIZE per member for ring sizes 1 to 64, and the claims that
// motivated the project beside the model. Runs inside the runtime; only rank
// 0 of MPI_COMM_WORLD computes and prints. The numbers come from the library's
// model (model/RingAttn_RingModel.hpp); this file only prints them.
#include "Commands.hpp"
#include "DriverComm.hpp"
#include "Plan.hpp"

#include <RingAttn_Config.hpp>
#include <api/RingAttn_RingAttention.hpp>
#include <core/detail/RingAttn_Saturating.hpp>

#include <Kokkos_Core.hpp>
#ifdef RINGATTN_ENABLE_MPI
#include <mpi.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace ringattn::driver {

namespace {

/// Rows of cells printed with aligned columns: the first left-aligned, the
/// others right-aligned unless `left` says so.
class Table {
public:
  explicit Table(std::vector<bool> left) : left_(std::move(left)) {}
  void row(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }
  void print(std::ostream &out, const std::string &indent = "  ") const {
    std::vector<std::size_t> width;
    for (const auto &r : rows_)
      for (std::size_t c = 0; c < r.size(); ++c) {
        if (width.size() <= c) width.push_back(0);
        width[c] = std::max(width[c], r[c].size());
      }
    for (const auto &r : rows_) {
      std::string line = indent;
      for (std::size_t c = 0; c < r.size(); ++c) {
        const bool left = c < left_.size() ? left_[c] : false;
        const std::string pad(width[c] - r[c].size(), ' ');
        if (c > 0) line += "  ";
        line += left ? r[c] + (c + 1 < r.size() ? pad : "") : pad + r[c];
      }
      line.erase(line.find_last_not_of(' ') + 1);
      out << line << "\n";
    }
  }

private:
  std::vector<bool> left_;
  std::vector<std::vector<std::string>> rows_;
};

std::string num(long double v) {
  char buf[64];
  if (v < 9.2e18L)
    std::snprintf(buf, sizeof buf, "%lld", (long long)std::llround(v));
  else
    std::snprintf(buf, sizeof buf, "%.4Le", v);
  return buf;
}
std::string num(std::int64_t v) {
  return v >= ringattn::Details::saturated ? ">= 2^63" : std::to_string(v);
}

std::string bytes_text(std::int64_t b) {
  return b >= ringattn::Details::saturated ? "beyond 2^63 B" : human_bytes((long double)b);
}

std::string percent(long double part, long double whole) {
  const long double v = whole > 0 ? 100 * part / whole : 0.0L;
  char buf[32];
  if (v > 0 && v < 0.1L)
    std::snprintf(buf, sizeof buf, "%.2Lg%%", v);
  else
    std::snprintf(buf, sizeof buf, "%.1Lf%%", v);
  return buf;
}

std::string fixed(long double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*Lf", digits, v);
  return buf;
}

std::string list_text(const std::vector<std::int64_t> &v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

/// The ring size planned for: ring.size, or for mode mpi without one, the
/// ranks of this launch.
int ring_members(const RunConfig &cfg, int world_size) {
  return cfg.ring.size > 0 ? cfg.ring.size : std::max(1, world_size);
}

/// Everything a capacity table depends on (not seq_len, not ring size).
std::string shape_key(const RunConfig &c) {
  std::ostringstream s;
  s << c.problem.batch << ' ' << c.problem.heads << ' ' << c.problem.kv_heads << ' '
    << c.problem.head_dim << ' ' << int(c.problem.dtype) << ' ' << int(c.attention.kind) << ' '
    << list_text(c.attention.segment_lengths) << list_text(c.attention.dilation_rates) << ' '
    << int(c.attention.mixing) << ' ' << c.attention.causal << ' ' << int(c.ring.partition);
  return s.str();
}

void print_problem(std::ostream &out, const RunConfig &cfg, const ModelProblem &pp, int P,
                   const PlanOptions &opt) {
  const auto &p = cfg.problem;
  const auto &a = cfg.attention;
  const Partition part(cfg.ring.partition, p.seq_len, P);
  std::int64_t n_min = part.local_size(0), n_max = n_min;
  for (int m = 1; m < P; ++m) {
    n_min = std::min(n_min, part.local_size(m));
    n_max = std::max(n_max, part.local_size(m));
  }
  out << "problem\n";
  Table t({true, true});
  t.row({"tokens N", std::to_string(p.seq_len)});
  t.row({"batch B", std::to_string(p.batch)});
  std::string heads = std::to_string(p.heads) + " / " + std::to_string(p.kv_heads);
  if (p.heads != p.kv_heads)
    heads += " (" + std::to_string(p.heads / p.kv_heads) + " query heads per kv head)";
  t.row({"heads H / kv heads Hkv", heads});
  t.row({"head dim D", std::to_string(p.head_dim)});
  t.row({"dtype", std::string(dtype_name(p.dtype)) + " (" + std::to_string(dtype_size(p.dtype)) +
                      " bytes)"});
  std::string att = std::string(to_string(a.kind)) + (a.causal ? ", causal" : ", non-causal");
  if (a.kind == AttentionKind::dilated) att += ", mixing " + std::string(to_string(a.mixing));
  t.row({"attention", att});
  if (a.kind == AttentionKind::dilated)
    t.row({"", "segment_lengths " + list_text(a.segment_lengths) + ", dilation_rates " +
                   list_text(a.dilation_rates)});
  std::string ring = std::string(to_string(cfg.ring.mode)) + ", " + std::to_string(P) +
                     (P == 1 ? " member, " : " members, ") + to_string(cfg.ring.partition) + ", ";
  ring += n_min == n_max
              ? std::to_string(n_max) + " tokens per member"
              : std::to_string(n_min) + " to " + std::to_string(n_max) + " tokens per member";
  t.row({"ring", ring});
  if (cfg.ring.size == 0) t.row({"", "(ring.size not set: the number of ranks of this launch)"});
  t.row({"kernel", "q_tile " + std::to_string(pp.tiling.q_tile) + ", k_tile " +
                       std::to_string(pp.tiling.k_tile) + ", " + std::to_string(pp.threads) +
                       (pp.threads == 1 ? " team" : " teams") + " in flight (" + opt.exec_space +
                       ")"});
  t.print(out);
}

void print_memory_table(std::ostream &out, const MemberMemoryModel &m, const ExchangeExtent &e,
                        const ModelProblem &pp, bool mpi) {
  const std::string R =
      std::to_string(e.recv_rows_at[1]) + ", D] + [2, B, " + std::to_string(e.recv_rows_at[0]);
  Table t({true, true, false, false});
  t.row({"buffer", "shape", "bytes", "size"});
  auto add = [&](const std::string &name, const std::string &shape, std::int64_t b) {
    t.row({name, shape, num(b), bytes_text(b)});
  };
  add("Q", "[B, n, H, D]", m.q);
  add("K", "[B, n, Hkv, D]", m.k);
  add("V", "[B, n, Hkv, D]", m.v);
  // the member's rows n, from Q's bytes
  const std::int64_t n =
      m.q / std::max<std::int64_t>(1, pp.batch * pp.pattern.heads * pp.head_dim * pp.scalar_bytes);
  const std::string chunk = std::to_string(ringattn::Details::running_o_chunk_rows(
      n, ringattn::Details::sat_mul(pp.batch, pp.pattern.heads)));
  add("O",
      pp.scalar_bytes >= 4 ? "[B, n, H, D]"
      : e.recv_rows == 0   ? "[B, n, H, D], and a float32 chunk of " + chunk + " rows"
                           : "[B, n, H, D], and a float32 copy",
      m.o);
  add("LSE", pp.scalar_bytes < 4 ? "[B, H, n], float" : "[B, H, n]", m.lse);
  // mpi: two wires received, one sent (from K and V in place where MPI reads
  // host memory), and the largest piece of a branch's block where the kernels
  // do not read the wire (rows read more than once); own rows are read in place
  add("K/V blocks",
      mpi ? "[2, B, " + R + ", D] received, " +
                (pp.shape().sends_in_place
                     ? std::string("sent in place, ")
                     : "[2, B, " + std::to_string(e.send_rows) + ", D] sent, ") +
                "[2, B, " + std::to_string(e.branch_expand_rows) + ", D] expanded (a piece)"
          : "none (K/V read in place)",
      m.blocks);
  add("tiles",
      std::to_string(pp.threads) + (pp.threads == 1 ? " team x " : " teams x ") +
          std::to_string(pp.tiling.q_tile) + "x" + std::to_string(pp.tiling.k_tile) +
          " tile scratch",
      m.tiles);
  add("schedule", std::to_string(e.tasks) + " tasks, " + std::to_string(e.items) + " work items",
      m.schedule);
  add("total", "", m.total());
  add("floor", "caller's Q, K, V, O, LSE, receive buffers, tiles", m.floor);
  t.print(out);
}

void print_memory(std::ostream &out, const RunConfig &cfg, const ModelProblem &pp,
                  const RingModel &ra) {
  const int P = ra.members;
  const int big = ra.largest_member(), small = ra.smallest_member();
  const int pbig = ra.evaluated[big], psmall = ra.evaluated[small];
  const Partition part(pp.partition, ra.seq_len, P);
  const std::string sampled = ra.sampled ? " (" + std::to_string(ra.evaluated.size()) +
                                               " sampled members of " + std::to_string(P) + ")"
                                         : "";
  if (cfg.ring.mode == RingMode::simulated) {
    out << "\nmemory of the process (mode simulated: " << P
        << (P == 1 ? " member" : " members in turn")
        << ", buffers of the largest, n = " << ra.process_rows << ")" << sampled << "\n";
    print_memory_table(out, ra.process, ra.process_extent, pp, false);
    out << "  as a mode mpi ring of " << P << ", the largest member (" << pbig << ") would hold "
        << bytes_text(ra.memory[big].total()) << "\n";
    return;
  }
  out << "\nmemory per member (mode mpi: " << P << (P == 1 ? " member" : " members")
      << "; the largest, member " << pbig << ", n = " << part.local_size(pbig) << ")" << sampled
      << "\n";
  print_memory_table(out, ra.memory[big], ra.extents[big], pp, true);
  const std::int64_t tmax = ra.memory[big].total(), tmin = ra.memory[small].total();
  out << "  spread over members: min " << bytes_text(tmin) << " (member " << psmall << "), max "
      << bytes_text(tmax) << " (member " << pbig
      << "), (max - min) / max = " << percent((long double)(tmax - tmin), (long double)tmax)
      << "\n";
}

void print_communication(std::ostream &out, const ModelProblem &pp, const RingModel &ra) {
  const int P = ra.members;
  out << "\ncommunication (one ring pass: the K/V rows a member sends, summed over its\n"
         "  destinations; a row is 2 * B * D * "
      << pp.scalar_bytes << " bytes)\n";
  std::size_t lo = 0, hi = 0;
  long double sum = 0, dense_sum = 0;
  std::int64_t dense_max = 0;
  for (std::size_t k = 0; k < ra.sent_bytes.size(); ++k) {
    if (ra.sent_bytes[k] < ra.sent_bytes[lo]) lo = k;
    if (ra.sent_bytes[k] > ra.sent_bytes[hi]) hi = k;
    sum += ra.sent_bytes[k];
    dense_sum += ra.dense_bytes[k];
    dense_max = std::max(dense_max, ra.dense_bytes[k]);
  }
  const long double scale = (long double)P / ra.evaluated.size(); // 1 unless sampled
  const std::string approx = ra.sampled ? "~" : "";
  Table t({true, true});
  t.row({"per member", "min " + bytes_text(ra.sent_bytes[lo]) + " (member " +
                           std::to_string(ra.evaluated[lo]) + "), max " +
                           bytes_text(ra.sent_bytes[hi]) + " (member " +
                           std::to_string(ra.evaluated[hi]) + ")"});
  t.row({"total", approx + human_bytes(sum * scale) + " (" + approx + num(sum * scale) +
                      " bytes), " + percent(sum, dense_sum) + " of a dense ring's"});
  t.row({"dense ring", "max " + bytes_text(dense_max) + " per member, " + approx +
                           human_bytes(dense_sum * scale) +
                           " in all ((P-1) * B * n_p * Hkv * D * 2 * " +
                           std::to_string(pp.scalar_bytes) + " bytes)"});
  const std::int64_t hops = ra.hops_made + ra.hops_skipped;
  t.row({"hops", std::to_string(ra.hops_made) + " made, " + std::to_string(ra.hops_skipped) +
                     " skipped (empty block) of " + std::to_string(hops) +
                     (ra.sampled ? " sends of the sampled members" : "") +
                     " (one member's block to one other)"});
  t.print(out);
}

void print_work(std::ostream &out, const RunConfig &cfg, const ModelProblem &pp,
                const RingModel &ra) {
  const Pattern pat = pp.pattern_at(ra.seq_len);
  const long double B = pp.batch, D = pp.head_dim;
  const long double pairs = pairs_in_range(pat, 0, ra.seq_len) * B;
  const long double dense = (long double)ra.seq_len * ra.seq_len * pat.heads * B;
  out << "\nwork (4 * D FLOPs per (query, key) pair the pattern keeps, docs/SPEC.md section 6)\n";
  Table t({true, true});
  t.row({"key pairs", num(pairs) + " (" + percent(pairs, dense) +
                          " of dense non-causal N^2 * H * B = " + num(dense) + ")"});
  t.row({"FLOPs", human_count(4 * D * pairs, "FLOP") + " (" + num(4 * D * pairs) + ")"});
  std::size_t lo = 0, hi = 0;
  long double sum = 0;
  for (std::size_t k = 0; k < ra.pairs.size(); ++k) {
    if (ra.pairs[k] < ra.pairs[lo]) lo = k;
    if (ra.pairs[k] > ra.pairs[hi]) hi = k;
    sum += ra.pairs[k];
  }
  const long double mean = sum / ra.pairs.size();
  t.row({"per member", "min " + human_count(4 * D * B * ra.pairs[lo], "FLOP") + " (member " +
                           std::to_string(ra.evaluated[lo]) + "), max " +
                           human_count(4 * D * B * ra.pairs[hi], "FLOP") + " (member " +
                           std::to_string(ra.evaluated[hi]) + "), max / mean " +
                           fixed(mean > 0 ? ra.pairs[hi] / mean : 1.0L, 2) +
                           (cfg.ring.partition == PartitionKind::contiguous &&
                                    cfg.attention.causal && mean > 0 && ra.pairs[hi] / mean >= 1.05L
                                ? " (zigzag balances causal work)"
                                : "")});
  t.print(out);
}

/// attention.backward (docs/SPEC.md section 7): the backward's extra memory, traffic and
/// work, as model_backward() gives them.
void print_backward(std::ostream &out, const RunConfig &cfg, const ModelProblem &pp,
                    const RingModel &ra) {
  const bool mpi = cfg.ring.mode == RingMode::mpi;
  const BackwardModel bm = model_backward(pp, ra, mpi);
  const std::int64_t acc = pp.scalar_bytes >= 8 ? 8 : 4;
  out << "\nbackward (attention.backward: dQ, dK, dV from dO, docs/SPEC.md section 7)\n";
  Table t({true, true});
  t.row({"memory",
         mpi ? bytes_text(bm.memory()) + " more per member (the largest): dO, dQ, dK, dV " +
                   bytes_text(bm.tensors) + ", Delta " + bytes_text(bm.delta) +
                   (bm.accumulators ? ", float accumulators " + bytes_text(bm.accumulators) : "") +
                   ", dK/dV partials " + bytes_text(bm.partials) +
                   " (the own block's K/V read and its dK/dV added in place)"
             : bytes_text(bm.memory()) +
                   " in the process while the backward runs (member by member; the "
                   "forward's buffers freed, its O and LSE in a temporary file): one member's "
                   "Q, O, dO, K, V, LSE " +
                   bytes_text(bm.copies) + ", Delta " + bytes_text(bm.delta) +
                   ", dQ, dK, dV sums " + bytes_text(bm.accumulators) +
                   ", K/V wire and expanded piece " + bytes_text(bm.kv_blocks) +
                   ", dK/dV partials " + bytes_text(bm.partials)});
  const long double scale = (long double)ra.members / ra.evaluated.size();
  const std::string approx = ra.sampled ? "~" : "";
  const long double kv = bm.kv_bytes, back = bm.partial_bytes;
  t.row({"communication", "max " + bytes_text(bm.worst_member_bytes) + " per member (member " +
                              std::to_string(bm.worst_member) + "), " + approx +
                              human_bytes((kv + back) * scale) + " in all: K/V blocks " + approx +
                              human_bytes(kv * scale) + " (the forward's wire), dK/dV partials " +
                              approx + human_bytes(back * scale) + " (rows of " +
                              std::to_string(acc) + "-byte values)"});
  t.row({"FLOPs", human_count(bm.flops, "FLOP") + " (10 * D per kept pair; " +
                      human_count(bm.flops * 14 / 10, "FLOP") +
                      " computed: the two passes recompute Q K^T and dO V^T)"});
  t.print(out);
}

void print_capacity(std::ostream &out, const ModelProblem &pp, int P, const PlanOptions &opt) {
  const std::string size = human_bytes((long double)opt.memory_bytes);
  out << "\nlongest sequence that fits " << size << " per member"
      << (opt.memory_given ? "" : " (the default; set it with --memory SIZE)") << "\n"
      << "  (mode mpi, " << to_string(pp.partition)
      << " partition, the deck's B, H, Hkv, D, dtype and pattern,\n  "
      << (pp.dense ? "dense at every N" : "segment lengths fixed") << "; N a multiple of "
      << default_fit_step << "; the largest member's memory)\n";
  Table t({false, false, false, false, false});
  t.row({"ring size", "longest N", "tokens per member", "memory per member", ""});
  for (int members = 1; members <= 64; members *= 2) {
    const Fit fit = longest_fitting_sequence(pp, members, opt.memory_bytes);
    const std::string mark = members == P ? "<- the deck's ring size" : "";
    if (fit.seq_len == 0) {
      t.row({std::to_string(members), "none", "-", "-",
             "(" + std::to_string(default_fit_step) + " tokens do not fit)"});
      continue;
    }
    t.row({std::to_string(members), (fit.capped ? ">= " : "") + std::to_string(fit.seq_len),
           std::to_string((fit.seq_len + members - 1) / members), bytes_text(fit.bytes), mark});
  }
  t.print(out);
}

void print_claims(std::ostream &out, const ModelProblem &pp, const PlanOptions &opt) {
  struct Claim {
    int members;
    std::int64_t tokens;
    const char *claimed;
    long double claimed_bytes; // 0: not stated
  };
  const Claim claims[] = {{8, 131072, "0.23 GB", 0.23e9L},
                          {16, 524288, "0.71 GB", 0.71e9L},
                          {32, 18874368, "(not stated)", 0}};
  out << "\nclaimed vs modelled (the claims of the analysis RingAttn started from, GB = 10^9 "
         "bytes;\n"
         "  modelled for mode mpi, "
      << to_string(pp.partition) << ", the deck's B, H, Hkv, D, dtype and pattern)\n";
  Table t({false, false, false, false, false, true});
  t.row({"ring size", "tokens", "claimed per member", "modelled per member", "modelled / claimed",
         "fits " + human_bytes((long double)opt.memory_bytes)});
  for (const Claim &c : claims) {
    const std::int64_t m = max_member_total(pp, c.tokens, c.members);
    t.row(
        {std::to_string(c.members), std::to_string(c.tokens), c.claimed, bytes_text(m),
         c.claimed_bytes > 0 ? fixed((long double)m / c.claimed_bytes, 2) : "-",
         m < ringattn::Details::saturated && std::uint64_t(m) <= opt.memory_bytes ? "yes" : "no"});
  }
  t.print(out);
}

/// Checks what the plan can evaluate; prints the problem to err.
bool plan_limits_ok(const RunConfig &cfg, int P, std::ostream &err) {
  if (P > plan_max_members) {
    err << cfg.where("ring.size") << ": ringattn plan evaluates rings of at most "
        << plan_max_members << " members, got " << P << "\n";
    return false;
  }
  const std::int64_t entries = ringattn::Details::exchange_entries(make_pattern(cfg));
  if (entries > plan_max_entries) {
    err << cfg.where("problem.heads") << ": ringattn plan evaluates at most " << plan_max_entries
        << " (kv head, dilation phase) classes, this deck has " << entries
        << " (heads, kv_heads and dilation_rates are too large together)\n";
    return false;
  }
  return true;
}

} // namespace

int write_plan(const RunConfig &deck, const PlanOptions &opt, std::ostream &out,
               std::ostream &err) {
  const std::vector<RunConfig> points = expand_sweep(deck);
  for (const RunConfig &cfg : points)
    if (!plan_limits_ok(cfg, ring_members(cfg, opt.world_size), err)) return exit_bad_input;

  out << "ringattn plan " << deck.deck_path << "\n"
      << "# A model, not a measurement: the buffers each ring member allocates (as the rings\n"
         "# of src/ring size them), the K/V rows it sends and the (query, key) pairs it\n"
         "# scores. A process also holds a constant (Kokkos, MPI, the program) left out here.\n";
  if (points.size() > 1)
    out << "# The deck sweeps " << points.size() << " points; each is planned in turn.\n";

  std::vector<std::string> shapes_done;
  for (std::size_t k = 0; k < points.size(); ++k) {
    const RunConfig &cfg = points[k];
    if (points.size() > 1) {
      out << "\n=== sweep point " << k + 1 << " of " << points.size() << ":";
      for (const auto &[key, value] : cfg.sweep_point) out << " " << key << "=" << value;
      out << " ===\n";
    }
    out << "\n";
    const int P = ring_members(cfg, opt.world_size);
    const ModelProblem pp = make_model_problem(cfg, opt.tiling, opt.threads);
    const RingModel ra = analyse_ring(pp, cfg.problem.seq_len, P);
    print_problem(out, cfg, pp, P, opt);
    print_memory(out, cfg, pp, ra);
    print_communication(out, pp, ra);
    print_work(out, cfg, pp, ra);
    if (cfg.attention.backward) print_backward(out, cfg, pp, ra);
    const std::string shape = shape_key(cfg);
    const auto done = std::find(shapes_done.begin(), shapes_done.end(), shape);
    if (done != shapes_done.end()) {
      out << "\n(longest sequences and claims: as for sweep point "
          << (done - shapes_done.begin()) + 1 << ", the same shape)\n";
      shapes_done.push_back(shape);
      continue;
    }
    shapes_done.push_back(shape);
    print_capacity(out, pp, P, opt);
    print_claims(out, pp, opt);
  }
  return exit_ok;
}

int plan_command(const RunConfig &cfg, const CommandLine &cl) {
  int rank = 0, size = 1;
#ifdef RINGATTN_ENABLE_MPI
  if (mpi_active()) { // a launch; outside one, plan runs without MPI
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
  }
#endif
  using Exec = Kokkos::DefaultExecutionSpace;
  PlanOptions opt;
  if (cl.memory_bytes) {
    opt.memory_bytes = *cl.memory_bytes;
    opt.memory_given = true;
  }
  opt.world_size = size;
  opt.tiling = default_tiling<Exec>(int(std::min<std::int64_t>(cfg.problem.head_dim, INT32_MAX)));
  const int lanes = std::max(1, opt.tiling.team_size * opt.tiling.vector_length);
  opt.threads = std::max(1, int(Exec().concurrency()) / lanes);
  opt.exec_space = Exec::name();

  // Every rank checks the limits (the same deck gives the same answer), so
  // all return the same code; rank 0 alone plans and prints.
  std::ostringstream text, errors;
  int rc = exit_ok;
  if (rank == 0) {
    rc = write_plan(cfg, opt, text, errors);
  } else {
    for (const RunConfig &point : expand_sweep(cfg))
      if (!plan_limits_ok(point, ring_members(point, size), errors)) rc = exit_bad_input;
  }
  if (rank == 0) {
    std::cout << text.str() << std::flush;
    std::cerr << errors.str() << std::flush;
  }
  return rc;
}

} // namespace ringattn::driver
