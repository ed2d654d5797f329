// The numbers behind `ringattn plan` (see Plan.hpp): exchange counts, the
// memory model per member, communication, pairs, and the capacity search.
#include "Plan.hpp"

#include "Deck.hpp"

#include <kernels/detail/RingAttn_BlockKernel.hpp>
#include <ring/detail/RingAttn_Exchange.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>
#include <stdexcept>

namespace ringattn::driver {

std::int64_t sat_mul(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (a < 0 || b < 0) throw std::logic_error("sat_mul: negative operand");
  return __builtin_mul_overflow(a, b, &r) ? saturated : r;
}

std::int64_t sat_add(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (a < 0 || b < 0) throw std::logic_error("sat_add: negative operand");
  return __builtin_add_overflow(a, b, &r) ? saturated : r;
}

namespace {

std::int64_t sat_prod(std::initializer_list<std::int64_t> factors) {
  std::int64_t r = 1;
  for (std::int64_t f : factors) r = driver::sat_mul(r, f);
  return r;
}

/// Insertion sort of a few elements (std::sort on a std::array prefix draws
/// a false -Warray-bounds from GCC 12).
template <class T>
void small_sort(T *first, int n) {
  for (int i = 1; i < n; ++i)
    for (int j = i; j > 0 && first[j] < first[j - 1]; --j) std::swap(first[j], first[j - 1]);
}

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return a / b + (a % b != 0 ? 1 : 0); }

/// First query head of head group i and the group's size (docs/SPEC.md section 2,
/// head_groups: the first H % G groups one head larger).
void head_group_span(const Pattern &pattern, int i, std::int64_t &begin, std::int64_t &size) {
  const std::int64_t G = pattern.num_branches, H = pattern.heads;
  const std::int64_t base = H / G, extra = H % G;
  begin = i < extra ? i * (base + 1) : extra * (base + 1) + (i - extra) * base;
  size = base + (i < extra ? 1 : 0);
}

/// The (offset, number of heads with it) of branch i over all query heads.
std::vector<std::pair<std::int64_t, std::int64_t>> branch_offsets(const Pattern &pattern, int i) {
  std::vector<std::pair<std::int64_t, std::int64_t>> out;
  const std::int64_t r = pattern.dilation_rate[i], H = pattern.heads;
  if (pattern.mixing == Mixing::head_groups) {
    std::int64_t begin = 0, size = 0;
    head_group_span(pattern, i, begin, size);
    if (size > 0) out.emplace_back(i % r, size);
    return out;
  }
  // mixture: offset h % r
  const std::int64_t distinct = std::min(r, H);
  for (std::int64_t off = 0; off < distinct; ++off)
    out.emplace_back(off, H >= r ? H / r + (off < H % r ? 1 : 0) : 1);
  return out;
}

} // namespace

// ---- exchange counts ----------------------------------------------------

ExchangeCounter::ExchangeCounter(const Pattern &pattern) : pattern_(pattern) {
  const std::int64_t hpk = pattern.heads_per_kv_head(), Hkv = pattern.kv_heads;
  // Wire classes: kv heads by their (branch, phase) lists (O(H x G)).
  std::map<std::vector<std::int64_t>, std::size_t> wire_class_of;
  for (int g = 0; g < pattern.kv_heads; ++g) {
    std::vector<std::int64_t> key;
    for (int i = 0; i < pattern.num_branches; ++i) {
      const std::size_t at = key.size();
      for (std::int64_t h = g * hpk; h < (g + 1) * hpk; ++h) {
        const std::int64_t off = pattern.offset(int(h), i);
        if (off >= 0 && std::find(key.begin() + at, key.end(), off) == key.end())
          key.push_back(off);
      }
      std::sort(key.begin() + at, key.end());
      key.push_back(-1); // branch separator
    }
    if (key.size() > std::size_t(pattern.num_branches) + 1) reads_rows_once_ = false;
    const auto found = wire_class_of.find(key);
    if (found == wire_class_of.end()) {
      wire_class_of.emplace(std::move(key), wire_classes_.size());
      wire_classes_.push_back(WireClass{g, 1});
    } else {
      ++wire_classes_[found->second].multiplicity;
    }
  }
  classes_.resize(pattern.num_branches);
  for (int i = 0; i < pattern.num_branches; ++i) {
    const std::int64_t r = pattern.dilation_rate[i];
    auto &classes = classes_[i];
    if (pattern.mixing == Mixing::head_groups) {
      // Only kv heads that hold heads of group i take part, with offset i % r.
      std::int64_t gb = 0, size = 0;
      head_group_span(pattern, i, gb, size);
      if (size == 0) continue;
      const std::int64_t ge = gb + size, phase = i % r;
      const std::int64_t first = gb / hpk, last = (ge - 1) / hpk;
      if (first == last) {
        classes.push_back(KvClass{1, {PhaseHeads{phase, size}}});
      } else {
        classes.push_back(KvClass{1, {PhaseHeads{phase, (first + 1) * hpk - gb}}});
        classes.push_back(KvClass{1, {PhaseHeads{phase, ge - last * hpk}}});
        if (last - first > 1)
          classes.push_back(KvClass{last - first - 1, {PhaseHeads{phase, hpk}}});
      }
      continue;
    }
    // mixture: kv head g holds heads g*hpk + k (k < hpk) with offsets
    // (g*hpk + k) % r, so its phase list depends on key = g*hpk % r alone,
    // which repeats with period L = r / gcd(hpk, r) in g.
    const std::int64_t L = r / std::gcd(hpk, r);
    const std::int64_t n_classes = std::min(Hkv, L);
    for (std::int64_t g = 0; g < n_classes; ++g) {
      KvClass c;
      c.multiplicity = Hkv >= L ? Hkv / L + (g < Hkv % L ? 1 : 0) : 1;
      const std::int64_t key = (g * hpk) % r;
      if (hpk >= r) {
        for (std::int64_t p = 0; p < r; ++p) {
          const std::int64_t m = ((p - key) % r + r) % r;
          c.phases.push_back(PhaseHeads{p, hpk / r + (m < hpk % r ? 1 : 0)});
        }
      } else {
        for (std::int64_t k = 0; k < hpk; ++k) c.phases.push_back(PhaseHeads{(key + k) % r, 1});
      }
      classes.push_back(std::move(c));
    }
  }
}

std::int64_t exchange_entries(const Pattern &pattern) {
  const std::int64_t hpk = pattern.heads_per_kv_head(), Hkv = pattern.kv_heads;
  std::int64_t n = 0;
  for (int i = 0; i < pattern.num_branches; ++i) {
    const std::int64_t r = pattern.dilation_rate[i];
    if (pattern.mixing == Mixing::head_groups)
      n = sat_add(n, 3);
    else
      n = sat_add(n, sat_mul(std::min(Hkv, r / std::gcd(hpk, r)), std::min(hpk, r)));
  }
  return n;
}

// One segment of one branch, as plan_exchange() plans it (same loops, counts
// only): rows of the block, tasks, and work items of q_tile queries.
ExchangeCounter::Acc ExchangeCounter::count_segment(const Partition &partition, int receiver,
                                                    int source, int branch, std::int64_t s,
                                                    int q_tile) const {
  const Pattern &pat = pattern_;
  const std::int64_t r = pat.dilation_rate[branch];
  const std::int64_t seg_begin = pat.segment_begin(s, branch);
  const std::int64_t seg_end = pat.segment_end(s, branch);
  const int nr = partition.num_ranges();
  Acc acc;
  for (const KvClass &c : classes_[branch]) {
    std::int64_t rows = 0, tasks = 0, items = 0;
    for (const PhaseHeads &ph : c.phases) {
      const std::int64_t base = seg_begin + ph.phase;
      std::int64_t q_first[2], q_count[2];
      int num_queries = 0;
      std::int64_t last_query = -1;
      for (int kp = 0; kp < nr; ++kp) {
        const Range a = partition.range(receiver, kp);
        std::int64_t first, count;
        ringattn::Details::progression(std::max(a.begin, seg_begin), std::min(a.end, seg_end), base,
                                       r, first, count);
        if (count == 0) continue;
        q_first[num_queries] = first;
        q_count[num_queries] = count;
        ++num_queries;
        last_query = std::max(last_query, first + (count - 1) * r);
      }
      if (num_queries == 0) continue;
      std::int64_t key_pos0[2];
      int num_keys = 0;
      for (int kj = 0; kj < nr; ++kj) {
        const Range b = partition.range(source, kj);
        std::int64_t hi = std::min(b.end, seg_end);
        if (pat.causal) hi = std::min(hi, last_query + 1);
        std::int64_t first, count;
        ringattn::Details::progression(std::max(b.begin, seg_begin), hi, base, r, first, count);
        if (count == 0) continue;
        key_pos0[num_keys++] = first;
        rows += count;
      }
      if (num_keys == 0) continue;
      for (int q = 0; q < num_queries; ++q) {
        const std::int64_t task_last = q_first[q] + (q_count[q] - 1) * r;
        bool any = !pat.causal;
        for (int k = 0; k < num_keys && !any; ++k) any = key_pos0[k] <= task_last;
        if (!any) continue;
        tasks = sat_add(tasks, ph.heads);
        items = sat_add(items, sat_mul(ph.heads, ceil_div(q_count[q], q_tile)));
      }
    }
    acc.rows = sat_add(acc.rows, sat_mul(c.multiplicity, rows));
    acc.tasks = sat_add(acc.tasks, sat_mul(c.multiplicity, tasks));
    acc.items = sat_add(acc.items, sat_mul(c.multiplicity, items));
  }
  return acc;
}

ExchangeCount ExchangeCounter::count(const Partition &partition, int receiver, int source,
                                     int q_tile) const {
  const Pattern &pat = pattern_;
  ExchangeCount ec;
  const int nr = partition.num_ranges();
  const std::int64_t N = pat.seq_len;

  // Range boundaries of both members: a segment containing none of them
  // (nor touching one at its ends) lies whole inside the same ranges as its
  // neighbours and needs exactly what they need.
  std::array<std::int64_t, 8> bounds{};
  int num_bounds = 0;
  for (int k = 0; k < nr; ++k)
    for (int m : {receiver, source}) {
      const Range a = partition.range(m, k);
      bounds[num_bounds++] = a.begin;
      bounds[num_bounds++] = a.end;
    }

  for (int i = 0; i < pat.num_branches; ++i) {
    const std::int64_t w = pat.segment_length[i];

    // Segments that hold rows of both members (as plan_exchange lists them).
    std::array<std::pair<std::int64_t, std::int64_t>, 4> spans{};
    int num_spans = 0;
    for (int kp = 0; kp < nr; ++kp)
      for (int kj = 0; kj < nr; ++kj) {
        const Range a = partition.range(receiver, kp), b = partition.range(source, kj);
        if (a.size() == 0 || b.size() == 0) continue;
        const std::int64_t lo = std::max(a.begin / w, b.begin / w);
        const std::int64_t hi = std::min((a.end - 1) / w, (b.end - 1) / w);
        if (lo <= hi) spans[num_spans++] = {lo, hi};
      }
    if (num_spans == 0) continue;
    small_sort(spans.data(), num_spans);

    std::array<std::int64_t, 17> special{};
    int num_special = 0;
    for (int k = 0; k < num_bounds; ++k)
      for (std::int64_t y : {bounds[k] - 1, bounds[k]})
        if (y >= 0 && y < N) special[num_special++] = y / w;
    special[num_special++] = (N - 1) / w; // the last segment may be short
    small_sort(special.data(), num_special);
    num_special =
        int(std::unique(special.begin(), special.begin() + num_special) - special.begin());

    Acc branch;
    auto add = [&](const Acc &a, std::int64_t times) {
      branch.rows = sat_add(branch.rows, sat_mul(a.rows, times));
      branch.tasks = sat_add(branch.tasks, sat_mul(a.tasks, times));
      branch.items = sat_add(branch.items, sat_mul(a.items, times));
    };
    std::int64_t done = -1; // segments <= done are counted (spans may overlap)
    for (int k = 0; k < num_spans; ++k) {
      std::int64_t s = std::max(spans[k].first, done + 1);
      const std::int64_t hi = spans[k].second;
      if (s > hi) continue;
      for (int j = 0; j < num_special && s <= hi; ++j) {
        const std::int64_t sp = special[j];
        if (sp < s) continue;
        if (sp > hi) break;
        if (sp > s) add(count_segment(partition, receiver, source, i, s, q_tile), sp - s); // a run
        add(count_segment(partition, receiver, source, i, sp, q_tile), 1);
        s = sp + 1;
      }
      if (s <= hi) add(count_segment(partition, receiver, source, i, s, q_tile), hi - s + 1);
      done = std::max(done, hi);
    }
    ec.rows = sat_add(ec.rows, branch.rows);
    ec.branch_tasks[i] = branch.tasks;
    ec.branch_items[i] = branch.items;
    ec.tasks = std::max(ec.tasks, branch.tasks);
    ec.items = std::max(ec.items, branch.items);
  }
  // The wire: the block itself where no row is read twice (always the case
  // when every kv head reads one (branch, phase)), else the union of each
  // wire class's progressions. A member's own rows do not cross. Between
  // two members a branch shares at most one segment per pair of ranges, so
  // this too is independent of N.
  if (receiver == source || reads_rows_once_) {
    ec.wire_rows = ec.rows;
  } else {
    for (const WireClass &c : wire_classes_)
      ec.wire_rows = sat_add(
          ec.wire_rows, sat_mul(c.multiplicity, ringattn::Details::wire_rows_of_kv_head(
                                                    pat, partition, receiver, source, c.kv_head)));
  }
  return ec;
}

// ---- the problem ----------------------------------------------------------

Pattern PlanProblem::pattern_at(std::int64_t n) const {
  if (dense) return Pattern::dense(n, pattern.heads, pattern.kv_heads, pattern.causal);
  Pattern p = pattern;
  p.seq_len = n;
  return p;
}

PlanProblem make_plan_problem(const RunConfig &cfg, const Tiling &tiling, int threads) {
  PlanProblem pp;
  pp.pattern = make_pattern(cfg);
  pp.dense = cfg.attention.kind == AttentionKind::dense;
  pp.batch = cfg.problem.batch;
  pp.head_dim = cfg.problem.head_dim;
  pp.scalar_bytes = std::int64_t(dtype_size(cfg.problem.dtype));
  pp.partition = cfg.ring.partition;
  pp.tiling = tiling;
  pp.threads = std::max(1, threads);
  return pp;
}

// ---- the memory model ---------------------------------------------------

namespace {

/// model_member_memory()'s formula, from a member size and exchange extent,
/// saturating.
MemberMemoryModel build_model(const PlanProblem &pp, std::int64_t n, const ExchangeExtent &e,
                              bool mpi) {
  MemberMemoryModel m;
  const std::int64_t B = pp.batch, H = pp.pattern.heads, Hkv = pp.pattern.kv_heads;
  const std::int64_t D = pp.head_dim, s = pp.scalar_bytes;
  // LSE and the running O in the accumulate type (16-bit storage: a float
  // running O beside the stored one)
  const std::int64_t acc_bytes = s >= 8 ? 8 : 4;
  m.q = sat_prod({B, n, H, D, s});
  // (a float chunk of rows where nothing crosses to the member)
  const std::int64_t running_rows = s >= acc_bytes     ? 0
                                    : e.recv_rows == 0 ? ringattn::Details::running_o_chunk_rows(n)
                                                       : n;
  m.o = sat_add(sat_prod({B, n, H, D, s}), sat_prod({B, running_rows, H, D, acc_bytes}));
  m.k = m.v = sat_prod({B, n, Hkv, D, s});
  m.lse = sat_prod({B, H, n, acc_bytes});
  const std::int64_t block_bytes = sat_prod({2, B, D, s});
  m.block_rows = e.block_rows;
  // mpi: two receive wires, a send wire (none where MPI reads K and V in
  // place) and an expanded block; the simulated ring reads every source's
  // K/V in place (none)
  const std::int64_t send_rows =
      ringattn::Details::sends_in_place<Kokkos::DefaultExecutionSpace::memory_space> ? 0
                                                                                     : e.send_rows;
  m.blocks =
      mpi ? sat_mul(block_bytes,
                    sat_add(sat_add(sat_add(e.recv_rows_at[0], e.recv_rows_at[1]), send_rows),
                            e.expand_rows))
          : 0;
  const int d = int(std::min<std::int64_t>(D, INT32_MAX));
  const std::int64_t scratch = std::int64_t(
      ringattn::Details::BlockAttentionFunctor<Kokkos::DefaultHostExecutionSpace,
                                               float>::scratch_elements(pp.tiling.q_tile,
                                                                        pp.tiling.k_tile, d));
  m.tiles = sat_prod({std::int64_t(pp.threads), scratch, acc_bytes});
  m.schedule = sat_add(sat_mul(e.tasks, std::int64_t(sizeof(ringattn::Details::BlockTask))),
                       sat_mul(e.items, std::int64_t(sizeof(ringattn::Details::WorkItem))));
  return m;
}

/// What member `receiver` allocates for exchange c (largest_exchange()'s
/// rule): the wire of a hop that crosses (its own rows are read in place),
/// the block the kernels read, and the expanded block where that is not the
/// wire (rows read more than once).
void merge_recv(ExchangeExtent &e, const ExchangeCount &c, int step) {
  e.block_rows = std::max(e.block_rows, c.rows);
  // the plan holds the tasks and work items of every hop
  for (int i = 0; i < max_branches; ++i) {
    e.tasks = sat_add(e.tasks, c.branch_tasks[i]);
    e.items = sat_add(e.items, c.branch_items[i]);
  }
  if (step == 0) return;
  e.add_received(step, c.wire_rows);
  if (c.wire_rows < c.rows) e.expand_rows = std::max(e.expand_rows, c.rows);
}

/// Whether members a and b may share a segment in some branch (else every
/// exchange between them is empty and need not be counted).
bool may_share(const Pattern &pat, const Partition &part, int a, int b) {
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
  std::int64_t hops_made = 0, hops_skipped = 0;
};

RingCounts count_ring(const ExchangeCounter &counter, const Partition &part,
                      const std::vector<int> &targets, int q_tile) {
  const int P = part.members;
  const Pattern &pat = counter.pattern();
  RingCounts rc;
  rc.extent.assign(targets.size(), ExchangeExtent{});
  rc.sent_rows.assign(targets.size(), 0);
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
      merge_recv(rc.extent[t], counter.count(part, p, j, q_tile), (p - j + P) % P);
      if (j == p) continue;
      const std::int64_t rows = counter.count(part, j, p, q_tile).wire_rows;
      rc.extent[t].send_rows = std::max(rc.extent[t].send_rows, rows);
      rc.sent_rows[t] = sat_add(rc.sent_rows[t], rows);
      (rows > 0 ? rc.hops_made : rc.hops_skipped) += 1;
    }
  }
  return rc;
}

std::vector<int> all_members(int P) {
  std::vector<int> v(P);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

} // namespace

std::int64_t model_total(const MemberMemoryModel &m) {
  std::int64_t t = 0;
  for (std::int64_t b : {m.q, m.k, m.v, m.o, m.lse, m.blocks, m.tiles, m.schedule})
    t = sat_add(t, b);
  return t;
}

MemberMemoryModel model_member(const PlanProblem &pp, const Partition &part, int p, bool mpi) {
  const Pattern pat = pp.pattern_at(part.seq_len);
  const ExchangeCounter counter(pat);
  const int q_tile = pp.tiling.q_tile;
  if (mpi) {
    const RingCounts rc = count_ring(counter, part, {p}, q_tile);
    return build_model(pp, part.local_size(p), rc.extent[0], true);
  }
  const RingCounts rc = count_ring(counter, part, all_members(part.members), q_tile);
  ExchangeExtent e;
  std::int64_t n = 0;
  for (int j = 0; j < part.members; ++j) {
    n = std::max(n, part.local_size(j));
    e.block_rows = std::max(e.block_rows, rc.extent[j].block_rows);
    e.recv_rows = std::max(e.recv_rows, rc.extent[j].recv_rows);
    e.tasks = std::max(e.tasks, rc.extent[j].tasks); // one member's hops at a time
    e.items = std::max(e.items, rc.extent[j].items);
  }
  return build_model(pp, n, e, false);
}

std::int64_t max_member_total(const PlanProblem &pp, std::int64_t n, int members) {
  const Partition part(pp.partition, n, members);
  const ExchangeCounter counter(pp.pattern_at(n));
  const RingCounts rc = count_ring(counter, part, all_members(members), pp.tiling.q_tile);
  std::int64_t worst = 0;
  for (int p = 0; p < members; ++p)
    worst = std::max(worst, model_total(build_model(pp, part.local_size(p), rc.extent[p], true)));
  return worst;
}

// ---- the ring ------------------------------------------------------------

int RingAnalysis::largest_member() const {
  int best = 0;
  for (std::size_t k = 1; k < memory.size(); ++k)
    if (model_total(memory[k]) > model_total(memory[best])) best = int(k);
  return best;
}

int RingAnalysis::smallest_member() const {
  int best = 0;
  for (std::size_t k = 1; k < memory.size(); ++k)
    if (model_total(memory[k]) < model_total(memory[best])) best = int(k);
  return best;
}

RingAnalysis analyse_ring(const PlanProblem &pp, std::int64_t seq_len, int members,
                          int exact_member_limit) {
  RingAnalysis ra;
  ra.members = members;
  ra.seq_len = seq_len;
  const Pattern pat = pp.pattern_at(seq_len);
  const Partition part(pp.partition, seq_len, members);
  const ExchangeCounter counter(pat);

  if (members <= exact_member_limit) {
    ra.evaluated = all_members(members);
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
  const RingCounts rc = count_ring(counter, part, ra.evaluated, pp.tiling.q_tile);
  ra.hops_made = rc.hops_made;
  ra.hops_skipped = rc.hops_skipped;
  const std::int64_t row_bytes = sat_prod({2, pp.batch, pp.head_dim, pp.scalar_bytes});
  ExchangeExtent process;
  std::int64_t n_max = 0;
  for (std::size_t t = 0; t < ra.evaluated.size(); ++t) {
    const int p = ra.evaluated[t];
    const std::int64_t n = part.local_size(p);
    ra.memory.push_back(build_model(pp, n, rc.extent[t], true));
    ra.extents.push_back(rc.extent[t]);
    ra.sent_rows.push_back(rc.sent_rows[t]);
    ra.sent_bytes.push_back(sat_mul(rc.sent_rows[t], row_bytes));
    ra.dense_bytes.push_back(
        sat_prod({std::int64_t(members - 1), n, std::int64_t(pat.kv_heads), row_bytes}));
    long double pairs = 0;
    for (int k = 0; k < part.num_ranges(); ++k) {
      const Range a = part.range(p, k);
      pairs += pairs_in_range(pat, a.begin, a.end);
    }
    ra.pairs.push_back(pairs);
    n_max = std::max(n_max, n);
    process.block_rows = std::max(process.block_rows, rc.extent[t].block_rows);
    process.recv_rows = std::max(process.recv_rows, rc.extent[t].recv_rows);
    process.tasks = std::max(process.tasks, rc.extent[t].tasks);
    process.items = std::max(process.items, rc.extent[t].items);
  }
  for (int p = 0; p < members; ++p) n_max = std::max(n_max, part.local_size(p));
  ra.process = build_model(pp, n_max, process, false);
  ra.process_extent = process;
  ra.process_rows = n_max;
  return ra;
}

// ---- pairs ------------------------------------------------------------------

namespace {

/// Pairs of the queries of segment s of branch i in [x, y) with phase `off`.
long double segment_pairs(const Pattern &pat, int i, std::int64_t off, std::int64_t s,
                          std::int64_t x, std::int64_t y) {
  const std::int64_t r = pat.dilation_rate[i];
  const std::int64_t sb = pat.segment_begin(s, i), se = pat.segment_end(s, i);
  const std::int64_t b = sb + off;
  std::int64_t first = 0, count = 0;
  ringattn::Details::progression(std::max(x, sb), std::min(y, se), b, r, first, count);
  if (count == 0) return 0;
  const long double c = count;
  if (pat.causal) {
    // query b + k*r sees the k + 1 keys b, b + r, ..., itself
    const long double k0 = (first - b) / r;
    return c * (k0 + 1) + c * (c - 1) / 2;
  }
  return c * (long double)((se - b + r - 1) / r);
}

} // namespace

long double pairs_in_range(const Pattern &pat, std::int64_t begin, std::int64_t end) {
  if (end <= begin) return 0;
  long double total = 0;
  for (int i = 0; i < pat.num_branches; ++i) {
    const std::int64_t w = pat.segment_length[i];
    const std::int64_t s0 = begin / w, s1 = (end - 1) / w;
    for (const auto &[off, heads] : branch_offsets(pat, i)) {
      long double sum = segment_pairs(pat, i, off, s0, begin, end);
      if (s1 > s0) {
        sum += segment_pairs(pat, i, off, s1, begin, end);
        // segments strictly between are whole and full length: all alike
        if (s1 - s0 > 1)
          sum += (long double)(s1 - s0 - 1) * segment_pairs(pat, i, off, s0 + 1,
                                                            pat.segment_begin(s0 + 1, i),
                                                            pat.segment_end(s0 + 1, i));
      }
      total += (long double)heads * sum;
    }
  }
  return total;
}

// ---- the capacity search --------------------------------------------------

Fit longest_fitting_sequence(const PlanProblem &pp, int members, std::uint64_t memory_bytes,
                             std::int64_t step, std::int64_t cap) {
  if (step < 1 || members < 1)
    throw std::invalid_argument("longest_fitting_sequence: step/members");
  Fit fit;
  fit.members = members;
  auto total = [&](std::int64_t k) {
    ++fit.evaluations;
    return max_member_total(pp, k * step, members);
  };
  auto fits = [&](std::int64_t t) { return t < saturated && std::uint64_t(t) <= memory_bytes; };

  const std::int64_t k_cap = std::max<std::int64_t>(cap / step, 1);
  std::int64_t lo = std::max<std::int64_t>(ceil_div(members, step), 1);
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

// ---- units --------------------------------------------------------------------

std::string human_bytes(long double bytes) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  char buf[64];
  if (bytes < 1024) {
    std::snprintf(buf, sizeof buf, "%.0Lf B", bytes);
    return buf;
  }
  int u = 0;
  while (bytes >= 1024 && u < 6) {
    bytes /= 1024;
    ++u;
  }
  std::snprintf(buf, sizeof buf, "%.2Lf %s", bytes, units[u]);
  return buf;
}

std::string human_count(long double value, const std::string &unit) {
  static const char *const prefixes[] = {"", "k", "M", "G", "T", "P", "E", "Z", "Y"};
  int u = 0;
  while (std::fabs(value) >= 1000 && u < 8) {
    value /= 1000;
    ++u;
  }
  char buf[64];
  if (u == 0)
    std::snprintf(buf, sizeof buf, "%.0Lf %s", value, unit.c_str());
  else
    std::snprintf(buf, sizeof buf, "%.2Lf %s%s", value, prefixes[u], unit.c_str());
  return buf;
}

} // namespace ringattn::driver
