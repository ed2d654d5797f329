#ifndef RINGATTN_RINGPLAN_HPP
#define RINGATTN_RINGPLAN_HPP

// A ring pass's plan (docs/SPEC.md section 3), built once and reused: for
// every hop a member makes, what it receives and sends and the block-kernel
// schedule that consumes it, in the execution space's memory; the K/V
// message buffers, which grow to the largest hop on first use and are then
// reused; and, for the MPI ring, the private communicator, duplicated once
// per plan. RingAttention::make_plan builds one; forward and backward
// passes that take it then build, copy and allocate no schedule (and the
// MPI ring no buffer) inside their ring loop.
//
//   auto plan = attn.make_plan(comm, batch, head_dim);   // collective
//   for (...) { attn.forward(plan, q, k, v, o, lse); attn.backward(plan, ...); }
//
// Copies of a plan share it (schedule, buffers, communicator); one pass at
// a time may run on a plan. The backward's schedules (its dK/dV key work)
// are built on the first backward pass, before its ring loop.

#include <RingAttn_Config.hpp>
#include <api/RingAttn_Options.hpp>
#include <core/RingAttn_Types.hpp>
#include <pattern/RingAttn_Partition.hpp>
#include <pattern/RingAttn_Pattern.hpp>
#include <ring/detail/RingAttn_Exchange.hpp>
#include <ring/detail/RingAttn_HopSchedule.hpp>
#include <ring/detail/RingAttn_RingMember.hpp>
#ifdef RINGATTN_ENABLE_MPI
#include <mpi.h>
#endif

#include <cstdint>
#include <memory>
#include <vector>

namespace ringattn {

namespace Details {

/// Which ring a plan runs, which fixes the rows its forward tasks index.
enum class RingKind {
  in_memory, ///< simulated, whole-sequence views: K/V read in place, rows are positions
  member_io, ///< simulated over a MemberIO, one member's hops at a time: K/V in place, local rows
  mpi,       ///< one member per rank: its own K/V in place, received blocks by block row
};

/// One receiving member's hops, by step s (the source is rank - s).
template <class MemorySpace>
struct MemberSchedule {
  int rank = 0;
  std::vector<HopSchedule<MemorySpace>> forward;
  std::vector<HopSchedule<MemorySpace>> backward; ///< on the first backward pass
  /// MPI: what the member sends rank + s (wire rows and pack runs).
  std::vector<HopSchedule<MemorySpace>> send;
  /// The member's rows as its tasks index them (positions or local rows).
  std::vector<Range> rows;
  /// Whether every block from another member is empty (its own is then its only one).
  bool receives_only_own = false;
  /// 16-bit storage and receives_only_own: step 0's tasks cut to chunks of
  /// rows (RingMember::consume_in_chunks), so its float running O is one
  /// chunk; `chunk_rows` the rows of each.
  std::vector<HopSchedule<MemorySpace>> chunks;
  std::vector<Range> chunk_rows;
  /// MPI backward: the member's own block in two parts of about equal
  /// pairs, computed first and last in the pass (the first hides step 1's
  /// wire, the last the partials of step P - 1, which else nothing hides);
  /// their tasks read its K/V in place (read_keys_in_place), as the
  /// forward's step 0 does.
  std::vector<HopSchedule<MemorySpace>> own_parts;
};

/// What a plan holds; the ring runners (ring/detail) read and fill it.
template <class ExecSpace, class Scalar>
struct RingSchedule {
  using memory_space = typename ExecSpace::memory_space;
  using Acc = accumulate_t<Scalar>;

  Pattern pattern;
  Partition partition;
  RingKind kind = RingKind::in_memory;
  Tiling tiling;
  Acc scale = Acc(1);
  std::int64_t batch = 0, head_dim = 0;
  std::vector<MemberSchedule<memory_space>> members; ///< all R simulated, or this rank's
  bool has_backward = false;
  std::uint64_t key = 0; ///< what it shares with its RingAttention (plan_key)
  bool overlap = true;   ///< MPI: post step s + 1's messages before computing step s

  /// K/V wires and the expanded block (MPI ring), kept between passes.
  MessageBuffer<Scalar, memory_space> recv[2], send;
  BlockBuffer<Scalar, memory_space> expanded{"ringattn::expanded"};
  /// The backward's partial dK/dV: of the block, and the wires sent and received.
  BlockBuffer<Acc, memory_space> block_partial{"ringattn::dkv_block_partial"};
  MessageBuffer<Acc, memory_space> partial_send[2], partial_recv[2];
  /// 16-bit storage: the float running O of the forward (whole rows, and a
  /// chunk of rows for members whose own block is their only one), made by
  /// the first forward on the plan and reused by the next.
  BlockBuffer<Acc, memory_space> running_o{"ringattn::o_running"},
      running_o_chunk{"ringattn::o_chunk"};
#ifdef RINGATTN_ENABLE_MPI
  std::shared_ptr<MPI_Comm> comm; ///< the private duplicate (MPI ring)
#endif

  MemberSchedule<memory_space> &member(int rank) {
    return kind == RingKind::mpi ? members.front() : members[std::size_t(rank)];
  }

  /// The members whose hops the plan holds (all R simulated, or this rank).
  std::vector<int> ranks;
  bool forward_built = false;

  /// Builds every member's forward schedule, once (make_plan, and the
  /// first forward on a plan that a backward built): all of it or, if a
  /// throw comes first, none.
  void build_forward(const ExecSpace &exec) {
    if (forward_built) return;
    std::vector<MemberSchedule<memory_space>> built;
    for (const int p : ranks) built.push_back(make_member(exec, p));
    for (std::size_t i = 0; i < members.size() && i < built.size(); ++i) { // a backward's
      built[i].backward = std::move(members[i].backward);
      built[i].own_parts = std::move(members[i].own_parts);
    }
    members = std::move(built);
    forward_built = true;
  }

  /// Member p's forward hops. The simulated ring over a MemberIO builds one
  /// member's at a time (so its memory grows as N / R) and no plan holds them.
  MemberSchedule<memory_space> make_member(const ExecSpace &exec, int p) const {
    const int R = partition.members;
    MemberSchedule<memory_space> m;
    m.rank = p;
    for (int r = 0; r < partition.num_ranges(); ++r) {
      const Range range = partition.range(p, r);
      if (range.size() == 0) continue;
      m.rows.push_back(kind == RingKind::in_memory
                           ? range
                           : Range{partition.range_local_begin(p, r),
                                   partition.range_local_begin(p, r) + range.size()});
    }
    m.receives_only_own = true;
    for (int s = 0; s < R; ++s) {
      const int source = (p - s + R) % R;
      Exchange ex = plan_exchange(pattern, partition, p, source, true);
      if (s > 0 && !ex.empty()) m.receives_only_own = false;
      // K/V read in place: every hop of the simulated rings, the member's
      // own block in the MPI ring
      if (kind != RingKind::mpi || s == 0) read_keys_in_place(ex, kind == RingKind::in_memory);
      m.forward.push_back(make_hop_schedule<memory_space>(exec, ex, tiling, ScheduleUse::forward));
      if (kind == RingKind::mpi) m.send.push_back(send_hop(exec, p, s));
    }
    if (is_16bit_storage_v<Scalar> && m.receives_only_own) {
      // the float running O a chunk of rows at a time (chunks with no task
      // where the member sees no key: its O is then 0)
      std::int64_t n_max = 0;
      for (int j = 0; j < R; ++j) n_max = std::max(n_max, partition.local_size(j));
      const std::int64_t chunk = std::max<std::int64_t>(
          1, running_o_chunk_rows(kind == RingKind::mpi ? partition.local_size(p) : n_max,
                                  batch * pattern.heads));
      Exchange own = plan_exchange(pattern, partition, p, p, true);
      read_keys_in_place(own, kind == RingKind::in_memory);
      for (const Range &range : m.rows)
        for (std::int64_t r0 = range.begin; r0 < range.end; r0 += chunk) {
          const std::int64_t r1 = std::min(range.end, r0 + chunk);
          m.chunks.push_back(make_hop_schedule<memory_space>(exec, tasks_in_rows(own, r0, r1),
                                                             tiling, ScheduleUse::forward));
          m.chunk_rows.push_back(Range{r0, r1});
        }
      // the chunks hold its tasks: step 0 keeps its row counts alone
      HopSchedule<memory_space> &own_hop = m.forward[0];
      own_hop.branches.clear();
      own_hop.pack = {};
      own_hop.storage = {};
    }
    return m;
  }

  /// Builds the backward's schedules once (the first backward pass, before
  /// its ring loop): block rows, the dK/dV key work, for the simulated ring
  /// pack runs by position (it packs from whole-sequence K/V), for the MPI
  /// ring the own block in two parts (own_parts, in place of step 0, its K/V
  /// read in place and its dK/dV added in place) and the
  /// sends where no forward built them. All of it or, if a throw comes
  /// first, none.
  void build_backward(const ExecSpace &exec) {
    if (has_backward) return;
    const int R = partition.members;
    std::vector<MemberSchedule<memory_space>> built = members;
    if (built.empty()) // no forward on this plan: the members' rows alone
      for (const int p : ranks) {
        built.emplace_back();
        built.back().rank = p;
      }
    for (auto &m : built) {
      std::vector<HopSchedule<memory_space>> backward, own_parts, send;
      for (int s = 0; s < R; ++s) {
        const int source = (m.rank - s + R) % R;
        const Exchange ex = plan_exchange(pattern, partition, m.rank, source, true);
        if (kind != RingKind::mpi) {
          std::vector<PackRun> by_position = ex.pack;
          for (PackRun &run : by_position)
            run.src_row0 = partition.global_position(source, run.src_row0);
          backward.push_back(make_hop_schedule<memory_space>(exec, ex, tiling,
                                                             ScheduleUse::backward, &by_position));
          continue;
        }
        if (m.send.empty()) send.push_back(send_hop(exec, m.rank, s));
        if (s > 0) { // a branch's part of the block at a time, as the forward
          backward.push_back(
              make_hop_schedule<memory_space>(exec, ex, tiling, ScheduleUse::backward));
          continue;
        }
        backward.emplace_back(); // step 0 runs as own_parts
        const std::int64_t n = partition.local_size(m.rank);
        const std::int64_t split = balanced_row_split(ex, n, pattern.causal);
        // the own block read in place, as in the forward: nothing packed
        Exchange own = ex;
        read_keys_in_place(own, false);
        own.pack.clear();
        for (const Range rows : {Range{0, split}, Range{split, n}}) {
          Exchange part = own;
          part.tasks = tasks_in_rows(own, rows.begin, rows.end).tasks;
          own_parts.push_back(
              make_hop_schedule<memory_space>(exec, part, tiling, ScheduleUse::backward));
        }
      }
      m.backward = std::move(backward);
      m.own_parts = std::move(own_parts);
      if (!send.empty()) m.send = std::move(send);
    }
    members = std::move(built);
    has_backward = true;
  }

  /// The simulated ring over a BackwardMemberIO: member p's backward hop
  /// at step s, built when it runs (no plan holds them), with pack runs in
  /// the source's local rows (its K/V as the io loads them).
  HopSchedule<memory_space> backward_hop(const ExecSpace &exec, int p, int s) const {
    const int R = partition.members;
    return make_hop_schedule<memory_space>(
        exec, plan_exchange(pattern, partition, p, (p - s + R) % R, true), tiling,
        ScheduleUse::backward);
  }

  /// MPI: what member p sends p + s at step s (its wire rows and pack
  /// runs); nothing at step 0, whose block is read in place.
  HopSchedule<memory_space> send_hop(const ExecSpace &exec, int p, int s) const {
    if (s == 0) return {};
    const int R = partition.members;
    return make_hop_schedule<memory_space>(exec,
                                           plan_exchange(pattern, partition, (p + s) % R, p, false),
                                           tiling, ScheduleUse::forward);
  }

  /// Bytes of the schedules held (device lists and host task copies).
  std::int64_t schedule_bytes() const {
    std::int64_t b = 0;
    for (const auto &m : members)
      for (const auto *list : {&m.forward, &m.backward, &m.send, &m.chunks, &m.own_parts})
        for (const auto &hop : *list) b += hop.bytes();
    return b;
  }
};

} // namespace Details

template <class ExecSpace, class Scalar>
class RingAttention;

/// A ring pass's schedule and buffers, built once by
/// RingAttention::make_plan for a batch size and head dim (and, for the MPI
/// ring, a communicator) and passed to forward and backward. Passes on one
/// plan reuse its buffers (message wires, partials, the 16-bit float running
/// O), so they run one at a time: threads that call at once each use their
/// own plan. Copies share one plan.
template <class ExecSpace = Kokkos::DefaultExecutionSpace, class Scalar = float>
class RingPlan {
public:
  using Schedule = Details::RingSchedule<ExecSpace, Scalar>;

  RingPlan() = default;

  /// Members of the ring (the communicator's size for the MPI ring).
  int members() const { return schedule_->partition.members; }
  std::int64_t batch() const { return schedule_->batch; }
  std::int64_t head_dim() const { return schedule_->head_dim; }
  const Tiling &tiling() const { return schedule_->tiling; }
  bool for_mpi() const { return schedule_->kind == Details::RingKind::mpi; }
  bool valid() const { return bool(schedule_); }
  /// Bytes of the schedules held (the memory model's `schedule`).
  std::int64_t schedule_bytes() const { return schedule_->schedule_bytes(); }
#ifdef RINGATTN_ENABLE_MPI
  /// The plan's private duplicate of the communicator it was made for.
  MPI_Comm communicator() const { return schedule_->comm ? *schedule_->comm : MPI_COMM_NULL; }
#endif

  /// The runners' view of the plan (ring/detail).
  Schedule &schedule() const { return *schedule_; }

private:
  friend class RingAttention<ExecSpace, Scalar>;
  explicit RingPlan(std::shared_ptr<Schedule> s) : schedule_(std::move(s)) {}
  std::shared_ptr<Schedule> schedule_;
};

} // namespace ringattn

#endif
