#ifndef RINGATTN_EXCHANGE_HPP
#define RINGATTN_EXCHANGE_HPP

// What one ring member needs from another (docs/DESIGN.md layer 4), derived on both
// sides from the pattern and the partition alone, so no metadata travels.
//
// Member p needs from member j, per branch i and kv head g, the rows u owned
// by j for which some local query t of p, of a head h reading g, has
// seg_i(t) == seg_i(u) and phase_i(t) == phase_i(u) == offset(h, i), and
// u <= t when causal (SPEC 2). Within one segment and phase these rows are an
// arithmetic progression (step r_i) in each of j's ranges.
//
// Two layouts of the same rows (SPEC 3, traffic):
//  - the block the kernels read: one run per (branch, kv head, phase,
//    segment, range), so a row that several branches or phases read appears
//    once per reader (`block_rows`, the `gather` list);
//  - the wire: per kv head, the union of those progressions, each
//    (kv head, row) once (`rows`, the `pack` list). The receiver expands the
//    wire into the block (the `expand` list; the forward expands one
//    branch's part at a time, `branch_expand`, so it holds the largest
//    branch's part, not the whole block, and a branch whose part is the
//    wire, `reads_wire`, reads the wire itself); where no row is read twice
//    (dense attention, for one) the wire is the block and nothing expands.
//    Only the wire crosses; a hop whose block would be empty is skipped.

#include <kernels/detail/RingAttn_BlockTask.hpp>
#include <pattern/RingAttn_Partition.hpp>
#include <pattern/RingAttn_Pattern.hpp>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

namespace ringattn::Details {

/// Rows of a branch's part of a block that the forward and the MPI backward
/// expand at once (Exchange::branch_pieces): a sixteenth of the hop's wire,
/// at least min_expand_piece_rows, so the expansion buffer stays a small
/// fraction of a receive buffer and memory near the floor (SPEC 3).
inline constexpr std::int64_t min_expand_piece_rows = 16;
inline std::int64_t expand_piece_rows(std::int64_t wire_rows) {
  return std::max(min_expand_piece_rows, (wire_rows + 15) / 16);
}

/// The block member `source` sends member `receiver`, and (receiver side)
/// the block-kernel tasks that consume it, one list per branch. Row counts
/// are per batch entry.
struct Exchange {
  std::int64_t rows = 0;         ///< wire rows: unique (kv head, position) rows that cross
  std::vector<PackRun> pack;     ///< sender: its local K/V rows -> wire rows
  std::int64_t block_rows = 0;   ///< rows of the (expanded) block the kernels read
  std::vector<PackRun> gather;   ///< the source's local K/V rows -> block rows directly
  std::vector<ExpandRun> expand; ///< receiver: wire rows -> block rows; empty: wire == block
  std::vector<std::vector<BlockTask>> tasks;
  /// Branch i's block rows are [branch_row0[i], branch_row0[i + 1]) (the
  /// block holds the branches one after another); empty without branches.
  std::vector<std::int64_t> branch_row0;
  /// Where the wire expands: reads_wire[i] when branch i's part of the block
  /// is the wire itself, row for row (plan_exchange), so the branch reads
  /// the wire and nothing is expanded for it.
  std::vector<char> reads_wire;
  /// Query heads per kv head (H / Hkv): tasks of heads h and h' read one
  /// kv head when h / heads_per_kv == h' / heads_per_kv.
  int heads_per_kv = 1;
  bool empty() const { return block_rows == 0; }
  bool branch_reads_wire(int i) const {
    return !reads_wire.empty() && reads_wire[std::size_t(i)] != 0;
  }
  bool expands() const { return !expand.empty(); }
  /// Rows of branch i's part of the block.
  std::int64_t branch_rows(int i) const {
    return branch_row0.empty() ? 0 : branch_row0[std::size_t(i) + 1] - branch_row0[std::size_t(i)];
  }
  /// Rows of the pieces branch i's part expands in (the last may be
  /// shorter): expand_piece_rows of the wire, at most the part.
  std::int64_t branch_piece_rows(int i) const {
    return std::min(branch_rows(i), expand_piece_rows(rows));
  }
  /// The runs of the expand list that fill rows [lo, hi) of branch i's part
  /// of the block, cut to those rows and counted from the part's row lo
  /// (elem0 renumbered): the forward expands one piece of one branch at a
  /// time into a block of hi - lo rows.
  std::vector<ExpandRun> branch_expand(int i, std::int64_t lo, std::int64_t hi) const {
    std::vector<ExpandRun> runs;
    const std::int64_t row0 = branch_row0[std::size_t(i)], row1 = branch_row0[std::size_t(i) + 1];
    std::int64_t elem = 0;
    for (ExpandRun e : expand) {
      // a run fills rows of one gather progression, so of one branch
      if (e.dst_row0 < row0 || e.dst_row0 >= row1) continue;
      // its elements c with lo <= dst_row0 - row0 + c * dst_stride < hi
      const std::int64_t first = e.dst_row0 - row0;
      const std::int64_t c0 = first >= lo ? 0 : (lo - first + e.dst_stride - 1) / e.dst_stride;
      const std::int64_t c1 =
          first >= hi ? 0 : std::min(e.count, (hi - first + e.dst_stride - 1) / e.dst_stride);
      if (c1 <= c0) continue;
      e.src_row0 += c0 * e.src_stride;
      e.dst_row0 = first + c0 * e.dst_stride - lo;
      e.count = c1 - c0;
      e.elem0 = elem;
      elem += e.count;
      runs.push_back(e);
    }
    return runs;
  }
  /// The runs that fill branch i's whole part.
  std::vector<ExpandRun> branch_expand(int i) const { return branch_expand(i, 0, branch_rows(i)); }
};

/// The tasks whose keys lie in rows [lo, hi) of a packed block, cut to
/// those keys and their rows counted from lo: a task keeps its queries and
/// the part of each key run in the range (positions moved alike, `stride`
/// per row); a task left without keys is dropped. Launched one range after
/// another, the streaming softmax merges a task's key ranges exactly as it
/// merges hops (SPEC 4), and within one range the tasks still write
/// disjoint rows.
inline std::vector<BlockTask> tasks_in_key_rows(const std::vector<BlockTask> &tasks,
                                                std::int64_t lo, std::int64_t hi) {
  std::vector<BlockTask> cut;
  for (const BlockTask &task : tasks) {
    BlockTask t = task;
    t.num_key_runs = 0;
    for (int k = 0; k < task.num_key_runs; ++k) {
      const KeyRun &run = task.key_runs[k];
      const std::int64_t r0 = std::max(run.block_row, lo),
                         r1 = std::min(run.block_row + run.count, hi);
      if (r1 <= r0) continue;
      t.key_runs[t.num_key_runs++] =
          KeyRun{run.pos0 + (r0 - run.block_row) * task.stride, r1 - r0, r0 - lo};
    }
    if (t.num_key_runs > 0) cut.push_back(t);
  }
  return cut;
}

/// Positions in [lo, hi) congruent to base modulo r, as (first, count).
inline void progression(std::int64_t lo, std::int64_t hi, std::int64_t base, std::int64_t r,
                        std::int64_t &first, std::int64_t &count) {
  first = base;
  count = 0;
  if (hi <= lo || hi <= base) return;
  const std::int64_t start = lo <= base ? 0 : (lo - base - 1) / r + 1; // first index >= lo
  const std::int64_t last = (hi - 1 - base) / r;                       // last index < hi
  if (start > last) return;
  first = base + start * r;
  count = last - start + 1;
}

/// The wire of an exchange whose `gather` list is planned: per kv head in
/// [g_begin, g_end), the union of its progressions, and (with_expand) the map
/// back to block rows. Where no row is read twice the wire is the block.
///
/// Per kv head, the first and one-past-last rows of the progressions cut the
/// source's rows into regions where the same progressions are active. In a
/// region of length L the union is periodic with M = lcm of their steps
/// (M = L when that is larger): one period is enumerated (O(M), at most the
/// region's rows) and each of its residues becomes one run of step M, or the
/// whole region one run of step d when the residues are evenly spaced by d.
/// Cost and memory are O(runs), independent of the row counts.
inline void plan_wire(Exchange &ex, int g_begin, int g_end, bool with_expand) {
  std::vector<const PackRun *> progs, active;
  std::vector<std::int64_t> cuts, residues;
  struct WireRun {
    std::int64_t first, stride, count, wire0;
  };
  std::vector<WireRun> region_runs;
  auto last_of = [](const PackRun &a) { return a.src_row0 + (a.count - 1) * a.stride; };
  // first element of a at or after x (a is active at x: a.src_row0 <= x <= last)
  auto first_at = [](const PackRun &a, std::int64_t x) {
    return a.src_row0 + (x - a.src_row0 + a.stride - 1) / a.stride * a.stride;
  };
  for (int g = g_begin; g < g_end; ++g) {
    progs.clear();
    cuts.clear();
    for (const PackRun &run : ex.gather)
      if (run.kv_head == g && run.count > 0) {
        progs.push_back(&run);
        cuts.push_back(run.src_row0);
        cuts.push_back(last_of(run) + 1);
      }
    std::sort(cuts.begin(), cuts.end());
    cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
    for (std::size_t c = 0; c + 1 < cuts.size(); ++c) {
      const std::int64_t x0 = cuts[c], x1 = cuts[c + 1], L = x1 - x0;
      active.clear();
      std::int64_t M = 1;
      for (const PackRun *a : progs)
        // active: spans the region and has a row in it (a step can pass over it)
        if (a->src_row0 <= x0 && x0 <= last_of(*a) && first_at(*a, x0) < x1) {
          active.push_back(a);
          const std::int64_t step = M / std::gcd(M, a->stride);
          M = step > L / a->stride ? L : step * a->stride; // lcm, capped at L
        }
      if (active.empty()) continue;
      residues.clear();
      for (const PackRun *a : active)
        for (std::int64_t x = first_at(*a, x0); x < x0 + M; x += a->stride)
          residues.push_back(x - x0);
      std::sort(residues.begin(), residues.end());
      residues.erase(std::unique(residues.begin(), residues.end()), residues.end());

      region_runs.clear();
      const std::int64_t m = std::int64_t(residues.size());
      std::int64_t d = m > 1 ? residues[1] - residues[0] : M;
      bool even = m * d == M;
      for (std::int64_t k = 1; k < m && even; ++k) even = residues[k] - residues[k - 1] == d;
      if (even) { // one run of step d over the region
        const std::int64_t first = x0 + residues[0];
        region_runs.push_back(WireRun{first, d, (x1 - 1 - first) / d + 1, ex.rows});
      } else { // one run of step M per residue
        std::int64_t wire = ex.rows;
        for (const std::int64_t r : residues) {
          region_runs.push_back(WireRun{x0 + r, M, (L - 1 - r) / M + 1, wire});
          wire += region_runs.back().count;
        }
      }
      for (const WireRun &w : region_runs) {
        ex.pack.push_back(PackRun{g, w.first, w.count, w.stride, ex.rows});
        ex.rows += w.count;
      }
      if (!with_expand) continue;
      for (const PackRun *a : active) {
        const std::int64_t e = first_at(*a, x0);
        const std::int64_t c0 = (e - a->src_row0) / a->stride;
        const std::int64_t n = (std::min(last_of(*a), x1 - 1) - e) / a->stride + 1;
        if (even) { // a's rows lie on the one run (its step is a multiple of d)
          const WireRun &w = region_runs[0];
          ex.expand.push_back(
              ExpandRun{w.wire0 + (e - w.first) / d, a->stride / d, a->block_row + c0, 1, n, 0});
        } else { // the residues a hits; each of their rows is one of a's
          for (const WireRun &w : region_runs) {
            if ((w.first - e) % a->stride != 0) continue;
            const std::int64_t dst_stride = M % a->stride == 0 ? M / a->stride : 1;
            ex.expand.push_back(ExpandRun{w.wire0, 1,
                                          a->block_row + (w.first - a->src_row0) / a->stride,
                                          dst_stride, w.count, 0});
          }
        }
      }
    }
  }
  if (ex.rows == ex.block_rows) {
    // No row is read twice: the block itself holds each row once, so it is
    // the wire (nothing to expand; dense attention always takes this path).
    ex.pack = ex.gather;
    ex.expand.clear();
    return;
  }
  std::int64_t elem = 0;
  for (ExpandRun &e : ex.expand) {
    e.elem0 = elem;
    elem += e.count;
  }
}

/// The block layout (gather list, block_rows) of the exchange from `source`
/// to `receiver` for kv heads [g_begin, g_end), and its tasks when
/// `with_tasks`; the wire is left to plan_wire.
inline void plan_gather(const Pattern &pattern, const Partition &partition, int receiver,
                        int source, bool with_tasks, int g_begin, int g_end, Exchange &ex) {
  if (with_tasks) ex.tasks.resize(pattern.num_branches);
  ex.branch_row0.assign(std::size_t(pattern.num_branches) + 1, 0);
  const int hpk = pattern.heads_per_kv_head();
  const int nr = partition.num_ranges();

  for (int i = 0; i < pattern.num_branches; ++i) {
    ex.branch_row0[std::size_t(i)] = ex.block_rows;
    const std::int64_t w = pattern.segment_length[i];
    const std::int64_t r = pattern.dilation_rate[i];

    // Segments that hold rows of both members.
    std::vector<std::int64_t> segments;
    for (int kp = 0; kp < nr; ++kp)
      for (int kj = 0; kj < nr; ++kj) {
        const Range a = partition.range(receiver, kp), b = partition.range(source, kj);
        if (a.size() == 0 || b.size() == 0) continue;
        const std::int64_t lo = std::max(a.begin / w, b.begin / w);
        const std::int64_t hi = std::min((a.end - 1) / w, (b.end - 1) / w);
        for (std::int64_t s = lo; s <= hi; ++s) segments.push_back(s);
      }
    std::sort(segments.begin(), segments.end());
    segments.erase(std::unique(segments.begin(), segments.end()), segments.end());

    for (int g = g_begin; g < g_end; ++g) {
      std::vector<std::int64_t> phases;
      for (int h = g * hpk; h < (g + 1) * hpk; ++h)
        if (pattern.offset(h, i) >= 0) phases.push_back(pattern.offset(h, i));
      std::sort(phases.begin(), phases.end());
      phases.erase(std::unique(phases.begin(), phases.end()), phases.end());

      for (const std::int64_t phase : phases)
        for (const std::int64_t s : segments) {
          const std::int64_t seg_begin = pattern.segment_begin(s, i);
          const std::int64_t seg_end = pattern.segment_end(s, i);
          const std::int64_t base = seg_begin + phase;

          // The receiver's queries of this segment and phase (one run per range).
          BlockTask queries[2];
          int num_queries = 0;
          std::int64_t last_query = -1;
          for (int kp = 0; kp < nr; ++kp) {
            const Range a = partition.range(receiver, kp);
            std::int64_t first, count;
            progression(std::max(a.begin, seg_begin), std::min(a.end, seg_end), base, r, first,
                        count);
            if (count == 0) continue;
            BlockTask &q = queries[num_queries++];
            q.q_pos0 = first;
            q.q_count = count;
            q.q_row0 = partition.range_local_begin(receiver, kp) + (first - a.begin);
            q.stride = r;
            last_query = std::max(last_query, first + (count - 1) * r);
          }
          if (num_queries == 0) continue;

          // The sender's keys they see; causal keeps only u <= the last query.
          KeyRun keys[2];
          int num_keys = 0;
          for (int kj = 0; kj < nr; ++kj) {
            const Range b = partition.range(source, kj);
            std::int64_t hi = std::min(b.end, seg_end);
            if (pattern.causal) hi = std::min(hi, last_query + 1);
            std::int64_t first, count;
            progression(std::max(b.begin, seg_begin), hi, base, r, first, count);
            if (count == 0) continue;
            keys[num_keys++] = KeyRun{first, count, ex.block_rows};
            const std::int64_t src_row0 =
                partition.range_local_begin(source, kj) + (first - b.begin);
            ex.gather.push_back(PackRun{g, src_row0, count, r, ex.block_rows});
            ex.block_rows += count;
          }
          if (num_keys == 0 || !with_tasks) continue;

          for (int h = g * hpk; h < (g + 1) * hpk; ++h) {
            if (pattern.offset(h, i) != phase) continue;
            for (int c = 0; c < num_queries; ++c) {
              BlockTask task = queries[c];
              const std::int64_t task_last = task.q_pos0 + (task.q_count - 1) * r;
              task.head = h;
              task.num_key_runs = 0;
              for (int k = 0; k < num_keys; ++k)
                if (!pattern.causal || keys[k].pos0 <= task_last)
                  task.key_runs[task.num_key_runs++] = keys[k];
              if (task.num_key_runs > 0) ex.tasks[i].push_back(task);
            }
          }
        }
    }
  }
  ex.branch_row0.back() = ex.block_rows;
}

/// Whether each kv head reads branch i at one phase at most (the offsets of
/// its query heads in branch i agree). Then a branch part of the block that
/// holds as many rows as the wire is the wire, row for row: its rows are a
/// subset of the wire's (the union), so all of them, and per kv head (in
/// order, on both sides) they come in ascending positions, segment by
/// segment and range by range, as the wire holds them (where the union is
/// one progression, the wire's region is one run in ascending order).
inline bool one_phase_per_kv_head(const Pattern &pattern, int i) {
  const int hpk = pattern.heads_per_kv_head();
  for (int g = 0; g < pattern.kv_heads; ++g) {
    std::int64_t phase = -1;
    for (int h = g * hpk; h < (g + 1) * hpk; ++h) {
      const std::int64_t off = pattern.offset(h, i);
      if (off < 0) continue;
      if (phase >= 0 && off != phase) return false;
      phase = off;
    }
  }
  return true;
}

/// Plans the exchange from `source` to `receiver`. Tasks and the expand list
/// are built only when `with_tasks` (the receiver); the sender needs the pack
/// list alone. A member's exchange with itself never crosses: its wire is its
/// block.
inline Exchange plan_exchange(const Pattern &pattern, const Partition &partition, int receiver,
                              int source, bool with_tasks) {
  Exchange ex;
  ex.heads_per_kv = pattern.heads / pattern.kv_heads;
  plan_gather(pattern, partition, receiver, source, with_tasks, 0, pattern.kv_heads, ex);
  if (receiver == source) {
    ex.rows = ex.block_rows;
    ex.pack = ex.gather;
  } else {
    plan_wire(ex, 0, pattern.kv_heads, with_tasks);
  }
  if (ex.expands()) {
    ex.reads_wire.assign(std::size_t(pattern.num_branches), 0);
    for (int i = 0; i < pattern.num_branches; ++i)
      ex.reads_wire[std::size_t(i)] =
          ex.branch_rows(i) == ex.rows && one_phase_per_kv_head(pattern, i);
  }
  return ex;
}

/// Wire rows of kv head g alone in the exchange from `source` to `receiver`
/// (plan_exchange's rows are their sum over g): lets a counter that groups
/// alike kv heads count the wire without planning every head.
inline std::int64_t wire_rows_of_kv_head(const Pattern &pattern, const Partition &partition,
                                         int receiver, int source, int g) {
  Exchange ex;
  plan_gather(pattern, partition, receiver, source, false, g, g + 1, ex);
  if (receiver == source) return ex.block_rows;
  plan_wire(ex, g, g + 1, false);
  return ex.rows;
}

/// Rewrites the tasks of `ex` to read the source's K and V in place instead
/// of a packed block (KeyValueRows::of_member): a key run's row becomes the
/// source's local row of its first key, the keys of a run then `stride` rows
/// apart. With `global_rows` the source's K/V and the receiver's Q, O and LSE
/// are whole-sequence views, indexed by position: key runs and queries take
/// their positions as rows. Nothing is then expanded (the expand list is
/// cleared).
inline void read_keys_in_place(Exchange &ex, bool global_rows) {
  ex.expand.clear();
  ex.reads_wire.clear();
  for (auto &branch_tasks : ex.tasks)
    for (BlockTask &task : branch_tasks) {
      if (global_rows) task.q_row0 = task.q_pos0;
      for (int k = 0; k < task.num_key_runs; ++k) {
        KeyRun &run = task.key_runs[k];
        if (global_rows) {
          run.block_row = run.pos0;
          continue;
        }
        // plan_gather made one gather run per key run, in block-row order
        const auto it =
            std::lower_bound(ex.gather.begin(), ex.gather.end(), run.block_row,
                             [](const PackRun &g, std::int64_t row) { return g.block_row < row; });
        run.block_row = it->src_row0;
      }
    }
}

/// Rows per chunk of a member of n rows that keeps its running O a chunk at
/// a time (16-bit storage, its own block its only one:
/// RingMember::consume_in_chunks), for batch x heads = batch_heads: an
/// eighth of n, and at least 32,768 / batch_heads, each rounded up to whole
/// multiples of 4,096 rows; at most n. Each chunk is a launch of its own:
/// the floor gives it about 40 query tiles of 768 to share among threads
/// (one head in chunks of 4,096 rows made six, and float16 ran 5-10% behind
/// float32 at N 16,384 on two threads), at a float chunk of 128 KiB per
/// head dim.
inline std::int64_t running_o_chunk_rows(std::int64_t n, std::int64_t batch_heads) {
  const auto whole_4096 = [](std::int64_t rows) { return (rows + 4095) / 4096 * 4096; };
  // ceil(32768 / batch_heads), without overflow for a saturated B H
  const std::int64_t floor = whole_4096(32767 / std::max<std::int64_t>(1, batch_heads) + 1);
  return std::min(n, std::max(floor, whole_4096(n / 8)));
}

/// The tasks of `ex` cut to their queries in rows [row_begin, row_end) (the
/// rows that tasks index): a chunk of a member's rows. Only the tasks are
/// kept. Key runs stay whole; causal masking in the kernels drops the keys
/// past a shortened task's last query.
inline Exchange tasks_in_rows(const Exchange &ex, std::int64_t row_begin, std::int64_t row_end) {
  Exchange out;
  out.heads_per_kv = ex.heads_per_kv;
  out.tasks.resize(ex.tasks.size());
  auto index_at = [](const BlockTask &t, std::int64_t row) { // first query at or after row
    return row <= t.q_row0 ? 0 : std::min(t.q_count, (row - t.q_row0 + t.stride - 1) / t.stride);
  };
  for (std::size_t i = 0; i < ex.tasks.size(); ++i)
    for (const BlockTask &task : ex.tasks[i]) {
      const std::int64_t lo = index_at(task, row_begin), hi = index_at(task, row_end);
      if (lo >= hi) continue;
      BlockTask cut = task;
      cut.q_row0 += lo * task.stride;
      cut.q_pos0 += lo * task.stride;
      cut.q_count = hi - lo;
      out.tasks[i].push_back(cut);
    }
  return out;
}

/// Kept (query, key) pairs of the tasks of `ex` whose queries lie in rows
/// [0, row_end), causal masking counted.
inline double pairs_below_row(const Exchange &ex, std::int64_t row_end, bool causal) {
  double pairs = 0;
  for (const auto &branch_tasks : tasks_in_rows(ex, 0, row_end).tasks)
    for (const BlockTask &task : branch_tasks)
      for (int r = 0; r < task.num_key_runs; ++r) {
        const KeyRun &run = task.key_runs[r];
        if (!causal) {
          pairs += double(task.q_count) * double(run.count);
          continue;
        }
        for (std::int64_t i = 0; i < task.q_count; ++i) { // keys at or before the query
          const std::int64_t qpos = task.q_pos0 + i * task.stride;
          if (qpos >= run.pos0)
            pairs += double(std::min(run.count, (qpos - run.pos0) / task.stride + 1));
        }
      }
  return pairs;
}

/// The row that cuts the queries of `ex` (rows [0, rows)) into two parts of
/// about equal kept pairs (bisection on pairs_below_row).
inline std::int64_t balanced_row_split(const Exchange &ex, std::int64_t rows, bool causal) {
  const double half = pairs_below_row(ex, rows, causal) / 2;
  std::int64_t lo = 0, hi = rows;
  while (hi - lo > 1) {
    const std::int64_t mid = lo + (hi - lo) / 2;
    (pairs_below_row(ex, mid, causal) < half ? lo : hi) = mid;
  }
  return rows <= 1 ? rows : hi;
}

/// Queries that the tiles of make_work_items come in: the AVX-512 tile's
/// column block (48) where it divides the query tile, else a vector of 16
/// where that divides it, else 1.
inline int work_item_granule(int q_tile) {
  return q_tile % 48 == 0 ? 48 : q_tile % 16 == 0 ? 16 : 1;
}

/// The block kernel's work items: every task's queries cut into as few
/// tiles as q_tile allows (ceil(q_count / q_tile)), of nearly equal size in
/// whole granules (work_item_granule), the larger and smaller spread evenly.
/// Tiles of equal work let the teams of a launch finish together: 4,096
/// queries at q_tile 768 make six tiles of 672-720, where tiles of q_tile
/// would make five of 768 and one of 256, and two threads would wait 12%
/// on the one that got three full tiles.
inline std::vector<WorkItem> make_work_items(const std::vector<BlockTask> &tasks, int q_tile) {
  std::vector<WorkItem> items;
  const std::int64_t g = work_item_granule(q_tile);
  for (std::size_t t = 0; t < tasks.size(); ++t) {
    const std::int64_t q = tasks[t].q_count;
    const std::int64_t tiles = (q + q_tile - 1) / q_tile, granules = (q + g - 1) / g;
    // tile i: granules [floor(i granules / tiles), floor((i + 1) granules /
    // tiles)), at most ceil(granules / tiles) <= q_tile / g of them; the
    // last ends at q. (i granules = i each tiles + i more: no overflow.)
    const std::int64_t each = granules / tiles, more = granules % tiles;
    const auto first_granule = [&](std::int64_t i) { return i * each + i * more / tiles; };
    for (std::int64_t i = 0; i < tiles; ++i) {
      const std::int64_t begin = first_granule(i) * g;
      const std::int64_t end = std::min(q, first_granule(i + 1) * g);
      items.push_back(WorkItem{std::int64_t(t), begin, end - begin});
    }
  }
  return items;
}

} // namespace ringattn::Details

#endif
