#ifndef RINGATTN_EXCHANGECOUNTER_HPP
#define RINGATTN_EXCHANGECOUNTER_HPP

// What an exchange between two ring members holds, by counts alone
// (model/RingAttn_RingModel.hpp builds the model from them).
//
// plan_exchange() (ring/detail/RingAttn_Exchange.hpp) lists one block-kernel
// task per segment and head: O(N / w * H) entries per member, far too many
// to evaluate inside a search over N. The counter gives the same numbers
// from counts: a segment that lies whole inside the same ranges of the
// receiver and the sender as its neighbours needs exactly what they need
// (translation by a multiple of w), so only the few segments at range
// boundaries (and the short last one) are planned one by one and the rest
// are multiplied out. Kv heads with the same phase list are counted once,
// with a multiplicity. The cost is thus independent of N;
// unit_tests/tstPlan.cpp checks every count against plan_exchange().
//
// Every product saturates at INT64_MAX (`saturated`), so no size overflows.

#include <api/RingAttn_Options.hpp>
#include <core/detail/RingAttn_Saturating.hpp>
#include <pattern/RingAttn_Partition.hpp>
#include <pattern/RingAttn_Pattern.hpp>
#include <ring/detail/RingAttn_Exchange.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <numeric>
#include <stdexcept>
#include <utility>
#include <vector>

namespace ringattn::Details {

/// Insertion sort of a few elements (std::sort on a std::array prefix draws
/// a false -Warray-bounds from GCC 12).
template <class T>
inline void small_sort(T *first, int n) {
  for (int i = 1; i < n; ++i)
    for (int j = i; j > 0 && first[j] < first[j - 1]; --j) std::swap(first[j], first[j - 1]);
}

inline std::int64_t ceil_div(std::int64_t a, std::int64_t b) {
  return a / b + (a % b != 0 ? 1 : 0);
}

/// First query head of head group i and the group's size (docs/SPEC.md section 2,
/// head_groups: the first H % G groups one head larger).
inline void head_group_span(const Pattern &pattern, int i, std::int64_t &begin,
                            std::int64_t &size) {
  const std::int64_t G = pattern.num_branches, H = pattern.heads;
  const std::int64_t base = H / G, extra = H % G;
  begin = i < extra ? i * (base + 1) : extra * (base + 1) + (i - extra) * base;
  size = base + (i < extra ? 1 : 0);
}

/// The (offset, number of heads with it) of branch i over all query heads.
inline std::vector<std::pair<std::int64_t, std::int64_t>> branch_offsets(const Pattern &pattern,
                                                                         int i) {
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

/// What an exchange (source -> receiver) holds, by counts: the rows of the
/// block the kernels read (per batch entry, all kv heads), the rows of its
/// wire (each (kv head, row) once: what crosses) and, per branch, the
/// block-kernel tasks and work items (ceil(q / q_tile) tiles per task) the receiver
/// runs on it. tasks/items are the largest over branches, as
/// largest_exchange() takes.
struct ExchangeCount {
  std::int64_t rows = 0;
  std::int64_t wire_rows = 0;
  std::int64_t tasks = 0; ///< max over branches of the branch's tasks
  std::int64_t items = 0; ///< max over branches of the branch's work items
  std::int64_t branch_tasks[max_branches] = {};
  std::int64_t branch_items[max_branches] = {};
  std::int64_t branch_rows[max_branches] = {}; ///< Exchange::branch_rows
  bool branch_reads_wire[max_branches] = {};   ///< Exchange::branch_reads_wire
};

/// (kv head class, phase) entries an ExchangeCounter of `pattern` holds, over
/// all branches: its memory and the cost of counting one segment.
inline std::int64_t exchange_entries(const Pattern &pattern);

/// The exchange counter of one pattern (precomputes the kv head classes).
class ExchangeCounter {
public:
  explicit ExchangeCounter(const Pattern &pattern);
  /// Counts of plan_exchange(pattern, partition, receiver, source, true)
  /// (block_rows as rows, rows as wire_rows) and make_work_items(., q_tile)
  /// of each branch, in O(1) in N.
  ExchangeCount count(const Partition &partition, int receiver, int source, int q_tile) const;
  const Pattern &pattern() const { return pattern_; }

private:
  struct PhaseHeads {
    std::int64_t phase = 0;
    std::int64_t heads = 0; ///< query heads of the kv head with this offset
  };
  struct KvClass {
    std::int64_t multiplicity = 0; ///< kv heads with this phase list
    std::vector<PhaseHeads> phases;
  };
  struct Acc {
    std::int64_t rows = 0, tasks = 0, items = 0;
  };
  Acc count_segment(const Partition &partition, int receiver, int source, int branch,
                    std::int64_t segment, int q_tile) const;

  /// Kv heads with the same phase lists in every branch have wires of the
  /// same size: one representative each, with a multiplicity.
  struct WireClass {
    int kv_head = 0;
    std::int64_t multiplicity = 0;
  };

  Pattern pattern_;
  std::vector<std::vector<KvClass>> classes_; // [branch]
  std::vector<WireClass> wire_classes_;
  bool reads_rows_once_ = true; ///< every kv head has one (branch, phase): wire == block
  std::vector<char> one_phase_; ///< one_phase_per_kv_head, per branch
};

// ---- exchange counts ----------------------------------------------------

inline ExchangeCounter::ExchangeCounter(const Pattern &pattern) : pattern_(pattern) {
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
  for (int i = 0; i < pattern.num_branches; ++i)
    one_phase_.push_back(one_phase_per_kv_head(pattern, i) ? 1 : 0);
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

inline std::int64_t exchange_entries(const Pattern &pattern) {
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
// only): rows of the block, tasks, and work items (ceil(q / q_tile) per task).
inline ExchangeCounter::Acc ExchangeCounter::count_segment(const Partition &partition, int receiver,
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
        progression(std::max(a.begin, seg_begin), std::min(a.end, seg_end), base, r, first, count);
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
        progression(std::max(b.begin, seg_begin), hi, base, r, first, count);
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

inline ExchangeCount ExchangeCounter::count(const Partition &partition, int receiver, int source,
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
    ec.branch_rows[i] = branch.rows;
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
          ec.wire_rows, sat_mul(c.multiplicity,
                                wire_rows_of_kv_head(pat, partition, receiver, source, c.kv_head)));
  }
  // as plan_exchange decides it
  if (ec.wire_rows < ec.rows)
    for (int i = 0; i < pat.num_branches; ++i)
      ec.branch_reads_wire[i] =
          one_phase_[std::size_t(i)] != 0 && ec.branch_rows[i] == ec.wire_rows;
  return ec;
}

} // namespace ringattn::Details

#endif
