#ifndef RINGATTN_BLOCKTASK_HPP
#define RINGATTN_BLOCKTASK_HPP

// The unit of work of the block kernel. Under every pattern of docs/SPEC.md section 2 the
// queries of one (head, branch, segment, phase) and the keys they see are
// arithmetic progressions of positions with step r (r = 1 for dense), so a
// task is "these strided queries against these strided keys", the keys
// packed contiguously in a K/V block.

#include <cstdint>

namespace ringattn::Details {

/// Keys at positions pos0 + c * stride, c < count, stored in rows
/// [block_row, block_row + count) of a K/V block.
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

/// One team's share: a tile of the queries of one task.
struct WorkItem {
  std::int64_t task = 0;
  std::int64_t q_begin = 0;
};

} // namespace ringattn::Details

#endif
