#ifndef RINGATTN_BACKWARDTASK_HPP
#define RINGATTN_BACKWARDTASK_HPP

// The units of work of the backward (RingAttn_BackwardKernel.hpp): for the
// dK/dV pass, a tile of the keys of one key run against every task that
// reads the run; for the host path's fused pass, a set of tasks closed
// under sharing a key run.

#include <kernels/detail/RingAttn_BlockTask.hpp>

#include <cstdint>

namespace ringattn::Details {

/// Keys [k_begin, k_begin + k_tile) of `run` (positions step `stride`),
/// against the tasks task_index[task_begin, task_end) that read the run.
struct KeyWorkItem {
  KeyRun run;
  std::int64_t stride = 1;
  std::int64_t k_begin = 0;
  std::int64_t task_begin = 0;
  std::int64_t task_end = 0;
};

/// The unit of work of the host path's fused backward: the tasks
/// task_order[task_begin, task_end) of a branch that share key runs, and so
/// together own their dQ rows and their key runs' partial dK/dV rows. A set
/// may be split into chunks (split_fused_work): chunk c > 0 takes the set's
/// query tiles [tile_begin, tile_end), counted over its tasks in order, and
/// adds its dK/dV into a private partial c, which the launch sums into the
/// block's partial in chunk order afterwards.
struct FusedWorkItem {
  std::int64_t task_begin = 0;
  std::int64_t task_end = 0;
  std::int64_t tile_begin = 0;
  std::int64_t tile_end = INT64_MAX;
  int chunk = 0;
};

} // namespace ringattn::Details

#endif
