#ifndef RINGATTN_HOPSCHEDULE_HPP
#define RINGATTN_HOPSCHEDULE_HPP

// A hop's exchange as the kernels consume it: the lists of an Exchange
// (RingAttn_Exchange.hpp) copied once into the execution space's memory,
// so a ring pass launches on them without building or copying anything.
// RingPlan (ring/RingAttn_RingPlan.hpp) holds one per hop of a pass.

#include <core/RingAttn_Types.hpp>
#include <core/detail/RingAttn_KokkosCompat.hpp>
#include <kernels/detail/RingAttn_BackwardKernel.hpp>
#include <kernels/detail/RingAttn_BlockTask.hpp>
#include <ring/detail/RingAttn_Exchange.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace ringattn::Details {

/// Lists copied into one allocation of MemorySpace (a plan holds thousands
/// of hops: one allocation each keeps the allocator's overhead off the
/// memory model). `add` stages a list and returns its future offset;
/// `copy` allocates, copies on `exec`'s instance (fenced on it alone, not
/// device-wide) and `view` then gives each list as a View into the storage.
template <class MemorySpace>
class ListArena {
public:
  template <class T>
  std::size_t add(const std::vector<T> &host) {
    const std::size_t offset = (bytes_ + alignment - 1) / alignment * alignment;
    bytes_ = offset + host.size() * sizeof(T);
    lists_.push_back(List{host.data(), host.size() * sizeof(T), offset});
    return offset;
  }
  template <class ExecSpace>
  Kokkos::View<unsigned char *, MemorySpace> copy(const ExecSpace &exec) {
    if (bytes_ == 0) return {};
    storage_ = Kokkos::View<unsigned char *, MemorySpace>(
        Kokkos::view_alloc(std::string("ringattn::hop_schedule"), Kokkos::WithoutInitializing),
        bytes_);
    for (const List &list : lists_) {
      if (list.bytes == 0) continue;
      if constexpr (Kokkos::SpaceAccessibility<Kokkos::HostSpace, MemorySpace>::accessible) {
        std::memcpy(storage_.data() + list.offset, list.data, list.bytes);
      } else {
        const Kokkos::View<unsigned char *, MemorySpace> dst(storage_.data() + list.offset,
                                                             list.bytes);
        const Kokkos::View<const unsigned char *, Kokkos::HostSpace,
                           Kokkos::MemoryTraits<Kokkos::Unmanaged>>
            src(static_cast<const unsigned char *>(list.data), list.bytes);
        Kokkos::deep_copy(exec, dst, src);
      }
    }
    exec.fence(); // the host lists may go away when the caller returns
    return storage_;
  }
  /// The list of `count` T at `offset` (unmanaged: the storage keeps it).
  template <class T>
  Kokkos::View<const T *, MemorySpace> view(std::size_t offset, std::size_t count) const {
    if (count == 0) return {};
    return Kokkos::View<const T *, MemorySpace>(
        reinterpret_cast<const T *>(storage_.data() + offset), count);
  }

private:
  static constexpr std::size_t alignment = 64;
  struct List {
    const void *data;
    std::size_t bytes, offset;
  };
  std::vector<List> lists_;
  std::size_t bytes_ = 0;
  Kokkos::View<unsigned char *, MemorySpace> storage_;
};

/// One branch's launch lists: its tasks and the work items of the forward
/// and of the backward's dQ; in a backward schedule also the dK/dV pass's
/// key work and a host copy of the tasks (the host's fused sweep plans its
/// task sets from them). In a schedule by branch (HopSchedule::by_branch)
/// of a hop whose wire expands, one entry per piece of the branch's part
/// (Exchange::branch_piece_rows) with the piece's own expansion (`expand`,
/// into a block of `expand_rows` rows, which its tasks read, cut to the
/// piece's keys: tasks_in_key_rows): the forward, and the MPI ring's
/// backward, expand one piece at a time; `expand` is empty where the
/// branch's part is the wire (Exchange::reads_wire), whose rows its tasks
/// then read.
template <class MemorySpace>
struct BranchSchedule {
  int branch = 0; ///< the pattern's branch (of which this may be a piece)
  std::vector<BlockTask> host_tasks;
  Kokkos::View<const BlockTask *, MemorySpace> tasks;
  Kokkos::View<const WorkItem *, MemorySpace> items;
  Kokkos::View<const KeyWorkItem *, MemorySpace> key_items;
  Kokkos::View<const std::int64_t *, MemorySpace> task_index;
  Kokkos::View<const ExpandRun *, MemorySpace> expand;
  std::int64_t expand_rows = 0;
  bool expands() const { return expand.extent(0) > 0; }
};

/// The receiving side of one hop: the wire (`rows`, unique (kv head, row)
/// rows), the block the kernels read (`block_rows`), the source's pack runs
/// that build the wire, and one schedule per branch (per piece of a
/// branch's part where the wire expands: by_branch).
template <class MemorySpace>
struct HopSchedule {
  std::int64_t rows = 0;
  std::int64_t block_rows = 0;
  Kokkos::View<const PackRun *, MemorySpace> pack;
  std::vector<BranchSchedule<MemorySpace>> branches;
  /// The wire expands, a piece of a branch's part at a time
  /// (BranchSchedule::expand); the tasks read rows of their piece (or of
  /// the wire, for a branch whose part is the wire). Else the wire is the
  /// block and every task reads it.
  bool by_branch = false;
  /// The one allocation that every list above points into.
  Kokkos::View<unsigned char *, MemorySpace> storage;

  bool empty() const { return block_rows == 0; }

  /// Bytes of its lists (and the host copy of its tasks).
  std::int64_t bytes() const {
    std::int64_t b = std::int64_t(storage.span());
    for (const auto &s : branches) b += std::int64_t(s.host_tasks.size() * sizeof(BlockTask));
    return b;
  }
};

/// What a schedule is built for.
enum class ScheduleUse {
  forward, ///< tasks and work items
  backward ///< the same and the dK/dV key work (and the host copy of the tasks)
};

/// The device schedule of `ex` (its tasks as they are: rows of a block, or
/// of K/V read in place where read_keys_in_place rewrote them), and where
/// `pack` is given, those pack runs in place of ex.pack. Where the exchange
/// expands, each branch that does not read the wire gets one schedule per
/// piece of its part (Exchange::branch_piece_rows), with the piece's
/// expansion and its tasks cut to the piece's keys (tasks_in_key_rows).
template <class MemorySpace, class ExecSpace>
HopSchedule<MemorySpace> make_hop_schedule(const ExecSpace &exec, const Exchange &ex,
                                           const Tiling &tiling, ScheduleUse use,
                                           const std::vector<PackRun> *pack = nullptr) {
  HopSchedule<MemorySpace> hop;
  bool any_task = false;
  for (const auto &tasks : ex.tasks) any_task = any_task || !tasks.empty();
  if (ex.empty() && !any_task) return hop; // a skipped hop holds nothing
  const bool backward = use != ScheduleUse::forward;
  const bool by_branch = ex.expands();
  hop.rows = ex.rows;
  hop.block_rows = ex.block_rows;
  hop.by_branch = by_branch;
  // stage every list, then one allocation and copy
  struct Staged {
    std::size_t branch = 0;
    std::vector<WorkItem> items;
    KeyWork work;
    std::size_t at[5] = {0, 0, 0, 0, 0}; // tasks, items, key items, task index, expand
    std::vector<BlockTask> tasks;        // in the piece of the branch's expanded block
    std::vector<ExpandRun> expand;
    std::int64_t expand_rows = 0;
  };
  const std::size_t branches = ex.tasks.size();
  std::vector<Staged> staged;
  ListArena<MemorySpace> arena;
  const std::vector<PackRun> &pack_runs = pack ? *pack : ex.pack;
  const std::size_t pack_at = arena.add(pack_runs);
  for (std::size_t i = 0; i < branches; ++i) {
    if (ex.tasks[i].empty()) continue;
    if (by_branch && !ex.branch_reads_wire(int(i))) {
      // the branch's part, a piece of rows at a time (Exchange::branch_pieces):
      // each piece's tasks read its rows, expanded just before their launch
      std::vector<BlockTask> part = ex.tasks[i];
      const std::int64_t row0 = ex.branch_row0[i], rows = ex.branch_rows(int(i)),
                         piece = ex.branch_piece_rows(int(i));
      for (BlockTask &task : part)
        for (int k = 0; k < task.num_key_runs; ++k) task.key_runs[k].block_row -= row0;
      for (std::int64_t lo = 0; lo < rows; lo += piece) {
        const std::int64_t hi = std::min(rows, lo + piece);
        Staged st;
        st.branch = i;
        st.tasks = tasks_in_key_rows(part, lo, hi);
        if (st.tasks.empty()) continue;
        st.expand = ex.branch_expand(int(i), lo, hi);
        st.expand_rows = hi - lo;
        staged.push_back(std::move(st));
      }
    } else {
      Staged st;
      st.branch = i;
      st.tasks = ex.tasks[i];
      if (by_branch) // the branch's part is the wire: its rows from 0 there too
        for (BlockTask &task : st.tasks)
          for (int k = 0; k < task.num_key_runs; ++k)
            task.key_runs[k].block_row -= ex.branch_row0[i];
      staged.push_back(std::move(st));
    }
  }
  for (Staged &st : staged) {
    st.items = make_work_items(st.tasks, tiling.q_tile);
    if (backward) st.work = make_key_work(st.tasks, tiling.k_tile, ex.heads_per_kv);
    st.at[0] = arena.add(st.tasks);
    st.at[1] = arena.add(st.items);
    st.at[2] = arena.add(st.work.items);
    st.at[3] = arena.add(st.work.task_index);
    st.at[4] = arena.add(st.expand);
  }
  hop.storage = arena.copy(exec);
  hop.pack = arena.template view<PackRun>(pack_at, pack_runs.size());
  for (Staged &st : staged) {
    BranchSchedule<MemorySpace> b;
    b.branch = int(st.branch);
    b.tasks = arena.template view<BlockTask>(st.at[0], st.tasks.size());
    b.expand = arena.template view<ExpandRun>(st.at[4], st.expand.size());
    b.expand_rows = st.expand_rows;
    b.items = arena.template view<WorkItem>(st.at[1], st.items.size());
    b.key_items = arena.template view<KeyWorkItem>(st.at[2], st.work.items.size());
    b.task_index = arena.template view<std::int64_t>(st.at[3], st.work.task_index.size());
    if (backward) b.host_tasks = std::move(st.tasks);
    hop.branches.push_back(std::move(b));
  }
  return hop;
}

} // namespace ringattn::Details

#endif
