#ifndef RINGATTN_BLOCKTASK_HPP
#define RINGATTN_BLOCKTASK_HPP

// The unit of work of the block kernel. Under every pattern of docs/SPEC.md section 2 the
// queries of one (head, branch, segment, phase) and the keys they see are
// arithmetic progressions of positions with step r (r = 1 for dense), so a
// task is "these strided queries against these strided keys", the keys
// packed contiguously in a K/V block.

#include <Kokkos_Macros.hpp>

#include <cstddef>
#include <cstdint>

namespace ringattn::Details {

/// Keys at positions pos0 + c * stride, c < count, stored in rows
/// [block_row, block_row + count) of a K/V block, or, read in place, in rows
/// block_row + c * stride of the source's K and V (read_keys_in_place,
/// RingAttn_Exchange.hpp).
struct KeyRun {
  std::int64_t pos0 = 0;
  std::int64_t count = 0;
  std::int64_t block_row = 0;
};

/// Queries of one head at positions q_pos0 + c * stride (local rows
/// q_row0 + c * stride), c < q_count, against up to two key runs (a zigzag
/// owner contributes two ranges to one segment).
struct BlockTask {
  static constexpr int max_key_runs = 2;
  int head = 0;
  int num_key_runs = 0;
  std::int64_t q_row0 = 0;
  std::int64_t q_pos0 = 0;
  std::int64_t q_count = 0;
  std::int64_t stride = 1;
  KeyRun key_runs[max_key_runs];
};

/// Rows src_row0 + c * stride (c < count) of kv head `kv_head` of the
/// sender's local K/V, packed into block rows [block_row, block_row + count).
struct PackRun {
  int kv_head = 0;
  std::int64_t src_row0 = 0;
  std::int64_t count = 0;
  std::int64_t stride = 1;
  std::int64_t block_row = 0;
};

/// Receiver side: rows src_row0 + c * src_stride of the wire block (the
/// unique rows that crossed) copied to rows dst_row0 + c * dst_stride of the
/// expanded block the kernels read, c < count. elem0 is the number of rows
/// of the runs before this one (the expand kernel's flat index).
struct ExpandRun {
  std::int64_t src_row0 = 0;
  std::int64_t src_stride = 1;
  std::int64_t dst_row0 = 0;
  std::int64_t dst_stride = 1;
  std::int64_t count = 0;
  std::int64_t elem0 = 0;
};

/// One team's share: queries [q_begin, q_begin + q_count) of one task, at
/// most the query tile (make_work_items).
struct WorkItem {
  std::int64_t task = 0;
  std::int64_t q_begin = 0;
  std::int64_t q_count = 0;
};

/// The next part of a host tile's scratch, `floats` long and 64-byte
/// aligned; `scratch` moves past it (the AVX-512 and AMX tiles carve their
/// buffers so, and size the scratch with 63 bytes of slack per part).
inline float *carve_scratch(float *&scratch, std::size_t floats) {
  const std::uintptr_t at = (reinterpret_cast<std::uintptr_t>(scratch) + 63) & ~std::uintptr_t(63);
  float *const part = reinterpret_cast<float *>(at);
  scratch = part + floats;
  return part;
}

/// Queries [q_begin, q_begin + nq) of one task for batch entry b, nq at most
/// the query tile: positions qpos(i), local rows qrow(i), i < nq.
struct QueryTile {
  std::int64_t b = 0;
  BlockTask task;
  int h = 0;
  std::int64_t stride = 1;
  int nq = 0;
  std::int64_t qpos_first = 0;
  std::int64_t qpos_last = 0;
  std::int64_t qrow_first = 0;

  KOKKOS_INLINE_FUNCTION std::int64_t qpos(int i) const { return qpos_first + i * stride; }
  KOKKOS_INLINE_FUNCTION std::int64_t qrow(int i) const { return qrow_first + i * stride; }

  /// The tile from query q_begin of `task`, positions stepping `stride` (the
  /// task's; the dK/dV pass passes its key run's, which is the same).
  KOKKOS_INLINE_FUNCTION static QueryTile of_task(std::int64_t b, const BlockTask &task,
                                                  std::int64_t q_begin, std::int64_t stride,
                                                  int q_tile) {
    const std::int64_t rem = task.q_count - q_begin;
    const int nq = rem < q_tile ? int(rem) : q_tile;
    const std::int64_t qpos_first = task.q_pos0 + q_begin * stride;
    return QueryTile{b,
                     task,
                     task.head,
                     stride,
                     nq,
                     qpos_first,
                     qpos_first + (nq - 1) * stride,
                     task.q_row0 + q_begin * stride};
  }

  /// The tile of the team `league_rank` of a launch of one team per (batch
  /// entry, work item): the forward and the backward's dQ pass.
  template <class ItemView, class TaskView>
  KOKKOS_INLINE_FUNCTION static QueryTile of_team(std::int64_t league_rank, std::int64_t num_items,
                                                  const ItemView &items, const TaskView &tasks) {
    const WorkItem item = items(league_rank % num_items);
    const BlockTask task = tasks(item.task);
    return of_task(league_rank / num_items, task, item.q_begin, task.stride, int(item.q_count));
  }
};

/// Keys [k_begin, k_begin + nk) of a key run, nk at most the key tile:
/// positions kpos(j), rows krow(j), j < nk. In a packed K/V block the keys
/// of a run are consecutive rows (row_step 1); read in place from a member's
/// K and V they are `stride` rows apart, like their positions (row_step =
/// stride; see KeyValueRows).
struct KeyTile {
  int nk = 0;
  std::int64_t stride = 1;
  std::int64_t kpos_first = 0;
  std::int64_t krow_first = 0;
  std::int64_t row_step = 1;

  KOKKOS_INLINE_FUNCTION std::int64_t kpos(int j) const { return kpos_first + j * stride; }
  KOKKOS_INLINE_FUNCTION std::int64_t kpos_last() const { return kpos_first + (nk - 1) * stride; }
  KOKKOS_INLINE_FUNCTION std::int64_t krow(int j) const { return krow_first + j * row_step; }

  /// Causal: leaves out the keys past the last query's position `qpos_last`
  /// (masked for every query of the tile, so out of both tile products);
  /// false when none is left, nor in any later tile of the run.
  KOKKOS_INLINE_FUNCTION bool trim_to_causal(std::int64_t qpos_last) {
    if (kpos_first > qpos_last) return false;
    const std::int64_t seen = (qpos_last - kpos_first) / stride + 1;
    if (seen < nk) nk = int(seen);
    return true;
  }

  KOKKOS_INLINE_FUNCTION static KeyTile of_run(const KeyRun &run, std::int64_t k_begin,
                                               std::int64_t stride, int k_tile,
                                               std::int64_t row_step = 1) {
    const std::int64_t krem = run.count - k_begin;
    return KeyTile{krem < k_tile ? int(krem) : k_tile, stride, run.pos0 + k_begin * stride,
                   run.block_row + k_begin * row_step, row_step};
  }
};

/// Causal masking of a query tile against a key tile: the pair (i, j) is
/// kept when kpos(j) <= qpos(i). Queries and keys of a task share the
/// stride, so position differences divide exactly.
struct CausalBounds {
  bool skip = false;   // every pair masked (keys only grow past this tile)
  bool masked = false; // some pair masked: test each one

  KOKKOS_INLINE_FUNCTION static CausalBounds of(bool causal, const QueryTile &q, const KeyTile &k) {
    return CausalBounds{causal && k.kpos_first > q.qpos_last,
                        causal && k.kpos_last() > q.qpos_first};
  }

  /// Whether key j of the tile is kept for query i.
  KOKKOS_INLINE_FUNCTION bool keep(const QueryTile &q, const KeyTile &k, int i, int j) const {
    return !(masked && k.kpos_first + std::int64_t(j) * k.stride > q.qpos(i));
  }

  /// How many keys of the tile query i keeps: they are its first ones.
  KOKKOS_INLINE_FUNCTION int kept(const QueryTile &q, const KeyTile &k, int i) const {
    if (!masked) return k.nk;
    // positions share the stride, so this is exact
    const std::int64_t lim = (q.qpos_first - k.kpos_first) / k.stride + i + 1;
    return lim < 0 ? 0 : (lim < k.nk ? int(lim) : k.nk);
  }
};

} // namespace ringattn::Details

#endif
