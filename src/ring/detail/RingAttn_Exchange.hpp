#ifndef RINGATTN_EXCHANGE_HPP
#define RINGATTN_EXCHANGE_HPP

// What one ring member needs from another (docs/DESIGN.md layer 4), derived on both
// sides from the pattern and the partition alone, so no metadata travels.
//
// Member p needs from member j, per branch i and kv head g, the rows u owned
// by j for which some local query t of p, of a head h reading g, has
// seg_i(t) == seg_i(u) and phase_i(t) == phase_i(u) == offset(h, i), and
// u <= t when causal (docs/SPEC.md section 2). Within one segment and phase these rows are an
// arithmetic progression (step r_i) in each of j's ranges, so the block is a
// list of such runs, each packed contiguously. The row count is the analytic
// minimum: nothing a receiver does not read is sent, and a hop whose block
// would be empty is skipped.

#include <kernels/detail/RingAttn_BlockTask.hpp>
#include <pattern/RingAttn_Partition.hpp>
#include <pattern/RingAttn_Pattern.hpp>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace ringattn::Details {

/// The block member `source` sends member `receiver`, and (receiver side)
/// the block-kernel tasks that consume it, one list per branch.
struct Exchange {
  std::int64_t rows = 0; ///< rows of the block, per batch entry
  std::vector<PackRun> pack;
  std::vector<std::vector<BlockTask>> tasks;
  bool empty() const { return rows == 0; }
};

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

/// Plans the exchange from `source` to `receiver`. Tasks are built only when
/// `with_tasks` (the receiver); the sender needs the pack list alone.
inline Exchange plan_exchange(const Pattern &pattern, const Partition &partition, int receiver,
                              int source, bool with_tasks) {
  Exchange ex;
  if (with_tasks) ex.tasks.resize(pattern.num_branches);
  const int hpk = pattern.heads_per_kv_head();
  const int nr = partition.num_ranges();

  for (int i = 0; i < pattern.num_branches; ++i) {
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

    for (int g = 0; g < pattern.kv_heads; ++g) {
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
            keys[num_keys++] = KeyRun{first, count, ex.rows};
            const std::int64_t src_row0 =
                partition.range_local_begin(source, kj) + (first - b.begin);
            ex.pack.push_back(PackRun{g, src_row0, count, r, ex.rows});
            ex.rows += count;
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
  return ex;
}

/// Tiles of q_tile queries of every task: the block kernel's work items.
inline std::vector<WorkItem> make_work_items(const std::vector<BlockTask> &tasks, int q_tile) {
  std::vector<WorkItem> items;
  for (std::size_t t = 0; t < tasks.size(); ++t)
    for (std::int64_t q0 = 0; q0 < tasks[t].q_count; q0 += q_tile)
      items.push_back(WorkItem{std::int64_t(t), q0});
  return items;
}

} // namespace ringattn::Details

#endif
