#ifndef RINGATTN_MEMORYMODEL_HPP
#define RINGATTN_MEMORYMODEL_HPP

// The memory a ring member allocates (docs/SPEC.md section 3: it grows as N/P), buffer by
// buffer, as the simulated and MPI rings of this folder allocate them:
//   - Q, O [B, n, H, D], K, V [B, n, Hkv, D], LSE [B, H, n] of the member
//     (the simulated ring sizes them for its largest member); LSE in the
//     accumulate type, and for 16-bit storage a float running O beside O
//     (a chunk of rows, running_o_chunk_rows, where no block crosses to
//     the member: its own block is then its only one);
//   - K/V blocks [2, B, rows, D]: none in the simulated ring, whose kernels
//     read the source's K and V in place; in the MPI ring two receive wires
//     (unique (kv head, position) rows; they alternate between odd and even
//     steps, each sized to the largest wire of its steps; the member's own
//     K/V is read in place, so a member whose hops are all skipped holds no
//     block), a send wire only in device memory (host memory sends from K
//     and V in place: sends_in_place), and one expanded block (rows: the
//     largest block that is not its wire; none for dense attention);
//   - the block kernel's per-team tiles, one team per thread;
//   - the schedule that the ring's plan (RingAttn_RingPlan.hpp) holds: the
//     tasks and work items of every hop the member receives, built once
//     per plan (the simulated ring over a MemberIO builds one member's
//     hops at a time: the largest member's).
// A process also holds a constant (Kokkos, MPI, the program) that this model
// leaves out and the driver reports beside it.

#include <kernels/detail/RingAttn_BlockKernel.hpp>
#include <ring/detail/RingAttn_Exchange.hpp>
#include <ring/detail/RingAttn_RingMember.hpp>

#include <algorithm>
#include <cstdint>

namespace ringattn {

struct MemberMemoryModel {
  std::int64_t q = 0, k = 0, v = 0, o = 0, lse = 0;
  std::int64_t blocks = 0;
  std::int64_t tiles = 0;
  std::int64_t schedule = 0;
  std::int64_t block_rows = 0; ///< rows of the largest K/V block the kernels read

  std::int64_t total() const { return q + k + v + o + lse + blocks + tiles + schedule; }
};

/// Rows of the largest exchange member p receives and of the largest one it
/// sends, and the tasks and work items of all it receives (what its plan
/// holds). recv_rows and send_rows count wire rows of hops that cross (the
/// member's own rows are read in place); block_rows the largest block the
/// kernels read; expand_rows the largest block of a hop that expands its
/// wire.
struct ExchangeExtent {
  std::int64_t recv_rows = 0, send_rows = 0, block_rows = 0, expand_rows = 0, tasks = 0, items = 0;
  /// The largest wire received at even and at odd steps: the MPI ring's two
  /// receive buffers, which alternate (step s uses buffer s % 2).
  std::int64_t recv_rows_at[2] = {0, 0};

  void add_received(int step, std::int64_t rows) {
    recv_rows = std::max(recv_rows, rows);
    recv_rows_at[step % 2] = std::max(recv_rows_at[step % 2], rows);
  }
  std::int64_t receive_buffer_rows() const { return recv_rows_at[0] + recv_rows_at[1]; }
};

inline ExchangeExtent largest_exchange(const Pattern &pattern, const Partition &partition, int p,
                                       int q_tile) {
  ExchangeExtent e;
  for (int j = 0; j < partition.members; ++j) {
    const Details::Exchange in = Details::plan_exchange(pattern, partition, p, j, true);
    if (j != p) e.add_received((p - j + partition.members) % partition.members, in.rows);
    e.block_rows = std::max(e.block_rows, in.block_rows);
    if (in.expands()) e.expand_rows = std::max(e.expand_rows, in.block_rows);
    for (const auto &branch : in.tasks) {
      e.tasks += std::int64_t(branch.size());
      e.items += std::int64_t(Details::make_work_items(branch, q_tile).size());
    }
    if (j != p)
      e.send_rows =
          std::max(e.send_rows, Details::plan_exchange(pattern, partition, j, p, false).rows);
  }
  return e;
}

/// Model of member p (mpi) or of the whole simulated process (every member
/// in turn: the largest member's buffers), for `threads` host threads or GPU
/// teams in flight.
inline MemberMemoryModel model_member_memory(const Pattern &pattern, const Partition &partition,
                                             int p, std::int64_t batch, std::int64_t head_dim,
                                             std::int64_t scalar_bytes, bool mpi,
                                             const Tiling &tiling, int threads) {
  MemberMemoryModel m;
  std::int64_t n = partition.local_size(p);
  ExchangeExtent e;
  if (mpi) {
    e = largest_exchange(pattern, partition, p, tiling.q_tile);
  } else {
    n = 0;
    for (int j = 0; j < partition.members; ++j) {
      n = std::max(n, partition.local_size(j));
      const ExchangeExtent ej = largest_exchange(pattern, partition, j, tiling.q_tile);
      e.block_rows = std::max(e.block_rows, ej.block_rows);
      e.recv_rows = std::max(e.recv_rows, ej.recv_rows);
      // one member's hops at a time (the simulated ring over a MemberIO)
      e.tasks = std::max(e.tasks, ej.tasks);
      e.items = std::max(e.items, ej.items);
    }
  }
  const std::int64_t H = pattern.heads, Hkv = pattern.kv_heads, D = head_dim;
  // LSE and the running O are in the accumulate type: float for 16-bit
  // storage, whose O then has a float copy beside the stored one.
  const std::int64_t acc_bytes = scalar_bytes >= 8 ? 8 : 4;
  m.q = batch * n * H * D * scalar_bytes;
  const std::int64_t running_rows = scalar_bytes >= acc_bytes ? 0
                                    : e.recv_rows == 0        ? Details::running_o_chunk_rows(n)
                                                              : n;
  m.o = batch * n * H * D * scalar_bytes + batch * running_rows * H * D * acc_bytes;
  m.k = m.v = batch * n * Hkv * D * scalar_bytes;
  m.lse = batch * H * n * acc_bytes;
  const std::int64_t block_bytes = 2 * batch * D * scalar_bytes;
  m.block_rows = e.block_rows;
  // the send wire: none where MPI reads K and V in place (judged for the
  // default execution space's memory, as the driver runs)
  const std::int64_t send_rows =
      Details::sends_in_place<Kokkos::DefaultExecutionSpace::memory_space> ? 0 : e.send_rows;
  m.blocks = mpi ? block_bytes * (e.receive_buffer_rows() + send_rows + e.expand_rows) : 0;
  m.tiles =
      std::int64_t(threads) *
      std::int64_t(Details::BlockAttentionFunctor<Kokkos::DefaultHostExecutionSpace,
                                                  float>::scratch_elements(tiling.q_tile,
                                                                           tiling.k_tile, int(D))) *
      acc_bytes;
  m.schedule = e.tasks * std::int64_t(sizeof(Details::BlockTask)) +
               e.items * std::int64_t(sizeof(Details::WorkItem));
  return m;
}

} // namespace ringattn

#endif
