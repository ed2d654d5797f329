#ifndef RINGATTN_RINGMODEL_HPP
#define RINGATTN_RINGMODEL_HPP

// The model of a ring (docs/SPEC.md section 4, `ringattn plan`): memory per member,
// communication, work and the longest sequence that fits a memory size per
// member, for any sequence length and ring size, in O(1) in N per member.
// What `ringattn plan` prints, and what an application can ask before it
// allocates anything:
//
//   ringattn::ModelProblem problem = ringattn::ModelProblem::of(pattern, B, D,
//       sizeof(Scalar), PartitionKind::zigzag, tiling, threads);
//   ringattn::RingModel ring = ringattn::analyse_ring(problem, N, P);
//   ringattn::Fit fit = ringattn::longest_fitting_sequence(problem, P, 8ull << 30);
//
// The buffers are those of ring/RingAttn_MemoryModel.hpp (member_memory(),
// the one formula), with the exchanges counted by
// model/detail/RingAttn_ExchangeCounter.hpp instead of enumerated;
// unit_tests/tstPlan.cpp checks that both agree. Every size saturates at
// INT64_MAX (Details::saturated), so no size overflows.

#include <api/RingAttn_Options.hpp>
#include <core/detail/RingAttn_Saturating.hpp>
#include <model/detail/RingAttn_ExchangeCounter.hpp>
#include <pattern/RingAttn_Partition.hpp>
#include <pattern/RingAttn_Pattern.hpp>
#include <ring/RingAttn_MemoryModel.hpp>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <stdexcept>
#include <vector>

namespace ringattn {

/// The problem shape a model evaluates at any sequence length and ring
/// size: the pattern (segment lengths and rates fixed; dense stays dense),
/// batch, head dim, storage bytes, partition, and the kernel's tiling and
/// threads (teams in flight) that size the tiles.
struct ModelProblem {
  Pattern pattern;
  bool dense = true;
  std::int64_t batch = 1;
  std::int64_t head_dim = 1;
  std::int64_t scalar_bytes = 4;
  PartitionKind partition = PartitionKind::contiguous;
  Tiling tiling;
  int threads = 1;

  /// The problem of `pattern` (dense when it has one branch of segment
  /// length N and rate 1, the pattern of Pattern::dense).
  static ModelProblem of(const Pattern &pattern, std::int64_t batch, std::int64_t head_dim,
                         std::int64_t scalar_bytes, PartitionKind partition, const Tiling &tiling,
                         int threads) {
    ModelProblem pp;
    pp.pattern = pattern;
    pp.dense = pattern.num_branches == 1 && pattern.dilation_rate[0] == 1 &&
               pattern.segment_length[0] >= pattern.seq_len;
    pp.batch = batch;
    pp.head_dim = head_dim;
    pp.scalar_bytes = scalar_bytes;
    pp.partition = partition;
    pp.tiling = tiling;
    pp.threads = std::max(1, threads);
    return pp;
  }

  /// The pattern at sequence length n.
  Pattern pattern_at(std::int64_t n) const {
    if (dense) return Pattern::dense(n, pattern.heads, pattern.kv_heads, pattern.causal);
    Pattern p = pattern;
    p.seq_len = n;
    return p;
  }

  /// What sizes a member's buffers besides its rows and exchanges.
  MemberShape shape() const {
    return MemberShape::of(pattern, batch, head_dim, scalar_bytes, tiling, threads);
  }
};

/// One ring's numbers. Members are evaluated all (exact) up to
/// `exact_member_limit`, else a sample (first, last, evenly spaced).
struct RingModel {
  int members = 1;
  std::int64_t seq_len = 0;
  bool sampled = false;
  std::vector<int> evaluated;            ///< the members below are of these
  std::vector<MemberMemoryModel> memory; ///< mode mpi, per evaluated member
  std::vector<ExchangeExtent> extents;   ///< largest exchanges, per evaluated member
  MemberMemoryModel process;             ///< mode simulated: the whole process
  ExchangeExtent process_extent;
  std::int64_t process_rows = 0;           ///< n of the process: its largest member's rows
  std::vector<std::int64_t> sent_rows;     ///< wire rows member p sends, summed over destinations
  std::vector<std::int64_t> received_rows; ///< wire rows member p receives, summed over sources
  std::vector<std::int64_t> sent_bytes;    ///< the same in bytes (2 * B * D * scalar per row)
  std::vector<std::int64_t> dense_bytes;   ///< what a dense ring would send: (P-1)*B*n_p*Hkv*D*2*s
  std::int64_t hops_made = 0,
               hops_skipped = 0;  ///< blocks sent / empty (sends of the evaluated members)
  std::vector<long double> pairs; ///< (query, key) pairs of the queries a member owns, per batch

  int largest_member() const; ///< index into `evaluated` of the largest mpi total
  int smallest_member() const;
};

/// The longest sequence (a multiple of `step`) whose largest mpi member
/// fits `memory_bytes`: a doubling search, then bisection, so that
/// max_member_total(seq_len) <= memory < max_member_total(seq_len + step)
/// (when the model grows with N). seq_len 0: not even `step` tokens fit;
/// `capped`: `cap` tokens fit (the search stops there).
struct Fit {
  int members = 1;
  std::int64_t seq_len = 0;
  std::int64_t bytes = 0; ///< largest member total at seq_len
  bool capped = false;
  int evaluations = 0;
};
inline constexpr std::int64_t default_fit_step = 64;
inline constexpr std::int64_t default_fit_cap = std::int64_t(1) << 48;

inline long double pairs_in_range(const Pattern &pat, std::int64_t begin, std::int64_t end);

namespace Details {

/// What member `receiver` allocates for exchange c (largest_exchange()'s
/// rule): the wire of a hop that crosses (its own rows are read in place),
/// the block the kernels read, and the expanded block where that is not the
/// wire (rows read more than once).
inline void merge_recv(ExchangeExtent &e, const ExchangeCount &c, int step) {
  e.block_rows = std::max(e.block_rows, c.rows);
  // the plan holds the tasks and work items of every hop
  for (int i = 0; i < max_branches; ++i) {
    e.tasks = sat_add(e.tasks, c.branch_tasks[i]);
    e.items = sat_add(e.items, c.branch_items[i]);
  }
  if (step == 0) {
    e.own_rows = std::max(e.own_rows, c.rows);
    return;
  }
  e.add_received(step, c.wire_rows);
  if (c.wire_rows < c.rows) {
    for (int i = 0; i < max_branches; ++i)
      if (!c.branch_reads_wire[i])
        e.branch_expand_rows = std::max(e.branch_expand_rows,
                                        std::min(c.branch_rows[i], expand_piece_rows(c.wire_rows)));
  }
}

/// Whether members a and b may share a segment in some branch (else every
/// exchange between them is empty and need not be counted).
inline bool may_share(const Pattern &pat, const Partition &part, int a, int b) {
  const int nr = part.num_ranges();
  for (int i = 0; i < pat.num_branches; ++i) {
    const std::int64_t w = pat.segment_length[i];
    for (int ka = 0; ka < nr; ++ka)
      for (int kb = 0; kb < nr; ++kb) {
        const Range x = part.range(a, ka), y = part.range(b, kb);
        if (x.size() == 0 || y.size() == 0) continue;
        if (std::max(x.begin / w, y.begin / w) <= std::min((x.end - 1) / w, (y.end - 1) / w))
          return true;
      }
  }
  return false;
}

/// For members in `targets`: the extent of what each receives (from every
/// member) and sends (to every other), the rows it sends in total, and
/// the hops made. With all members as targets each exchange is counted once.
struct RingCounts {
  std::vector<ExchangeExtent> extent; // per target
  std::vector<std::int64_t> sent_rows;
  std::vector<std::int64_t> received_rows; // wire rows received, summed over sources
  std::int64_t hops_made = 0, hops_skipped = 0;
};

inline RingCounts count_ring(const ExchangeCounter &counter, const Partition &part,
                             const std::vector<int> &targets, int q_tile) {
  const int P = part.members;
  const Pattern &pat = counter.pattern();
  RingCounts rc;
  rc.extent.assign(targets.size(), ExchangeExtent{});
  rc.sent_rows.assign(targets.size(), 0);
  rc.received_rows.assign(targets.size(), 0);
  const bool all = int(targets.size()) == P;
  if (all) {
    for (int recv = 0; recv < P; ++recv)
      for (int src = 0; src < P; ++src) {
        if (!may_share(pat, part, recv, src)) {
          if (src != recv) ++rc.hops_skipped;
          continue;
        }
        const ExchangeCount c = counter.count(part, recv, src, q_tile);
        merge_recv(rc.extent[recv], c, (recv - src + P) % P);
        if (src == recv) continue;
        rc.received_rows[recv] = sat_add(rc.received_rows[recv], c.wire_rows);
        rc.extent[src].send_rows = std::max(rc.extent[src].send_rows, c.wire_rows);
        rc.sent_rows[src] = sat_add(rc.sent_rows[src], c.wire_rows);
        (c.rows > 0 ? rc.hops_made : rc.hops_skipped) += 1;
      }
    return rc;
  }
  for (std::size_t t = 0; t < targets.size(); ++t) {
    const int p = targets[t];
    for (int j = 0; j < P; ++j) {
      if (!may_share(pat, part, p, j)) {
        if (j != p) ++rc.hops_skipped;
        continue;
      }
      const ExchangeCount in = counter.count(part, p, j, q_tile);
      merge_recv(rc.extent[t], in, (p - j + P) % P);
      if (j == p) continue;
      rc.received_rows[t] = sat_add(rc.received_rows[t], in.wire_rows);
      const std::int64_t rows = counter.count(part, j, p, q_tile).wire_rows;
      rc.extent[t].send_rows = std::max(rc.extent[t].send_rows, rows);
      rc.sent_rows[t] = sat_add(rc.sent_rows[t], rows);
      (rows > 0 ? rc.hops_made : rc.hops_skipped) += 1;
    }
  }
  return rc;
}

inline std::vector<int> all_members(int P) {
  std::vector<int> v(P);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

/// Pairs of the queries of segment s of branch i in [x, y) with phase `off`.
inline long double segment_pairs(const Pattern &pat, int i, std::int64_t off, std::int64_t s,
                                 std::int64_t x, std::int64_t y) {
  const std::int64_t r = pat.dilation_rate[i];
  const std::int64_t sb = pat.segment_begin(s, i), se = pat.segment_end(s, i);
  const std::int64_t b = sb + off;
  std::int64_t first = 0, count = 0;
  Details::progression(std::max(x, sb), std::min(y, se), b, r, first, count);
  if (count == 0) return 0;
  const long double c = count;
  if (pat.causal) {
    // query b + k*r sees the k + 1 keys b, b + r, ..., itself
    const long double k0 = (first - b) / r;
    return c * (k0 + 1) + c * (c - 1) / 2;
  }
  return c * (long double)((se - b + r - 1) / r);
}

} // namespace Details

/// Model of member p (mpi) or of the simulated process (mpi false): the
/// numbers model_member_memory() gives, from counts.
inline MemberMemoryModel model_member(const ModelProblem &pp, const Partition &part, int p,
                                      bool mpi) {
  const Pattern pat = pp.pattern_at(part.seq_len);
  const Details::ExchangeCounter counter(pat);
  const int q_tile = pp.tiling.q_tile;
  if (mpi) {
    const Details::RingCounts rc = Details::count_ring(counter, part, {p}, q_tile);
    return member_memory(pp.shape(), part.local_size(p), rc.extent[0], true);
  }
  const Details::RingCounts rc =
      Details::count_ring(counter, part, Details::all_members(part.members), q_tile);
  ExchangeExtent e;
  std::int64_t n = 0;
  for (int j = 0; j < part.members; ++j) {
    n = std::max(n, part.local_size(j));
    e.merge_member(rc.extent[j]); // one member's hops at a time
  }
  return member_memory(pp.shape(), n, e, false);
}

/// Largest mpi member total at sequence length n on `members` members (with
/// `after_forward`, what each still holds once `forward` has returned).
inline std::int64_t max_member_total(const ModelProblem &pp, std::int64_t n, int members,
                                     bool after_forward = false) {
  const Partition part(pp.partition, n, members);
  const Details::ExchangeCounter counter(pp.pattern_at(n));
  const Details::RingCounts rc =
      Details::count_ring(counter, part, Details::all_members(members), pp.tiling.q_tile);
  std::int64_t worst = 0;
  for (int p = 0; p < members; ++p) {
    const MemberMemoryModel m = member_memory(pp.shape(), part.local_size(p), rc.extent[p], true);
    worst = std::max(worst, after_forward ? m.after_forward() : m.total());
  }
  return worst;
}

// ---- the ring ------------------------------------------------------------

inline int RingModel::largest_member() const {
  int best = 0;
  for (std::size_t k = 1; k < memory.size(); ++k)
    if (memory[k].total() > memory[best].total()) best = int(k);
  return best;
}

inline int RingModel::smallest_member() const {
  int best = 0;
  for (std::size_t k = 1; k < memory.size(); ++k)
    if (memory[k].total() < memory[best].total()) best = int(k);
  return best;
}

/// The ring of `members` members at sequence length seq_len.
inline RingModel analyse_ring(const ModelProblem &pp, std::int64_t seq_len, int members,
                              int exact_member_limit = 1024) {
  RingModel ra;
  ra.members = members;
  ra.seq_len = seq_len;
  const Pattern pat = pp.pattern_at(seq_len);
  const Partition part(pp.partition, seq_len, members);
  const Details::ExchangeCounter counter(pat);

  if (members <= exact_member_limit) {
    ra.evaluated = Details::all_members(members);
  } else {
    // A sample: the ends of the ring (where causal and zigzag differ most)
    // and evenly spaced members between them.
    ra.sampled = true;
    std::vector<int> v = {0, 1, members - 2, members - 1};
    for (int k = 1; k < 32; ++k) v.push_back(int(std::int64_t(members) * k / 32));
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    ra.evaluated = v;
  }
  const Details::RingCounts rc = Details::count_ring(counter, part, ra.evaluated, pp.tiling.q_tile);
  ra.hops_made = rc.hops_made;
  ra.hops_skipped = rc.hops_skipped;
  const std::int64_t row_bytes = Details::sat_prod({2, pp.batch, pp.head_dim, pp.scalar_bytes});
  ExchangeExtent process;
  std::int64_t n_max = 0;
  for (std::size_t t = 0; t < ra.evaluated.size(); ++t) {
    const int p = ra.evaluated[t];
    const std::int64_t n = part.local_size(p);
    ra.memory.push_back(member_memory(pp.shape(), n, rc.extent[t], true));
    ra.extents.push_back(rc.extent[t]);
    ra.sent_rows.push_back(rc.sent_rows[t]);
    ra.received_rows.push_back(rc.received_rows[t]);
    ra.sent_bytes.push_back(Details::sat_mul(rc.sent_rows[t], row_bytes));
    ra.dense_bytes.push_back(
        Details::sat_prod({std::int64_t(members - 1), n, std::int64_t(pat.kv_heads), row_bytes}));
    long double pairs = 0;
    for (int k = 0; k < part.num_ranges(); ++k) {
      const Range a = part.range(p, k);
      pairs += pairs_in_range(pat, a.begin, a.end);
    }
    ra.pairs.push_back(pairs);
    n_max = std::max(n_max, n);
    process.merge_member(rc.extent[t]);
  }
  for (int p = 0; p < members; ++p) n_max = std::max(n_max, part.local_size(p));
  ra.process = member_memory(pp.shape(), n_max, process, false);
  ra.process_extent = process;
  ra.process_rows = n_max;
  return ra;
}

/// (query, key) pairs over the positions [begin, end), all heads, one batch
/// entry: the sum of pattern.pairs_for_query(t, h). O(branches * offsets).
inline long double pairs_in_range(const Pattern &pat, std::int64_t begin, std::int64_t end) {
  if (end <= begin) return 0;
  long double total = 0;
  for (int i = 0; i < pat.num_branches; ++i) {
    const std::int64_t w = pat.segment_length[i];
    const std::int64_t s0 = begin / w, s1 = (end - 1) / w;
    for (const auto &[off, heads] : Details::branch_offsets(pat, i)) {
      long double sum = Details::segment_pairs(pat, i, off, s0, begin, end);
      if (s1 > s0) {
        sum += Details::segment_pairs(pat, i, off, s1, begin, end);
        // segments strictly between are whole and full length: all alike
        if (s1 - s0 > 1)
          sum += (long double)(s1 - s0 - 1) * Details::segment_pairs(pat, i, off, s0 + 1,
                                                                     pat.segment_begin(s0 + 1, i),
                                                                     pat.segment_end(s0 + 1, i));
      }
      total += (long double)heads * sum;
    }
  }
  return total;
}

// ---- the capacity search --------------------------------------------------

inline Fit longest_fitting_sequence(const ModelProblem &pp, int members, std::uint64_t memory_bytes,
                                    std::int64_t step = default_fit_step,
                                    std::int64_t cap = default_fit_cap) {
  if (step < 1 || members < 1)
    throw std::invalid_argument("longest_fitting_sequence: step/members");
  Fit fit;
  fit.members = members;
  auto total = [&](std::int64_t k) {
    ++fit.evaluations;
    return max_member_total(pp, k * step, members);
  };
  auto fits = [&](std::int64_t t) {
    return t < Details::saturated && std::uint64_t(t) <= memory_bytes;
  };

  const std::int64_t k_cap = std::max<std::int64_t>(cap / step, 1);
  std::int64_t lo = std::max<std::int64_t>(Details::ceil_div(members, step), 1);
  if (lo > k_cap) return fit;
  std::int64_t lo_total = total(lo);
  if (!fits(lo_total)) return fit;
  std::int64_t hi = 0;
  while (hi == 0) { // doubling
    const std::int64_t next = lo > k_cap / 2 ? k_cap : 2 * lo;
    if (next == lo) { // lo is the cap and fits
      fit.capped = true;
      break;
    }
    const std::int64_t t = total(next);
    if (fits(t)) {
      lo = next;
      lo_total = t;
    } else {
      hi = next;
    }
  }
  while (hi != 0 && hi - lo > 1) { // bisection: lo fits, hi does not
    const std::int64_t mid = lo + (hi - lo) / 2;
    const std::int64_t t = total(mid);
    if (fits(t)) {
      lo = mid;
      lo_total = t;
    } else {
      hi = mid;
    }
  }
  fit.seq_len = lo * step;
  fit.bytes = lo_total;
  return fit;
}

/// The backward pass's memory, traffic and work (docs/SPEC.md section 7). Mode mpi: what
/// the largest member holds beyond its forward's buffers. Simulated
/// (RingAttention::backward with a BackwardMemberIO, as `ringattn run` runs
/// it): what the process holds while the backward runs, one member's
/// queries and one member's K/V at a time (the forward's buffers are freed
/// by then).
struct BackwardModel {
  std::int64_t tensors = 0;            ///< mpi: the member's dO, dQ, dK, dV
  std::int64_t copies = 0;             ///< simulated: one member's Q, O, dO, K, V, LSE
  std::int64_t delta = 0;              ///< Delta = rowsum(dO * O) [B, H, n]
  std::int64_t accumulators = 0;       ///< mpi: float dQ/dK/dV beside 16-bit storage;
                                       ///< simulated: float dQ/dK/dV (and a 16-bit rounding buffer)
  std::int64_t kv_blocks = 0;          ///< simulated: a wire and its block (mpi: none)
  std::int64_t partials = 0;           ///< dK/dV partials of the blocks, in the accumulate type
  std::int64_t kv_bytes = 0;           ///< the forward's K/V wires, all evaluated members
  std::int64_t partial_bytes = 0;      ///< the same rows of dK/dV going back
  std::int64_t worst_member_bytes = 0; ///< the most one member sends
  int worst_member = 0;
  long double flops = 0; ///< 10 * D per kept pair and batch entry

  std::int64_t memory() const {
    std::int64_t t = 0;
    for (std::int64_t b : {tensors, copies, delta, accumulators, kv_blocks, partials})
      t = Details::sat_add(t, b);
    return t;
  }
};

/// The backward of `ring` (analyse_ring of the same problem).
inline BackwardModel model_backward(const ModelProblem &pp, const RingModel &ring, bool mpi) {
  BackwardModel bm;
  const Pattern pat = pp.pattern_at(ring.seq_len);
  const std::int64_t B = pp.batch, D = pp.head_dim, s = pp.scalar_bytes;
  const std::int64_t acc = s >= 8 ? 8 : 4; // accumulate type (docs/SPEC.md section 1)
  const std::int64_t H = pat.heads, Hkv = pat.kv_heads;
  const Partition part(pp.partition, ring.seq_len, ring.members);
  // The largest member (mpi), or the process (simulated: the largest
  // member's rows). K/V cross on the forward's wire and the dK/dV partials
  // come back on it; a hop that expands its wire computes its partial in
  // the block layout first, a piece of one branch's part at a time
  // (branch_expand_rows, into the forward's expanded buffer). Under MPI the
  // member's own block is read in place and its dK/dV added in place: no
  // buffer; the simulated ring packs every hop's wire, its own included.
  std::int64_t n = ring.process_rows;
  ExchangeExtent e = ring.process_extent;
  if (mpi) {
    const int big = ring.largest_member();
    n = part.local_size(ring.evaluated[std::size_t(big)]);
    e = ring.extents[std::size_t(big)];
  }
  const std::int64_t row_values = 2 * B * D; // values per K/V (or dK/dV) row, both halves
  if (mpi) {
    // the member's dO, dQ, dK, dV; their float sums for 16-bit storage
    bm.tensors = Details::sat_prod({B, n, 2 * H + 2 * Hkv, D, s});
    bm.accumulators = acc == s ? 0 : Details::sat_prod({B, n, H + 2 * Hkv, D, acc});
  } else {
    // one member's Q, O, dO and one member's K, V, and LSE; float dQ, dK,
    // dV, and for 16-bit storage a buffer to round them into
    bm.copies = Details::sat_add(Details::sat_prod({B, n, 3 * H + 2 * Hkv, D, s}),
                                 Details::sat_prod({B, H, n, acc}));
    bm.accumulators =
        Details::sat_add(Details::sat_prod({B, n, H + 2 * Hkv, D, acc}),
                         acc == s ? 0 : Details::sat_prod({B, n, std::max(H, 2 * Hkv), D, s}));
  }
  bm.delta = Details::sat_prod({B, H, n, acc});
  // simulated: one hop's wire (the largest, the member's own included) and
  // the largest expanded piece, K/V and their partials
  const std::int64_t simulated_rows =
      Details::sat_add(std::max(e.recv_rows, e.own_rows), e.branch_expand_rows);
  bm.kv_blocks = mpi ? 0 : Details::sat_prod({simulated_rows, row_values, s});
  // mpi: the partials sent alternate by step (s % 2), each the size of its
  // step's wire, as the partials received are of the wires sent; the block
  // partial holds the largest expanded piece
  const std::int64_t partial_rows =
      mpi ? Details::sat_add(
                Details::sat_add(e.recv_rows_at[0], e.recv_rows_at[1]),
                Details::sat_add(Details::sat_mul(2, e.send_rows), e.branch_expand_rows))
          : simulated_rows;
  bm.partials = Details::sat_prod({partial_rows, row_values, acc});
  // traffic: the forward's K/V wire rows, plus the same rows of dK/dV back
  for (std::size_t k = 0; k < ring.evaluated.size(); ++k) {
    const std::int64_t kv = Details::sat_prod({ring.sent_rows[k], row_values, s});
    const std::int64_t back = Details::sat_prod({ring.received_rows[k], row_values, acc});
    bm.kv_bytes = Details::sat_add(bm.kv_bytes, kv);
    bm.partial_bytes = Details::sat_add(bm.partial_bytes, back);
    if (Details::sat_add(kv, back) > bm.worst_member_bytes) {
      bm.worst_member_bytes = Details::sat_add(kv, back);
      bm.worst_member = ring.evaluated[k];
    }
  }
  bm.flops = 10.0L * D * B * pairs_in_range(pat, 0, ring.seq_len);
  return bm;
}

} // namespace ringattn

#endif
