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
//     largest piece of a branch's part of a block that is not its wire, the
//     forward expanding a piece at a time, Exchange::branch_piece_rows:
//     a sixteenth of the hop's wire; none for dense attention);
//   - the block kernel's per-team tiles, one team per thread;
//   - the schedule that the ring's plan (RingAttn_RingPlan.hpp) holds: the
//     tasks and work items of every hop the member receives (a task that a
//     piece boundary of an expansion cuts in two counted once: a few KiB
//     at most), built once per plan (the simulated ring over a MemberIO builds one member's
//     hops at a time: the largest member's).
// A process also holds a constant (Kokkos, MPI, the program) that this model
// leaves out and the driver reports beside it.

#include <core/detail/RingAttn_Saturating.hpp>
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
  /// Of `o`: the float running O beside 16-bit storage, which `forward`
  /// frees when it returns (the backward runs without it).
  std::int64_t running_o = 0;
  /// The floor (issue #14): the caller's Q, K, V, O (in the storage type)
  /// and LSE, the receive buffers of the largest hops made and the tiles.
  /// What the model holds beyond it: an expanded block, a send buffer, the
  /// schedule and a float running O for 16-bit storage.
  std::int64_t floor = 0;

  /// The sum of the buffers (saturating at INT64_MAX).
  std::int64_t total() const {
    std::int64_t t = 0;
    for (std::int64_t b : {q, k, v, o, lse, blocks, tiles, schedule}) t = Details::sat_add(t, b);
    return t;
  }
  /// What the member still holds once `forward` has returned (the MPI
  /// backward's company): the total less the running O.
  std::int64_t after_forward() const { return total() - running_o; }
};

/// Rows of the largest exchange member p receives and of the largest one it
/// sends, and the tasks and work items of all it receives (what its plan
/// holds). recv_rows and send_rows count wire rows of hops that cross (the
/// member's own rows are read in place); block_rows the largest block the
/// kernels read; branch_expand_rows the largest piece of one branch's part
/// (Exchange::branch_piece_rows), not the wire itself, of the block of a hop
/// that expands its wire (the MPI ring expands a piece at a time, forward
/// and backward).
struct ExchangeExtent {
  std::int64_t recv_rows = 0, send_rows = 0, block_rows = 0, branch_expand_rows = 0, tasks = 0,
               items = 0;
  /// Rows of the member's own block (its exchange with itself): read in
  /// place, but the simulated ring's backward packs it into its wire.
  std::int64_t own_rows = 0;
  /// The largest wire received at even and at odd steps: the MPI ring's two
  /// receive buffers, which alternate (step s uses buffer s % 2).
  std::int64_t recv_rows_at[2] = {0, 0};

  void add_received(int step, std::int64_t rows) {
    recv_rows = std::max(recv_rows, rows);
    recv_rows_at[step % 2] = std::max(recv_rows_at[step % 2], rows);
  }
  std::int64_t receive_buffer_rows() const { return recv_rows_at[0] + recv_rows_at[1]; }
  /// The simulated ring runs one member's hops at a time: its buffers
  /// are the largest of each member's.
  void merge_member(const ExchangeExtent &m) {
    block_rows = std::max(block_rows, m.block_rows);
    recv_rows = std::max(recv_rows, m.recv_rows);
    own_rows = std::max(own_rows, m.own_rows);
    branch_expand_rows = std::max(branch_expand_rows, m.branch_expand_rows);
    tasks = std::max(tasks, m.tasks);
    items = std::max(items, m.items);
  }
};

inline ExchangeExtent largest_exchange(const Pattern &pattern, const Partition &partition, int p,
                                       int q_tile) {
  ExchangeExtent e;
  for (int j = 0; j < partition.members; ++j) {
    const Details::Exchange in = Details::plan_exchange(pattern, partition, p, j, true);
    if (j != p)
      e.add_received((p - j + partition.members) % partition.members, in.rows);
    else
      e.own_rows = in.rows;
    e.block_rows = std::max(e.block_rows, in.block_rows);
    if (in.expands()) {
      for (int i = 0; i < pattern.num_branches; ++i)
        if (!in.tasks[std::size_t(i)].empty() && !in.branch_reads_wire(i))
          e.branch_expand_rows = std::max(e.branch_expand_rows, in.branch_piece_rows(i));
    }
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

/// What sizes a member's buffers besides its rows and its exchanges.
struct MemberShape {
  std::int64_t batch = 1, heads = 1, kv_heads = 1, head_dim = 1;
  std::int64_t scalar_bytes = 4; ///< the storage type's
  Tiling tiling;
  int threads = 1; ///< host threads or GPU teams in flight: one tile scratch each
  /// MPI sends K and V in place (no send buffer): host memory
  /// (Details::sends_in_place), judged for the default execution space.
  bool sends_in_place = Details::sends_in_place<Kokkos::DefaultExecutionSpace::memory_space>;

  static MemberShape of(const Pattern &pattern, std::int64_t batch, std::int64_t head_dim,
                        std::int64_t scalar_bytes, const Tiling &tiling, int threads) {
    MemberShape s;
    s.batch = batch;
    s.heads = pattern.heads;
    s.kv_heads = pattern.kv_heads;
    s.head_dim = head_dim;
    s.scalar_bytes = scalar_bytes;
    s.tiling = tiling;
    s.threads = threads;
    return s;
  }
};

/// The model of a member of n rows whose exchanges have extent e (mpi), or
/// of the simulated process whose largest member has n rows and whose
/// members' extents are merged into e (mpi false). The one formula of the
/// model: model_member_memory() takes e from the exact exchanges,
/// model/RingAttn_RingModel.hpp from counts. Saturates at INT64_MAX.
inline MemberMemoryModel member_memory(const MemberShape &shape, std::int64_t n,
                                       const ExchangeExtent &e, bool mpi) {
  using Details::sat_add;
  using Details::sat_mul;
  using Details::sat_prod;
  MemberMemoryModel m;
  const std::int64_t B = shape.batch, H = shape.heads, Hkv = shape.kv_heads;
  const std::int64_t D = shape.head_dim, s = shape.scalar_bytes;
  // LSE and the running O are in the accumulate type: float for 16-bit
  // storage, whose O then has a float copy beside the stored one (a chunk
  // of rows where nothing crosses to the member).
  const std::int64_t acc_bytes = s >= 8 ? 8 : 4;
  const std::int64_t running_rows = s >= acc_bytes ? 0
                                    : e.recv_rows == 0
                                        ? Details::running_o_chunk_rows(n, sat_mul(B, H))
                                        : n;
  m.q = sat_prod({B, n, H, D, s});
  m.running_o = sat_prod({B, running_rows, H, D, acc_bytes});
  m.o = sat_add(m.q, m.running_o);
  m.k = m.v = sat_prod({B, n, Hkv, D, s});
  m.lse = sat_prod({B, H, n, acc_bytes});
  m.block_rows = e.block_rows;
  // mpi: two receive wires, a send wire (none where MPI reads K and V in
  // place) and the largest expanded piece of a branch's part; the simulated ring
  // reads every source's K/V in place (none)
  const std::int64_t block_bytes = sat_prod({2, B, D, s});
  const std::int64_t receive = mpi ? sat_mul(block_bytes, e.receive_buffer_rows()) : 0;
  const std::int64_t send_rows = shape.sends_in_place ? 0 : e.send_rows;
  m.blocks =
      mpi ? sat_add(receive, sat_mul(block_bytes, sat_add(send_rows, e.branch_expand_rows))) : 0;
  const int d = int(std::min<std::int64_t>(D, INT32_MAX));
  m.tiles = sat_prod(
      {std::int64_t(shape.threads),
       std::int64_t(Details::BlockAttentionFunctor<Kokkos::DefaultHostExecutionSpace,
                                                   float>::scratch_elements(shape.tiling.q_tile,
                                                                            shape.tiling.k_tile,
                                                                            d)),
       acc_bytes});
  m.schedule = sat_add(sat_mul(e.tasks, std::int64_t(sizeof(Details::BlockTask))),
                       sat_mul(e.items, std::int64_t(sizeof(Details::WorkItem))));
  m.floor = sat_add(sat_add(sat_add(sat_prod({2, B, n, H, D, s}), sat_add(m.k, m.v)), m.lse),
                    sat_add(receive, m.tiles));
  return m;
}

/// Model of member p (mpi) or of the whole simulated process (every member
/// in turn: the largest member's buffers), for `threads` host threads or GPU
/// teams in flight, from the exact exchanges (O(N) per member: for tests
/// and small rings; model/RingAttn_RingModel.hpp counts in O(1) in N).
inline MemberMemoryModel model_member_memory(const Pattern &pattern, const Partition &partition,
                                             int p, std::int64_t batch, std::int64_t head_dim,
                                             std::int64_t scalar_bytes, bool mpi,
                                             const Tiling &tiling, int threads) {
  std::int64_t n = partition.local_size(p);
  ExchangeExtent e;
  if (mpi) {
    e = largest_exchange(pattern, partition, p, tiling.q_tile);
  } else {
    n = 0;
    for (int j = 0; j < partition.members; ++j) {
      n = std::max(n, partition.local_size(j));
      e.merge_member(largest_exchange(pattern, partition, j, tiling.q_tile));
    }
  }
  return member_memory(MemberShape::of(pattern, batch, head_dim, scalar_bytes, tiling, threads), n,
                       e, mpi);
}

} // namespace ringattn

#endif
