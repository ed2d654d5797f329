#ifndef RINGATTN_BACKWARDRING_HPP
#define RINGATTN_BACKWARDRING_HPP

// The backward pass through the ring (docs/SPEC.md section 7). The K/V rows
// travel exactly as in the forward: the same Exchange plans, the same
// skipped hops, and on the wire each needed (kv head, position) row once
// (RingAttn_Exchange.hpp), which the receiver expands into the block its
// kernels read. At step s member p holds the block of j = p - s: it adds
// the block's share to its own dQ and computes the block's partial dK/dV
// [2, B, block rows, D] (the accumulate type). Where the wire expanded, the
// partial is summed back onto the wire rows (contract_block, the adjoint of
// the expansion; both rings expand and sum a piece of one branch's part at
// a time, as the forward expands), so the partial goes back to j on the wire
// too, and j adds it into its dK/dV through the pack runs that built the
// wire. The MPI ring reads its own block in place and adds its dK/dV in
// place (consume_own). Partials are added in step order and every sum has
// a fixed order, so a pass is bitwise reproducible for a given P,
// partition and thread count.
// Traffic: the forward's wire rows of K/V plus the same rows of dK/dV.

#include <RingAttn_Config.hpp>
#include <api/RingAttn_Options.hpp>
#include <core/RingAttn_Types.hpp>
#include <kernels/detail/RingAttn_BackwardKernel.hpp>
#include <kernels/detail/RingAttn_Pack.hpp>
#include <pattern/RingAttn_Partition.hpp>
#include <pattern/RingAttn_Pattern.hpp>
#include <ring/RingAttn_MemberIO.hpp>
#include <ring/RingAttn_RingPlan.hpp>
#include <ring/RingAttn_RingStats.hpp>
#include <ring/detail/RingAttn_Exchange.hpp>
#include <ring/detail/RingAttn_RingMember.hpp>
#ifdef RINGATTN_ENABLE_MPI
#include <ring/detail/RingAttn_MpiRing.hpp>
#endif

#include <Kokkos_Timer.hpp>

#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace ringattn::Details {

/// dst = src converted to dst's value type, for [B, N, X, D] views of one
/// shape (by index: either may be padded).
template <class ExecSpace, class Dst, class Src>
void convert_tensor(const ExecSpace &exec, const Dst &dst, const Src &src) {
  using Value = typename Dst::non_const_value_type;
  const std::int64_t N = std::int64_t(src.extent(1)), X = std::int64_t(src.extent(2)),
                     D = std::int64_t(src.extent(3));
  Kokkos::parallel_for(
      "ringattn::convert_tensor",
      Kokkos::RangePolicy<ExecSpace, Kokkos::IndexType<std::int64_t>>(
          exec, 0, std::int64_t(src.extent(0)) * N * X),
      KOKKOS_LAMBDA(const std::int64_t idx) {
        const std::int64_t b = idx / (N * X), t = (idx / X) % N, x = idx % X;
        for (std::int64_t d = 0; d < D; ++d) dst(b, t, x, d) = Value(src(b, t, x, d));
      });
}

/// Q, K, V, O and dO as the caller holds them: strided, the head dim
/// contiguous (RingAttention checks), e.g. subviews of a packed projection.
template <class ExecSpace, class Scalar>
using InView =
    Kokkos::View<const Scalar ****, Kokkos::LayoutStride, typename ExecSpace::memory_space>;

/// One member's side of the backward: consume a K/V block (dQ and the
/// block's partial dK/dV) and add partials that come back.
template <class ExecSpace, class Scalar>
class BackwardMember {
public:
  using memory_space = typename ExecSpace::memory_space;
  using Acc = accumulate_t<Scalar>;
  using ConstTensor4 = Kokkos::View<const Scalar ****, Kokkos::LayoutRight, memory_space>;
  using InTensor4 = InView<ExecSpace, Scalar>;
  using Rows = KeyValueRows<memory_space, Scalar>;
  using Grads = KeyValueGrads<memory_space, Acc>;

  BackwardMember(const Pattern &pattern, const Partition &partition, int rank, Acc scale,
                 const Tiling &tiling)
      : pattern_(pattern), partition_(partition), rank_(rank), scale_(scale), tiling_(tiling) {}

  /// Packs the wire (each needed (kv head, row) once) from K/V through `runs`.
  static void pack(const ExecSpace &exec, const InTensor4 &k, const InTensor4 &v,
                   const Kokkos::View<const PackRun *, memory_space> &runs,
                   const Tensor4<Scalar, memory_space> &wire) {
    pack_block<ExecSpace, Scalar>(exec, k, v, runs, wire);
  }

  /// `in.kv` is the wire of `hop` (a backward schedule): dq += its share;
  /// `wire_partial` [2, B, hop.rows, D] = the partial dK/dV of the wire
  /// rows. Per branch (or piece), one fused launch (host path) or one dQ
  /// and one dK/dV launch. Where the wire expands (HopSchedule::by_branch)
  /// a branch that does not read the wire itself goes a piece of its part
  /// at a time: the piece expanded into `expanded`, its partial computed
  /// in `block_partial` and summed onto the wire rows before the next, so
  /// the buffers hold the largest piece (Exchange::branch_piece_rows), as
  /// in the forward.
  void consume(const ExecSpace &exec, const BackwardViews<ExecSpace, Scalar> &in,
               const HopSchedule<memory_space> &hop, const Tensor4<Acc, memory_space> &dq,
               const Tensor4<Acc, memory_space> &wire_partial,
               BlockBuffer<Acc, memory_space> &block_partial,
               const std::function<void()> &between = {},
               BlockBuffer<Scalar, memory_space> *expanded = nullptr) const {
    const std::int64_t B = std::int64_t(wire_partial.extent(1)),
                       D = std::int64_t(wire_partial.extent(3));
    // The kernels add onto their partial, so the branches that read the
    // wire itself add straight onto the wire's partial (first),
    // and then each other branch's partial, a piece at a time, is summed onto it (contract_block,
    // accumulate).
    Kokkos::deep_copy(exec, wire_partial, Acc(0));
    for (const BranchSchedule<memory_space> &branch : hop.branches) {
      if (branch.host_tasks.empty() || branch.expands()) continue;
      consume_branch(exec, in, branch, dq, Grads::of_block(wire_partial), between);
    }
    for (const BranchSchedule<memory_space> &branch : hop.branches) {
      if (branch.host_tasks.empty() || !branch.expands()) continue;
      if (expanded == nullptr)
        throw std::logic_error("ringattn: a hop whose wire expands needs a buffer to expand into");
      const Tensor4<Scalar, memory_space> block = expanded->view(B, branch.expand_rows, D);
      expand_block<ExecSpace, Scalar>(exec, in.kv.block(), branch.expand, branch.expand_rows,
                                      block);
      const BackwardViews<ExecSpace, Scalar> part{in.q, in.dout, in.lse, in.delta,
                                                  Rows::of_block(block)};
      const Tensor4<Acc, memory_space> partial = block_partial.view(B, branch.expand_rows, D);
      Kokkos::deep_copy(exec, partial, Acc(0));
      consume_branch(exec, part, branch, dq, Grads::of_block(partial), between);
      contract_block<ExecSpace, Acc>(exec, partial, branch.expand, wire_partial, true);
    }
  }

  /// The member's own block, its K and V [B, n, Hkv, D] read in place (a
  /// schedule whose tasks read them so: read_keys_in_place): dq += its
  /// share and the member's own dk, dv += its dK/dV, in place. Nothing is
  /// packed, and no partial goes through a buffer.
  void consume_own(const ExecSpace &exec, const InTensor4 &q, const InTensor4 &dout,
                   const Kokkos::View<const Acc ***, Kokkos::LayoutRight, memory_space> &lse,
                   const Kokkos::View<const Acc ***, Kokkos::LayoutRight, memory_space> &delta,
                   const InTensor4 &k, const InTensor4 &v, const HopSchedule<memory_space> &hop,
                   const Tensor4<Acc, memory_space> &dq, const Tensor4<Acc, memory_space> &dk,
                   const Tensor4<Acc, memory_space> &dv,
                   const std::function<void()> &between = {}) const {
    const BackwardViews<ExecSpace, Scalar> in{q, dout, lse, delta, Rows::of_member(k, v)};
    for (const BranchSchedule<memory_space> &branch : hop.branches)
      consume_branch(exec, in, branch, dq, Grads::of_member(dk, dv), between);
  }

  /// Adds a wire partial dK/dV into dk, dv through `runs`: the pack runs
  /// that built the wire (of the sender's hop), in local rows, or by
  /// position for whole-sequence dk, dv.
  static void accumulate(const ExecSpace &exec, const Tensor4<Acc, memory_space> &wire_partial,
                         const Kokkos::View<const PackRun *, memory_space> &runs,
                         const Tensor4<Acc, memory_space> &dk,
                         const Tensor4<Acc, memory_space> &dv) {
    unpack_add_block<ExecSpace, Acc>(exec, wire_partial, runs, dk, dv);
  }

private:
  /// One branch of a hop: dq += its share, `grads` += its dK/dV (the
  /// fused sweep on the host path, else a dQ and a dK/dV launch).
  void consume_branch(const ExecSpace &exec, const BackwardViews<ExecSpace, Scalar> &in,
                      const BranchSchedule<memory_space> &branch,
                      const Tensor4<Acc, memory_space> &dq, const Grads &grads,
                      const std::function<void()> &between) const {
    if (branch.host_tasks.empty()) return;
    if (in.kv.in_place != grads.in_place) // the kernels step both by in.kv's rows
      throw std::logic_error("ringattn: keys read in place need their dK/dV in place");
    // the host path's fused sweep (16-bit storage widened a tile at a time)
    if (backward_fused<ExecSpace, Scalar>(exec, in, branch.host_tasks, branch.tasks, dq, grads,
                                          scale_, pattern_.causal, tiling_, between))
      return;
    backward_dq<ExecSpace, Scalar>(exec, in, branch.tasks, branch.items, dq, scale_,
                                   pattern_.causal, tiling_);
    backward_dkv<ExecSpace, Scalar>(exec, in, branch.tasks, branch.key_items, branch.task_index,
                                    grads, scale_, pattern_.causal, tiling_);
  }

  Pattern pattern_;
  Partition partition_;
  int rank_;
  Acc scale_;
  Tiling tiling_;
};

/// Copies member p's rows between whole-sequence [B, N, X, D] (or LSE
/// [B, H, N]) and member-local views, converting the value type.
template <class ExecSpace, class Dst, class Src>
void copy_member_rows(const ExecSpace &exec, const Partition &partition, int p, const Dst &dst,
                      const Src &src, bool to_global) {
  for (int r = 0; r < partition.num_ranges(); ++r) {
    const Range g = partition.range(p, r);
    const std::int64_t l = partition.range_local_begin(p, r);
    const std::int64_t rows = g.size();
    if (rows == 0) continue;
    const std::int64_t dst0 = to_global ? g.begin : l, src0 = to_global ? l : g.begin;
    using Value = typename Dst::non_const_value_type;
    if constexpr (Dst::rank == 3) {
      const std::int64_t B = std::int64_t(src.extent(0)), H = std::int64_t(src.extent(1));
      Kokkos::parallel_for(
          "ringattn::copy_member_rows",
          Kokkos::RangePolicy<ExecSpace, Kokkos::IndexType<std::int64_t>>(exec, 0, B * H * rows),
          KOKKOS_LAMBDA(const std::int64_t idx) {
            const std::int64_t b = idx / (H * rows), h = (idx / rows) % H, t = idx % rows;
            dst.access(b, h, dst0 + t) = Value(src.access(b, h, src0 + t));
          });
    } else {
      // one (b, t, x) row of D values per index: the index arithmetic once
      // per row, the copy over contiguous values
      const std::int64_t B = std::int64_t(src.extent(0)), X = std::int64_t(src.extent(2)),
                         D = std::int64_t(src.extent(3));
      Kokkos::parallel_for(
          "ringattn::copy_member_rows",
          Kokkos::RangePolicy<ExecSpace, Kokkos::IndexType<std::int64_t>>(exec, 0, B * rows * X),
          KOKKOS_LAMBDA(const std::int64_t idx) {
            const std::int64_t b = idx / (rows * X), t = (idx / X) % rows, x = idx % X;
            for (std::int64_t d = 0; d < D; ++d)
              dst.access(b, dst0 + t, x, d) = Value(src.access(b, src0 + t, x, d));
          });
    }
  }
}

/// Whether member p's rows are one run of the sequence in their global
/// order (every member of a contiguous ring; a ring of one), so that its
/// Q, O and dO can be read in place as subviews; `run` is that run.
inline bool member_rows_in_order(const Partition &partition, int p, Range &run) {
  run = Range{};
  bool first = true;
  for (int r = 0; r < partition.num_ranges(); ++r) {
    const Range g = partition.range(p, r);
    if (g.size() == 0) continue;
    if (first ? partition.range_local_begin(p, r) != 0
              : g.begin != run.end || partition.range_local_begin(p, r) != run.size())
      return false;
    if (first) run.begin = g.begin;
    run.end = g.end;
    first = false;
  }
  return true;
}

/// Simulated ring backward over whole-sequence views (plan of kind
/// in_memory): R members one after another, on the MPI ring's schedule and
/// wire (each hop packs the wire from the source's K/V, expands it and sums
/// the partial back onto it, as the MPI ring does). dK/dV accumulate by
/// position in the caller's dk, dv (or, for 16-bit storage, one float copy
/// of them), member j's rows taking the partials of members 0, 1, ..., R-1
/// in that order. Beyond the caller's tensors the pass holds one member's
/// LSE, Delta and dQ at a time (and its Q, O and dO, which are read in
/// place where its rows are one run of the sequence: member_rows_in_order),
/// one hop's wire and the largest expanded piece of a branch's part, and
/// their partials: memory grows as N / R.
template <class ExecSpace, class Scalar>
RingStats
run_simulated_backward(const ExecSpace &exec, RingSchedule<ExecSpace, Scalar> &plan,
                       const InView<ExecSpace, Scalar> &q, const InView<ExecSpace, Scalar> &k,
                       const InView<ExecSpace, Scalar> &v, const InView<ExecSpace, Scalar> &o,
                       const Kokkos::View<const accumulate_t<Scalar> ***, Kokkos::LayoutRight,
                                          typename ExecSpace::memory_space> &lse,
                       const InView<ExecSpace, Scalar> &dout,
                       const Tensor4<Scalar, typename ExecSpace::memory_space> &dq,
                       const Tensor4<Scalar, typename ExecSpace::memory_space> &dk,
                       const Tensor4<Scalar, typename ExecSpace::memory_space> &dv,
                       const ProgressCallback &progress = {}) {
  using Mem = typename ExecSpace::memory_space;
  using Acc = accumulate_t<Scalar>;
  using T4 = Tensor4<Scalar, Mem>;
  using A4 = Tensor4<Acc, Mem>;
  plan.build_backward(exec);
  const Partition &partition = plan.partition;
  const int R = partition.members;
  const std::int64_t B = plan.batch, D = plan.head_dim;
  const int H = plan.pattern.heads;
  RingStats stats;
  stats.resize(R);

  // dK/dV by position: the outputs themselves when they hold the accumulate type.
  A4 dk_acc, dv_acc;
  if constexpr (std::is_same_v<Acc, Scalar>) {
    dk_acc = dk;
    dv_acc = dv;
  } else {
    dk_acc = A4("ringattn::dk_acc", dk.extent(0), dk.extent(1), dk.extent(2), dk.extent(3));
    dv_acc = A4("ringattn::dv_acc", dv.extent(0), dv.extent(1), dv.extent(2), dv.extent(3));
  }
  Kokkos::deep_copy(exec, dk_acc, Acc(0));
  Kokkos::deep_copy(exec, dv_acc, Acc(0));
  std::int64_t n_max = 0, copied_rows = 0;
  for (int j = 0; j < R; ++j) {
    n_max = std::max(n_max, partition.local_size(j));
    Range run;
    if (!member_rows_in_order(partition, j, run))
      copied_rows = std::max(copied_rows, partition.local_size(j));
  }
  Kokkos::View<Scalar *, Mem> q_buf("ringattn::q", B * copied_rows * H * D);
  Kokkos::View<Scalar *, Mem> o_buf("ringattn::o", B * copied_rows * H * D);
  Kokkos::View<Scalar *, Mem> do_buf("ringattn::do", B * copied_rows * H * D);
  Kokkos::View<Acc *, Mem> lse_buf("ringattn::lse", B * H * n_max);
  Kokkos::View<Acc *, Mem> delta_buf("ringattn::delta", B * H * n_max);
  Kokkos::View<Acc *, Mem> dq_buf("ringattn::dq_acc", B * n_max * H * D);
  // the hop's wire and its partial (kept in the plan between passes)
  BlockBuffer<Scalar, Mem> &wire_buf = plan.send.device;
  BlockBuffer<Acc, Mem> &partial_buf = plan.partial_send[0].device;

  for (int p = 0; p < R; ++p) {
    const MemberSchedule<Mem> &me = plan.member(p);
    const std::int64_t n = partition.local_size(p);
    InView<ExecSpace, Scalar> ql, ol, dol;
    Range run;
    if (member_rows_in_order(partition, p, run)) {
      const auto rows = Kokkos::make_pair(run.begin, run.end);
      ql = Kokkos::subview(q, Kokkos::ALL, rows, Kokkos::ALL, Kokkos::ALL);
      ol = Kokkos::subview(o, Kokkos::ALL, rows, Kokkos::ALL, Kokkos::ALL);
      dol = Kokkos::subview(dout, Kokkos::ALL, rows, Kokkos::ALL, Kokkos::ALL);
    } else {
      const auto qc = wrap_view<T4>(q_buf.data(), B, n, H, D);
      const auto oc = wrap_view<T4>(o_buf.data(), B, n, H, D);
      const auto doc = wrap_view<T4>(do_buf.data(), B, n, H, D);
      copy_member_rows(exec, partition, p, qc, q, false);
      copy_member_rows(exec, partition, p, oc, o, false);
      copy_member_rows(exec, partition, p, doc, dout, false);
      ql = qc;
      ol = oc;
      dol = doc;
    }
    const auto lsel = wrap_view<Tensor3<Acc, Mem>>(lse_buf.data(), B, H, n);
    const auto delta = wrap_view<Tensor3<Acc, Mem>>(delta_buf.data(), B, H, n);
    const auto dql = wrap_view<A4>(dq_buf.data(), B, n, H, D);
    copy_member_rows(exec, partition, p, lsel, lse, false);
    Kokkos::deep_copy(exec, dql, Acc(0));
    backward_delta<ExecSpace, Scalar>(exec, ol, dol, delta);
    BackwardMember<ExecSpace, Scalar> member(plan.pattern, partition, p, plan.scale, plan.tiling);

    for (int step = 0; step < R; ++step) {
      const int source = (p - step + R) % R;
      const HopSchedule<Mem> &hop = me.backward[std::size_t(step)];
      if (hop.empty()) {
        if (step > 0) ++stats.hops_skipped;
      } else {
        const T4 wire = wire_buf.view(B, hop.rows, D);
        const A4 wire_partial = partial_buf.view(B, hop.rows, D);
        // the source's wire, packed from its K/V rows (pack runs by position)
        member.pack(exec, k, v, hop.pack, wire);
        if (step > 0) { // what the MPI ring sends: the wire, and its partial back
          ++stats.hops_made;
          stats.bytes_sent[source] += std::int64_t(wire.span() * sizeof(Scalar));
          stats.bytes_sent[p] += std::int64_t(wire_partial.span() * sizeof(Acc));
        }
        exec.fence();
        Kokkos::Timer timer;
        BackwardViews<ExecSpace, Scalar> in{ql, dol, lsel, delta,
                                            KeyValueRows<Mem, Scalar>::of_block(wire)};
        member.consume(exec, in, hop, dql, wire_partial, plan.block_partial, {}, &plan.expanded);
        // the source adds the partial through the pack runs of its wire
        member.accumulate(exec, wire_partial, hop.pack, dk_acc, dv_acc);
        exec.fence();
        stats.compute_seconds[p] += timer.seconds();
      }
      if (progress) progress(RingProgress{p, R, step + 1, R});
    }
    copy_member_rows(exec, partition, p, dq, dql, true);
  }
  if constexpr (!std::is_same_v<Acc, Scalar>) {
    convert_tensor(exec, dk, dk_acc); // rounds to the storage type
    convert_tensor(exec, dv, dv_acc);
  }
  exec.fence();
  return stats;
}

/// Simulated ring backward over rows that `io` provides and receives (plan
/// of kind member_io, which holds no member), so that the process holds
/// one member's queries, one member's K/V and one hop's wire at a time:
/// memory grows as N / R. Two passes over the ring: dQ, member p by member
/// p over its sources in step order; then dK/dV, member j by member j over
/// the members p that read it, in the order 0, 1, ..., R-1. Every block is
/// thus computed twice (the price of bounded memory: the fused sweep gives
/// dQ and the partial together, and one of the two would otherwise have to
/// be held for the whole sequence). The sums run in the order of
/// run_simulated_backward, so the two give the same bits.
template <class ExecSpace, class Scalar>
RingStats run_simulated_backward_io(const ExecSpace &exec, RingSchedule<ExecSpace, Scalar> &plan,
                                    BackwardMemberIO<Scalar, typename ExecSpace::memory_space> &io,
                                    const ProgressCallback &progress = {}) {
  using Mem = typename ExecSpace::memory_space;
  using Acc = accumulate_t<Scalar>;
  using T4 = Tensor4<Scalar, Mem>;
  using A4 = Tensor4<Acc, Mem>;
  using A3 = Tensor3<Acc, Mem>;
  constexpr bool widened = !std::is_same_v<Acc, Scalar>; // 16-bit storage
  const Partition &partition = plan.partition;
  const int R = partition.members;
  const std::int64_t B = plan.batch, D = plan.head_dim;
  const int H = plan.pattern.heads, Hkv = plan.pattern.kv_heads;
  RingStats stats;
  stats.resize(R);

  std::int64_t n_max = 0;
  for (int j = 0; j < R; ++j) n_max = std::max(n_max, partition.local_size(j));
  auto buffer = [](const char *label, std::int64_t size) {
    return Kokkos::View<Scalar *, Mem>(
        Kokkos::view_alloc(std::string(label), Kokkos::WithoutInitializing), std::size_t(size));
  };
  auto acc_buffer = [](const char *label, std::int64_t size) {
    return Kokkos::View<Acc *, Mem>(
        Kokkos::view_alloc(std::string(label), Kokkos::WithoutInitializing), std::size_t(size));
  };
  // one member's queries (Q, O, dO, LSE, Delta, dQ) and one member's K/V
  // with its dK/dV; for 16-bit storage a buffer to round gradients into
  const auto q_buf = buffer("ringattn::q", B * n_max * H * D);
  const auto o_buf = buffer("ringattn::o", B * n_max * H * D);
  const auto do_buf = buffer("ringattn::do", B * n_max * H * D);
  const auto lse_buf = acc_buffer("ringattn::lse", B * H * n_max);
  const auto delta_buf = acc_buffer("ringattn::delta", B * H * n_max);
  const auto dq_buf = acc_buffer("ringattn::dq_acc", B * n_max * H * D);
  const auto k_buf = buffer("ringattn::k", B * n_max * Hkv * D);
  const auto v_buf = buffer("ringattn::v", B * n_max * Hkv * D);
  const auto dk_buf = acc_buffer("ringattn::dk_acc", B * n_max * Hkv * D);
  const auto dv_buf = acc_buffer("ringattn::dv_acc", B * n_max * Hkv * D);
  const auto store_buf =
      buffer("ringattn::gradient_storage", widened ? B * n_max * std::max(H, 2 * Hkv) * D : 0);
  BlockBuffer<Scalar, Mem> &wire_buf = plan.send.device;
  BlockBuffer<Acc, Mem> &partial_buf = plan.partial_send[0].device;

  struct Queries {
    T4 q, o, dout;
    A3 lse, delta;
  };
  auto load_queries = [&](int p) {
    const std::int64_t n = partition.local_size(p);
    Queries m{wrap_view<T4>(q_buf.data(), B, n, H, D), wrap_view<T4>(o_buf.data(), B, n, H, D),
              wrap_view<T4>(do_buf.data(), B, n, H, D), wrap_view<A3>(lse_buf.data(), B, H, n),
              wrap_view<A3>(delta_buf.data(), B, H, n)};
    io.load_queries(p, m.q, m.o, m.dout, m.lse);
    backward_delta<ExecSpace, Scalar>(exec, m.o, m.dout, m.delta);
    return m;
  };
  auto kv_of = [&](int j) {
    const std::int64_t n = partition.local_size(j);
    return std::make_pair(wrap_view<T4>(k_buf.data(), B, n, Hkv, D),
                          wrap_view<T4>(v_buf.data(), B, n, Hkv, D));
  };
  // a gradient in the storage type: the accumulator itself, or rounded
  // into store_buf at `offset` (dK and dV side by side)
  auto stored = [&](const A4 &g, std::size_t offset = 0) {
    if constexpr (widened) {
      const T4 out = wrap_view<T4>(store_buf.data() + offset, g.extent(0), g.extent(1), g.extent(2),
                                   g.extent(3));
      convert_tensor(exec, out, g);
      exec.fence();
      return out;
    } else {
      exec.fence();
      return g;
    }
  };
  // member p's block of hop (source's K/V in k, v): dq += its share, the
  // wire partial returned
  auto consume = [&](int p, const Queries &m, const T4 &k, const T4 &v, const HopSchedule<Mem> &hop,
                     const A4 &dq) {
    BackwardMember<ExecSpace, Scalar> member(plan.pattern, partition, p, plan.scale, plan.tiling);
    const T4 wire = wire_buf.view(B, hop.rows, D);
    const A4 wire_partial = partial_buf.view(B, hop.rows, D);
    member.pack(exec, k, v, hop.pack, wire);
    exec.fence();
    Kokkos::Timer timer;
    BackwardViews<ExecSpace, Scalar> in{m.q, m.dout, m.lse, m.delta,
                                        KeyValueRows<Mem, Scalar>::of_block(wire)};
    member.consume(exec, in, hop, dq, wire_partial, plan.block_partial, {}, &plan.expanded);
    exec.fence();
    stats.compute_seconds[p] += timer.seconds();
    return wire_partial;
  };

  // dQ: member p over its sources, in step order
  for (int p = 0; p < R; ++p) {
    const Queries m = load_queries(p);
    const A4 dq = wrap_view<A4>(dq_buf.data(), B, partition.local_size(p), H, D);
    Kokkos::deep_copy(exec, dq, Acc(0));
    for (int s = 0; s < R; ++s) {
      const int source = (p - s + R) % R;
      const HopSchedule<Mem> hop = plan.backward_hop(exec, p, s);
      if (hop.empty()) {
        if (s > 0) ++stats.hops_skipped;
      } else {
        const auto [k, v] = kv_of(source);
        io.load_kv(source, k, v);
        if (s > 0) { // what the MPI ring sends: the wire, and its partial back
          ++stats.hops_made;
          stats.bytes_sent[source] += 2 * B * hop.rows * D * std::int64_t(sizeof(Scalar));
          stats.bytes_sent[p] += 2 * B * hop.rows * D * std::int64_t(sizeof(Acc));
        }
        consume(p, m, k, v, hop, dq);
      }
      if (progress) progress(RingProgress{p, R, s + 1, 2 * R});
    }
    io.store_dq(p, stored(dq));
  }
  // dK, dV: member j, the partials of members 0, 1, ..., R-1 that read it
  // (dQ recomputed into scratch)
  for (int j = 0; j < R; ++j) {
    const auto [k, v] = kv_of(j);
    io.load_kv(j, k, v);
    const std::int64_t nj = partition.local_size(j);
    const A4 dk = wrap_view<A4>(dk_buf.data(), B, nj, Hkv, D);
    const A4 dv = wrap_view<A4>(dv_buf.data(), B, nj, Hkv, D);
    Kokkos::deep_copy(exec, dk, Acc(0));
    Kokkos::deep_copy(exec, dv, Acc(0));
    for (int p = 0; p < R; ++p) {
      const int s = (p - j + R) % R;
      const HopSchedule<Mem> hop = plan.backward_hop(exec, p, s);
      if (!hop.empty()) {
        const Queries m = load_queries(p);
        const A4 dq_scratch = wrap_view<A4>(dq_buf.data(), B, partition.local_size(p), H, D);
        const A4 partial = consume(p, m, k, v, hop, dq_scratch);
        Kokkos::Timer timer;
        BackwardMember<ExecSpace, Scalar>::accumulate(exec, partial, hop.pack, dk, dv);
        exec.fence();
        stats.compute_seconds[p] += timer.seconds();
      }
      if (progress) progress(RingProgress{j, R, R + p + 1, 2 * R});
    }
    io.store_dkv(j, stored(dk), stored(dv, dk.span()));
  }
  return stats;
}

#ifdef RINGATTN_ENABLE_MPI
/// MPI ring backward on `plan` (kind mpi): local rows in, local dQ, dK, dV
/// out. Step s: K/V wires from p - s and to p + s as in the forward
/// (non-blocking, the next step's wires in flight while this one computes);
/// the wire partial dK/dV of the wire from p - s goes back to it, and the
/// partial of p's wire comes back from p + s, added once step s + 1 has
/// been computed (its messages overlap that compute), in step order. The
/// member's own block, read in place (its dK/dV added in place), is
/// computed in two parts, one at each end of the pass, so the last step's
/// partials travel while the second part is computed.
template <class ExecSpace, class Scalar>
RingStats run_mpi_backward(const ExecSpace &exec, RingSchedule<ExecSpace, Scalar> &plan,
                           const MpiRingSettings &options, const InView<ExecSpace, Scalar> &q,
                           const InView<ExecSpace, Scalar> &k, const InView<ExecSpace, Scalar> &v,
                           const InView<ExecSpace, Scalar> &o,
                           const Kokkos::View<const accumulate_t<Scalar> ***, Kokkos::LayoutRight,
                                              typename ExecSpace::memory_space> &lse,
                           const InView<ExecSpace, Scalar> &dout,
                           const Tensor4<Scalar, typename ExecSpace::memory_space> &dq,
                           const Tensor4<Scalar, typename ExecSpace::memory_space> &dk,
                           const Tensor4<Scalar, typename ExecSpace::memory_space> &dv,
                           const ProgressCallback &progress = {}) {
  using Mem = typename ExecSpace::memory_space;
  using Acc = accumulate_t<Scalar>;
  using A4 = Tensor4<Acc, Mem>;
  using Buffer = MessageBuffer<Scalar, Mem>;
  using PartialBuffer = MessageBuffer<Acc, Mem>;
  plan.build_backward(exec);
  const MPI_Comm ring = *plan.comm;
  const int P = plan.partition.members;
  MemberSchedule<Mem> &me = plan.members.front();
  const int p = me.rank;
  const std::int64_t batch = plan.batch, dim = plan.head_dim;
  const std::int64_t n = plan.partition.local_size(p);
  const int H = plan.pattern.heads;

  RingStats stats;
  stats.resize(P);
  BackwardMember<ExecSpace, Scalar> member(plan.pattern, plan.partition, p, plan.scale,
                                           plan.tiling);

  // Accumulators: the outputs themselves when they hold the accumulate type.
  A4 dq_acc, dk_acc, dv_acc;
  if constexpr (std::is_same_v<Acc, Scalar>) {
    dq_acc = dq;
    dk_acc = dk;
    dv_acc = dv;
    Kokkos::deep_copy(exec, dq, Scalar(0));
    Kokkos::deep_copy(exec, dk, Scalar(0));
    Kokkos::deep_copy(exec, dv, Scalar(0));
  } else {
    dq_acc = A4("ringattn::dq_acc", batch, n, H, dim);
    dk_acc = A4("ringattn::dk_acc", batch, n, plan.pattern.kv_heads, dim);
    dv_acc = A4("ringattn::dv_acc", batch, n, plan.pattern.kv_heads, dim);
  }
  Tensor3<Acc, Mem> delta("ringattn::delta", batch, H, n);
  backward_delta<ExecSpace, Scalar>(exec, o, dout, delta);

  // K/V wires (each needed (kv head, row) once), the block they expand to,
  // the partial dK/dV of that block and the wire partials sent and received
  // (the plan's buffers).
  auto &recv = plan.recv;
  auto &send = plan.send;
  auto &part_send = plan.partial_send;
  auto &part_recv = plan.partial_recv;
  const MPI_Datatype type = mpi_type<Scalar>();
  const MPI_Datatype acc_type = mpi_type<Acc>();
  auto count_of = [&](std::int64_t rows) { return 2 * batch * rows * dim; };
  // The largest piece of a branch's part that a wire expands into (the hops
  // expand a piece at a time, as the forward's): its K/V and its partial, grown
  // here, not in the ring loop
  std::int64_t expand_rows = 0;
  for (const HopSchedule<Mem> &hop : me.backward)
    for (const BranchSchedule<Mem> &branch : hop.branches)
      expand_rows = std::max(expand_rows, branch.expand_rows);
  if (expand_rows > 0) {
    plan.expanded.view(batch, expand_rows, dim);
    plan.block_partial.view(batch, expand_rows, dim);
  }

  struct Step {
    const HopSchedule<Mem> *hop = nullptr; // the wire from p - s
    Buffer *buffer = nullptr;
    MPI_Request req[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
  };
  auto post = [&](int s) {
    Step st;
    const int dst = (p + s) % P, src = (p - s + P) % P;
    st.hop = &me.backward[std::size_t(s)];
    st.buffer = &recv[s % 2];
    const HopSchedule<Mem> &out = me.send[std::size_t(s)];
    if (!out.empty() && !options.skip_messages) {
      send_wire(exec, k, v, out, send, dst, s, ring, &st.req[1]);
      stats.bytes_sent[p] += count_of(out.rows) * std::int64_t(sizeof(Scalar));
    }
    if (!st.hop->empty()) {
      st.buffer->shape(batch, st.hop->rows, dim);
      if (!options.skip_messages)
        start_message(false, st.buffer->mpi_data(), count_of(st.hop->rows), type, src, s, ring,
                      &st.req[0]);
      else
        Kokkos::deep_copy(exec, st.buffer->block, Scalar(0));
    }
    return st;
  };

  // Wire partial dK/dV messages of one step: ours to p - s, p + s's to us.
  struct PartialStep {
    const HopSchedule<Mem> *out = nullptr; // the wire p sent to p + s: its partial comes back
    PartialBuffer *buffer = nullptr;
    MPI_Request req[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
    bool active = false;
  };
  PartialStep previous;
  auto finish = [&](PartialStep &ps) {
    if (!ps.active) return;
    MPI_Waitall(2, ps.req, MPI_STATUSES_IGNORE);
    if (!ps.out->empty() && !options.skip_messages) {
      ps.buffer->from_host();
      member.accumulate(exec, ps.buffer->block, ps.out->pack, dk_acc, dv_acc);
    }
    ps.active = false;
  };

  // Step 0: the first part of the member's own block, its K and V read in
  // place and its dK/dV added into dk_acc, dv_acc in place (nothing packed,
  // no partial); the second part comes after the last step (own_parts).
  Step current;
  Step pending;
  // Between pieces of the fused sweep: let MPI move the next step's wires
  // and the previous step's partials (an MPI such as Open MPI over TCP
  // moves a large message only inside MPI calls).
  const std::function<void()> progress_messages = [&] {
    int done = 0;
    MPI_Testall(2, pending.req, &done, MPI_STATUSES_IGNORE);
    if (previous.active) MPI_Testall(2, previous.req, &done, MPI_STATUSES_IGNORE);
  };
  const auto between = [&]() -> std::function<void()> {
    const bool in_flight =
        pending.req[0] != MPI_REQUEST_NULL || pending.req[1] != MPI_REQUEST_NULL ||
        (previous.active &&
         (previous.req[0] != MPI_REQUEST_NULL || previous.req[1] != MPI_REQUEST_NULL));
    return in_flight ? progress_messages : std::function<void()>{};
  };
  const auto consume_own = [&](const HopSchedule<Mem> &part) {
    if (part.empty()) return;
    exec.fence();
    Kokkos::Timer timer;
    member.consume_own(exec, q, dout, lse, delta, k, v, part, dq_acc, dk_acc, dv_acc, between());
    exec.fence();
    stats.compute_seconds[p] += timer.seconds();
  };
  exec.fence(); // MPI reads K and V in place (sends_in_place)
  for (int s = 0; s < P; ++s) {
    if (s > 0) {
      if (!options.overlap) pending = post(s);
      MPI_Waitall(2, pending.req, MPI_STATUSES_IGNORE);
      current = pending;
      current.buffer->from_host();
      if (current.hop->empty())
        ++stats.hops_skipped;
      else
        ++stats.hops_made;
    }
    if (options.overlap && s + 1 < P) pending = post(s + 1);
    if (s == 0) {
      consume_own(me.own_parts[0]);
      if (progress && P > 1) progress(RingProgress{p, P, 1, P});
      continue;
    }
    PartialBuffer &mine = part_send[s % 2];
    if (!current.hop->empty()) {
      mine.shape(batch, current.hop->rows, dim);
      exec.fence();
      Kokkos::Timer timer;
      BackwardViews<ExecSpace, Scalar> in{
          q, dout, lse, delta, KeyValueRows<Mem, Scalar>::of_block(current.buffer->block)};
      member.consume(exec, in, *current.hop, dq_acc, mine.block, plan.block_partial, between(),
                     &plan.expanded);
      exec.fence();
      stats.compute_seconds[p] += timer.seconds();
    }
    const int dst = (p + s) % P, src = (p - s + P) % P;
    PartialStep ps;
    ps.active = true;
    ps.out = &me.send[std::size_t(s)];
    ps.buffer = &part_recv[s % 2];
    if (!options.skip_messages) {
      if (!current.hop->empty()) {
        mine.to_host();
        start_message(true, mine.mpi_data(), count_of(current.hop->rows), acc_type, src, P + s,
                      ring, &ps.req[1]);
        stats.bytes_sent[p] += count_of(current.hop->rows) * std::int64_t(sizeof(Acc));
      }
      if (!ps.out->empty()) {
        ps.buffer->shape(batch, ps.out->rows, dim);
        start_message(false, ps.buffer->mpi_data(), count_of(ps.out->rows), acc_type, dst, P + s,
                      ring, &ps.req[0]);
      }
    }
    finish(previous); // step s - 1's partials, before step s's: fixed order
    previous = ps;
    // the last step is done with the own block's second part, below
    if (progress && s + 1 < P) progress(RingProgress{p, P, s + 1, P});
  }
  // The own block's second part while the last step's partials travel
  // (else they would return after the last compute, with nothing to hide
  // them).
  consume_own(me.own_parts[1]);
  finish(previous);
  if (progress) progress(RingProgress{p, P, P, P});
  if constexpr (!std::is_same_v<Acc, Scalar>) {
    const std::int64_t nq = dq.span(), nk = dk.span();
    auto dqs = dq;
    auto dks = dk;
    auto dvs = dv;
    auto dqa = dq_acc;
    auto dka = dk_acc;
    auto dva = dv_acc;
    Kokkos::parallel_for(
        "ringattn::backward_store",
        Kokkos::RangePolicy<ExecSpace, Kokkos::IndexType<std::int64_t>>(exec, 0, nq),
        KOKKOS_LAMBDA(const std::int64_t i) { dqs.data()[i] = Scalar(dqa.data()[i]); });
    Kokkos::parallel_for(
        "ringattn::backward_store",
        Kokkos::RangePolicy<ExecSpace, Kokkos::IndexType<std::int64_t>>(exec, 0, nk),
        KOKKOS_LAMBDA(const std::int64_t i) {
          dks.data()[i] = Scalar(dka.data()[i]);
          dvs.data()[i] = Scalar(dva.data()[i]);
        });
  }
  exec.fence();
  return stats;
}
#endif

} // namespace ringattn::Details

#endif
