#ifndef RINGATTN_BACKWARDTASK_HPP
#define RINGATTN_BACKWARDTASK_HPP

// The unit of work of the backward's dK/dV pass (RingAttn_BackwardKernel.hpp):
// a tile of the keys of one key run, against every task that reads the run.

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

} // namespace ringattn::Details

#endif
