#ifndef RINGATTN_RINGATTENTION_HPP
#define RINGATTN_RINGATTENTION_HPP

// The public API (docs/DESIGN.md layer 5): configured once with a pattern and ring
// options, then forward() on the caller's own Kokkos Views and, for the MPI
// ring, the caller's own communicator. The library never initializes Kokkos
// or MPI and never reaches for MPI_COMM_WORLD.
//
//   ringattn::RingAttention<Kokkos::DefaultExecutionSpace, float> attn(
//       ringattn::Pattern::dense(N, H, Hkv, /*causal=*/true));
//   attn.forward(q, k, v, o, lse);            // whole sequence, this process
//   attn.forward(comm, q_loc, k_loc, v_loc, o_loc, lse_loc);   // MPI ring
//   attn.backward(q, k, v, o, lse, dout, dq, dk, dv);   // gradients (docs/SPEC.md section 7)
//   attn.backward(io, B, D);   // a BackwardMemberIO: one member at a time, memory N / members
//
// A plan (ring/RingAttn_RingPlan.hpp) holds what every hop needs, built
// once: the calls above build one per call, the calls with a plan reuse it.
//   auto plan = attn.make_plan(comm, batch, head_dim);        // collective
//   attn.forward(plan, q_loc, k_loc, v_loc, o_loc, lse_loc);
//   attn.backward(plan, q_loc, k_loc, v_loc, o_loc, lse_loc, do_loc, dq, dk, dv);

#include <RingAttn_Config.hpp>
#include <api/RingAttn_Options.hpp>
#include <core/RingAttn_Types.hpp>
#include <core/detail/RingAttn_Fingerprint.hpp>
#include <kernels/detail/RingAttn_BlockKernel.hpp>
#include <model/RingAttn_RingModel.hpp>
#include <pattern/RingAttn_Partition.hpp>
#include <pattern/RingAttn_Pattern.hpp>
#include <ring/RingAttn_MemberIO.hpp>
#include <ring/RingAttn_RingPlan.hpp>
#include <ring/RingAttn_RingStats.hpp>
#include <ring/detail/RingAttn_BackwardRing.hpp>
#include <ring/detail/RingAttn_SimulatedRing.hpp>
#ifdef RINGATTN_ENABLE_MPI
#include <ring/detail/RingAttn_MpiAgreement.hpp>
#include <ring/detail/RingAttn_MpiRing.hpp>
#endif

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

namespace ringattn {

/// Default tiling for an execution space: one thread per team on the host
/// (a team is one core's tile loop), warps of lanes on a GPU.
template <class ExecSpace, class Scalar = float>
Tiling default_tiling([[maybe_unused]] int head_dim) {
  Tiling t;
  if constexpr (Details::compat::is_host_execution_v<ExecSpace>) {
#ifdef RINGATTN_ENABLE_BLAS
    // GEMM tiles of the host fast path (float). Measured with
    // RINGATTN_TILES over 64/128/256 x 256/512/1024 (ringattn_shapes_benchmark,
    // N 4,096, H 8, one thread, best of interleaved rounds on the shared
    // machine), as fractions of the best tiling (dense, causal):
    // D 64: 128 x 256 (0.96, 0.98), 128 x 512 (0.88, 1.00), 256 x 256 (1.00,
    // 0.91); D 128: 128 x 1024 (1.00, 0.98), 128 x 512 (0.75, 1.00).
    t.q_tile = 128;
    t.k_tile = head_dim <= 64 ? 256 : 1024;
    // 16-bit storage widens each K/V tile to float once per query tile:
    // twice the query rows per tile halve that cost (ringattn_kernel_benchmark,
    // storage table, with RINGATTN_TILES=256,256 against the default).
    if constexpr (is_16bit_storage_v<Scalar>) t.q_tile = 256;
    // Where the build targets AVX-512: both tile products fused with the
    // softmax in AVX-512 (RingAttn_BlockKernelAvx512.hpp), no BLAS call;
    // on an AVX-512 EPYC core 1.1 to 1.35 times the sgemm tile above, in
    // float and widened 16 bits (README, "host kernel"). Long query tiles:
    // each key tile is then read from memory once per 768 queries; 128 keys
    // keep a column block's scores (48 x 128) in L1. Measured with
    // RINGATTN_TILES over 96 to 1536 x 32 to 256 (ringattn_shapes_benchmark,
    // N 4,096, H 8, D 64 and 128, one thread): 768 x 64 to 256 within 3% of
    // the best (1536 x 64); 128 x 256 at 0.78 to 0.85 of it. The backward,
    // which shares the tiles, took 0.9 to 1.0 of its time at 128 x 256 /
    // 1024 (ringattn_backward_benchmark).
    const bool avx512 =
        Details::host_avx512_available() && Details::avx512_takes_head_dim(head_dim);
    if (avx512) {
      t.host_avx512 = true;
      t.q_tile = 768;
      t.k_tile = 128;
    }
    if constexpr (std::is_same_v<Scalar, bfloat16_t>) {
      if (Details::amx_takes_head_dim(head_dim) && Details::amx_permitted()) {
        // bfloat16 on AMX (RingAttn_BlockKernelAmx.hpp), which takes
        // precedence: each key tile is packed into the tile unit's layout
        // once per query tile, so long query tiles; 256 keys keep a 32-row
        // block of scores in L1. Measured with RINGATTN_TILES over
        // 256/512/1024 x 128/256/512 (ringattn_shapes_benchmark --dtype
        // bfloat16, N 4,096 H 8 D 64 and N 8,192 H 2 D 128, one thread): 512 x
        // 256 the fastest at both D, dense and causal (256 x 256: 0.86-0.92).
        t.q_tile = 512;
        t.k_tile = 256;
      } else if (!avx512 && Details::host_native_16bit_gemm && Details::cpu_has_avx512_bf16()) {
        // No tile unit and no AVX-512 tile, but AVX512-BF16: MKL's
        // gemm_bf16bf16f32 on the 16-bit tiles took 0.52 to 0.60 of the
        // float32 time where widening took 0.98 to 1.05 (Sapphire Rapids,
        // ringattn_kernel_benchmark, storage table). On an AVX-512 EPYC it
        // ran at 0.65 to 0.7 of the AVX-512 tile's rate, which wins there.
        t.native_16bit_gemm = true;
      }
    }
#else
    t.q_tile = 64;
    t.k_tile = head_dim <= 64 ? 128 : 64;
#endif
  } else {
    // Rows over threads, keys or head dims over vector lanes. The tiles are
    // halved until the team's scratch fits level 0 (shared memory, 40 KiB in
    // Kokkos 3.4 CUDA): 32 x 32 up to D = 64, 16 x 16 at D = 128, 8 x 8 at
    // D = 256. Larger tiles would spill to level 1 (global memory), where
    // every score and accumulator update is a round trip to L2.
    using Functor = Details::BlockAttentionFunctor<ExecSpace, Scalar>;
    const auto fits = [&] {
      const std::size_t bytes =
          Functor::ScratchView::shmem_size(Functor::scratch_elements(t.q_tile, t.k_tile, head_dim));
      return bytes <= std::size_t(Kokkos::TeamPolicy<ExecSpace>::scratch_size_max(0));
    };
    t.q_tile = 32;
    t.k_tile = 32;
    while (!fits() && (t.q_tile > 8 || t.k_tile > 8)) {
      if (t.q_tile >= t.k_tile && t.q_tile > 8)
        t.q_tile /= 2;
      else
        t.k_tile /= 2;
    }
    t.vector_length = t.k_tile < 32 ? t.k_tile : 32;
    t.team_size = t.q_tile < 256 / t.vector_length ? t.q_tile : 256 / t.vector_length;
  }
  return t;
}

template <class ExecSpace = Kokkos::DefaultExecutionSpace, class Scalar = float>
class RingAttention {
public:
  using execution_space = ExecSpace;
  using memory_space = typename ExecSpace::memory_space;
  using value_type = Scalar;
  using ConstTensor4 = Kokkos::View<const Scalar ****, Kokkos::LayoutRight, memory_space>;
  /// What forward reads Q, K and V as (and backward Q, K, V, O and dO): any
  /// layout whose head dim is contiguous (stride 1), e.g. LayoutRight views,
  /// or subviews of one packed [B, N, 3, H, D] projection, read in place
  /// with no copy.
  using InTensor4 = Kokkos::View<const Scalar ****, Kokkos::LayoutStride, memory_space>;
  using OutTensor4 = Tensor4<Scalar, memory_space>;
  /// LSE is in the accumulate type: float for float, bfloat16 and float16
  /// storage, double for double (docs/SPEC.md section 1).
  using lse_type = accumulate_t<Scalar>;
  using OutTensor3 = Tensor3<lse_type, memory_space>;
  using ConstTensor3 = Kokkos::View<const lse_type ***, Kokkos::LayoutRight, memory_space>;

  explicit RingAttention(const Pattern &pattern, const RingOptions &options = {})
      : pattern_(pattern), options_(options) {
    // Knobs are checked when they are set, before any kernel sees them.
    pattern_.validate();
    if (options_.tiling) check_tiling_counts(*options_.tiling);
    if (options_.members < 1) throw std::invalid_argument("ringattn: members must be >= 1");
    if (options_.scale && !std::isfinite(*options_.scale))
      throw std::invalid_argument("ringattn: scale must be a finite number");
  }

  const Pattern &pattern() const { return pattern_; }
  const RingOptions &options() const { return options_; }

  accumulate_t<Scalar> scale(std::int64_t head_dim) const {
    return accumulate_t<Scalar>(options_.scale ? *options_.scale
                                               : 1.0 / std::sqrt(double(head_dim)));
  }
  Tiling tiling(std::int64_t head_dim) const {
    return options_.tiling ? *options_.tiling : default_tiling<ExecSpace, Scalar>(int(head_dim));
  }

  /// The problem of this attention for the ring model
  /// (model/RingAttn_RingModel.hpp), with this object's partition and tiling
  /// and one tile scratch per thread (or GPU team) in flight.
  ModelProblem model_problem(std::int64_t batch, std::int64_t head_dim) const {
    const Tiling t = tiling(head_dim);
    const int lanes = std::max(1, t.team_size * t.vector_length);
    return ModelProblem::of(pattern_, batch, head_dim, std::int64_t(sizeof(Scalar)),
                            options_.partition, t,
                            std::max(1, int(ExecSpace().concurrency()) / lanes));
  }
  /// The model of a ring of `members` members (options().members where 0)
  /// before anything is allocated: each member's buffers (the `memory` of
  /// mode mpi, the `process` of the simulated ring), the rows each sends,
  /// the pairs each scores. What `ringattn plan` prints.
  RingModel model(std::int64_t batch, std::int64_t head_dim, int members = 0) const {
    return analyse_ring(model_problem(batch, head_dim), pattern_.seq_len,
                        members > 0 ? members : options_.members);
  }

  /// Whole sequence in this process: q [B, N, H, D], k, v [B, N, Hkv, D],
  /// o [B, N, H, D], lse [B, H, N]. Runs options().members virtual members
  /// one after another (a single member when 1).
  RingStats forward(const InTensor4 &q, const InTensor4 &k, const InTensor4 &v, const OutTensor4 &o,
                    const OutTensor3 &lse) const {
    return forward(ExecSpace(), q, k, v, o, lse);
  }
  RingStats forward(const ExecSpace &exec, const InTensor4 &q, const InTensor4 &k,
                    const InTensor4 &v, const OutTensor4 &o, const OutTensor3 &lse) const {
    check_shapes(q, k, v, o, lse, pattern_.seq_len);
    check_tiling(tiling(q.extent(3)), std::int64_t(q.extent(3)));
    const Plan plan = make_plan(std::int64_t(q.extent(0)), std::int64_t(q.extent(3)), exec);
    // Reads q, k, v and writes o, lse in place: no copy of the caller's tensors.
    return Details::run_simulated_ring_in_place<ExecSpace, Scalar>(exec, plan.schedule(), q, k, v,
                                                                   o, lse, options_.progress);
  }

  /// Simulated ring over rows that `io` provides and receives, one member
  /// at a time (memory grows as N / members).
  RingStats forward(MemberIO<Scalar, memory_space> &io, std::int64_t batch, std::int64_t head_dim,
                    const ExecSpace &exec = ExecSpace()) const {
    check_tiling(tiling(head_dim), head_dim);
    // holds no member: the runner builds one member's hops at a time
    const Plan plan = build_plan(Details::RingKind::member_io, batch, head_dim, exec, true);
    return Details::run_simulated_ring<ExecSpace, Scalar>(exec, plan.schedule(), io,
                                                          options_.progress);
  }

#ifdef RINGATTN_ENABLE_MPI
  /// MPI ring over `comm`: each rank passes only its own rows (the partition
  /// of docs/SPEC.md section 3 with P = size of comm), in local order.
  RingStats forward(MPI_Comm comm, const InTensor4 &q, const InTensor4 &k, const InTensor4 &v,
                    const OutTensor4 &o, const OutTensor3 &lse,
                    const MpiRingOptions &mpi_options = {},
                    const ExecSpace &exec = ExecSpace()) const {
    return forward_mpi(comm, q, k, v, o, lse, Details::MpiRingSettings{mpi_options.overlap, false},
                       exec);
  }
#endif

  /// Backward (docs/SPEC.md section 7), whole sequence in this process: from the forward's
  /// o and lse and the gradient dout [B, N, H, D] of a loss with respect to
  /// O, writes dq [B, N, H, D] and dk, dv [B, N, Hkv, D]. Runs
  /// options().members virtual members on the forward's ring schedule.
  RingStats backward(const InTensor4 &q, const InTensor4 &k, const InTensor4 &v, const InTensor4 &o,
                     const ConstTensor3 &lse, const InTensor4 &dout, const OutTensor4 &dq,
                     const OutTensor4 &dk, const OutTensor4 &dv) const {
    return backward(ExecSpace(), q, k, v, o, lse, dout, dq, dk, dv);
  }
  RingStats backward(const ExecSpace &exec, const InTensor4 &q, const InTensor4 &k,
                     const InTensor4 &v, const InTensor4 &o, const ConstTensor3 &lse,
                     const InTensor4 &dout, const OutTensor4 &dq, const OutTensor4 &dk,
                     const OutTensor4 &dv) const {
    check_backward_shapes(q, k, v, o, lse, dout, dq, dk, dv, pattern_.seq_len);
    check_tiling(tiling(q.extent(3)), std::int64_t(q.extent(3)));
    // the backward's schedule alone (no forward runs on this plan)
    const Plan plan = build_plan(Details::RingKind::in_memory, std::int64_t(q.extent(0)),
                                 std::int64_t(q.extent(3)), exec, true);
    return Details::run_simulated_backward<ExecSpace, Scalar>(
        exec, plan.schedule(), q, k, v, o, lse, dout, dq, dk, dv, options_.progress);
  }

  /// Backward over rows that `io` provides and receives, one member at a
  /// time: memory grows as N / members, and every block is computed twice
  /// (dQ, then dK and dV: BackwardMemberIO). The same bits as the backward
  /// over whole-sequence views.
  RingStats backward(BackwardMemberIO<Scalar, memory_space> &io, std::int64_t batch,
                     std::int64_t head_dim, const ExecSpace &exec = ExecSpace()) const {
    if (batch < 0 || head_dim < 1)
      throw std::invalid_argument("ringattn::RingAttention::backward: batch must be >= 0 and "
                                  "head_dim >= 1");
    check_tiling(tiling(head_dim), head_dim);
    // holds no member: the runner builds each hop when it runs
    const Plan plan = build_plan(Details::RingKind::member_io, batch, head_dim, exec, true);
    return Details::run_simulated_backward_io<ExecSpace, Scalar>(exec, plan.schedule(), io,
                                                                 options_.progress);
  }

#ifdef RINGATTN_ENABLE_MPI
  /// MPI ring backward over `comm`: each rank passes its own rows (docs/SPEC.md section 3's
  /// partition with P = size of comm) and gets dQ, dK, dV of those rows.
  RingStats backward(MPI_Comm comm, const InTensor4 &q, const InTensor4 &k, const InTensor4 &v,
                     const InTensor4 &o, const ConstTensor3 &lse, const InTensor4 &dout,
                     const OutTensor4 &dq, const OutTensor4 &dk, const OutTensor4 &dv,
                     const MpiRingOptions &mpi_options = {},
                     const ExecSpace &exec = ExecSpace()) const {
    return backward_mpi(comm, q, k, v, o, lse, dout, dq, dk, dv,
                        Details::MpiRingSettings{mpi_options.overlap, false}, exec);
  }
#endif

  using Plan = RingPlan<ExecSpace, Scalar>;

  /// The plan of the simulated ring (options().members members) for
  /// whole-sequence views of `batch` x `head_dim`: every hop's schedule,
  /// built once, for forward(plan, ...) and backward(plan, ...).
  Plan make_plan(std::int64_t batch, std::int64_t head_dim,
                 const ExecSpace &exec = ExecSpace()) const {
    if (batch < 0 || head_dim < 1)
      throw std::invalid_argument("ringattn::RingAttention::make_plan: batch must be >= 0 and "
                                  "head_dim >= 1");
    check_tiling(tiling(head_dim), head_dim);
    return build_plan(Details::RingKind::in_memory, batch, head_dim, exec);
  }

  /// forward with a plan from make_plan: the whole sequence in this process
  /// (a simulated plan) or this rank's rows (an MPI plan, over the plan's
  /// communicator). The ring loop builds, copies and allocates nothing,
  /// except that 16-bit storage allocates its float running O (or a chunk of
  /// it) in the plan on the plan's first forward.
  RingStats forward(const Plan &plan, const InTensor4 &q, const InTensor4 &k, const InTensor4 &v,
                    const OutTensor4 &o, const OutTensor3 &lse,
                    const ExecSpace &exec = ExecSpace()) const {
    check_plan_valid(plan, "forward");
#ifdef RINGATTN_ENABLE_MPI
    if (plan.for_mpi())
      return forward_mpi(plan, q, k, v, o, lse,
                         Details::MpiRingSettings{plan.schedule().overlap, false}, exec, true);
#endif
    check_plan(plan, "forward");
    check_shapes(q, k, v, o, lse, pattern_.seq_len);
    check_plan_shape(plan, q, "forward");
    return Details::run_simulated_ring_in_place<ExecSpace, Scalar>(exec, plan.schedule(), q, k, v,
                                                                   o, lse, options_.progress);
  }

  /// backward with a plan from make_plan (simulated or MPI, as forward).
  RingStats backward(const Plan &plan, const InTensor4 &q, const InTensor4 &k, const InTensor4 &v,
                     const InTensor4 &o, const ConstTensor3 &lse, const InTensor4 &dout,
                     const OutTensor4 &dq, const OutTensor4 &dk, const OutTensor4 &dv,
                     const ExecSpace &exec = ExecSpace()) const {
    check_plan_valid(plan, "backward");
#ifdef RINGATTN_ENABLE_MPI
    if (plan.for_mpi())
      return backward_mpi(plan, q, k, v, o, lse, dout, dq, dk, dv,
                          Details::MpiRingSettings{plan.schedule().overlap, false}, exec, true);
#endif
    check_plan(plan, "backward");
    check_backward_shapes(q, k, v, o, lse, dout, dq, dk, dv, pattern_.seq_len);
    check_plan_shape(plan, q, "backward");
    return Details::run_simulated_backward<ExecSpace, Scalar>(
        exec, plan.schedule(), q, k, v, o, lse, dout, dq, dk, dv, options_.progress);
  }

#ifdef RINGATTN_ENABLE_MPI
  /// The plan of the MPI ring over `comm` (collective: every rank calls it
  /// with the same batch and head_dim): this rank's hops, the message
  /// buffers they reuse, and a private duplicate of `comm`, made once here
  /// and freed with the last copy of the plan (not after MPI_Finalize).
  Plan make_plan(MPI_Comm comm, std::int64_t batch, std::int64_t head_dim,
                 const MpiRingOptions &mpi_options = {},
                 const ExecSpace &exec = ExecSpace()) const {
    Details::MpiRingSettings settings{mpi_options.overlap, false};
    agree_on_mpi_arguments(comm, "ringattn::RingAttention::make_plan", std::size_t(batch),
                           std::size_t(head_dim), settings, [&](std::int64_t) {
                             if (batch < 0 || head_dim < 1)
                               throw std::invalid_argument("batch must be >= 0 and head_dim >= 1");
                           });
    return build_mpi_plan(comm, batch, head_dim, settings.overlap, exec);
  }
#endif

private:
#ifdef RINGATTN_ENABLE_MPI
  friend struct Details::RingBenchmarkAccess;

  RingStats forward_mpi(MPI_Comm comm, const InTensor4 &q, const InTensor4 &k, const InTensor4 &v,
                        const OutTensor4 &o, const OutTensor3 &lse,
                        Details::MpiRingSettings settings, const ExecSpace &exec) const {
    // Collective: every rank checks its arguments, and all go on or all
    // throw the same exception (docs/reliability.md).
    agree_on_mpi_arguments(comm, "ringattn::RingAttention::forward", q.extent(0), q.extent(3),
                           settings,
                           [&](std::int64_t rows) { check_shapes(q, k, v, o, lse, rows); });
    const Plan plan = build_mpi_plan(comm, std::int64_t(q.extent(0)), std::int64_t(q.extent(3)),
                                     settings.overlap, exec);
    return forward_mpi(plan, q, k, v, o, lse, settings, exec, false);
  }

  RingStats forward_mpi(const Plan &plan, const InTensor4 &q, const InTensor4 &k,
                        const InTensor4 &v, const OutTensor4 &o, const OutTensor3 &lse,
                        Details::MpiRingSettings settings, const ExecSpace &exec,
                        bool agree) const {
    const MPI_Comm comm = plan.communicator();
    // Collective: every rank checks its arguments, and all go on or all
    // throw the same exception (docs/reliability.md).
    if (agree)
      agree_on_mpi_arguments(comm, "ringattn::RingAttention::forward", q.extent(0), q.extent(3),
                             settings, [&](std::int64_t rows) {
                               check_plan(plan, "forward");
                               check_shapes(q, k, v, o, lse, rows);
                               check_plan_shape(plan, q, "forward");
                             });
    settings.overlap = settings.overlap && options_.overlap;
    // Past here messages move: an exception ends the job (docs/reliability.md).
    return Details::abort_on_exception(comm, "ringattn::RingAttention::forward", [&] {
      return Details::run_mpi_ring<ExecSpace, Scalar>(exec, plan.schedule(), settings, q, k, v, o,
                                                      lse, options_.progress);
    });
  }

  RingStats backward_mpi(MPI_Comm comm, const InTensor4 &q, const InTensor4 &k, const InTensor4 &v,
                         const InTensor4 &o, const ConstTensor3 &lse, const InTensor4 &dout,
                         const OutTensor4 &dq, const OutTensor4 &dk, const OutTensor4 &dv,
                         Details::MpiRingSettings settings, const ExecSpace &exec) const {
    agree_on_mpi_arguments(
        comm, "ringattn::RingAttention::backward", q.extent(0), q.extent(3), settings,
        [&](std::int64_t rows) { check_backward_shapes(q, k, v, o, lse, dout, dq, dk, dv, rows); });
    const Plan plan = build_mpi_plan(comm, std::int64_t(q.extent(0)), std::int64_t(q.extent(3)),
                                     settings.overlap, exec, true);
    return backward_mpi(plan, q, k, v, o, lse, dout, dq, dk, dv, settings, exec, false);
  }

  RingStats backward_mpi(const Plan &plan, const InTensor4 &q, const InTensor4 &k,
                         const InTensor4 &v, const InTensor4 &o, const ConstTensor3 &lse,
                         const InTensor4 &dout, const OutTensor4 &dq, const OutTensor4 &dk,
                         const OutTensor4 &dv, Details::MpiRingSettings settings,
                         const ExecSpace &exec, bool agree) const {
    const MPI_Comm comm = plan.communicator();
    if (agree)
      agree_on_mpi_arguments(comm, "ringattn::RingAttention::backward", q.extent(0), q.extent(3),
                             settings, [&](std::int64_t rows) {
                               check_plan(plan, "backward");
                               check_backward_shapes(q, k, v, o, lse, dout, dq, dk, dv, rows);
                               check_plan_shape(plan, q, "backward");
                             });
    settings.overlap = settings.overlap && options_.overlap;
    return Details::abort_on_exception(comm, "ringattn::RingAttention::backward", [&] {
      return Details::run_mpi_backward<ExecSpace, Scalar>(
          exec, plan.schedule(), settings, q, k, v, o, lse, dout, dq, dk, dv, options_.progress);
    });
  }

  /// The local checks of one rank (`check(rows)` with the partition's rows
  /// of this rank, then the tiling), agreed on by all ranks of `comm` with a
  /// fingerprint of what they must share (RingAttn_MpiAgreement.hpp).
  template <class Check>
  void agree_on_mpi_arguments(MPI_Comm comm, const std::string &where, std::size_t batch,
                              std::size_t head_dim, const Details::MpiRingSettings &mpi_options,
                              const Check &check) const {
    int P = 1, p = 0;
    MPI_Comm_size(comm, &P);
    MPI_Comm_rank(comm, &p);
    std::string error;
    try {
      const Partition partition(options_.partition, pattern_.seq_len, P);
      check(partition.local_size(p));
      check_tiling(tiling(std::int64_t(head_dim)), std::int64_t(head_dim));
    } catch (const std::exception &e) {
      error = e.what();
    }
    Details::Fingerprint fp;
    fp.add(pattern_.seq_len).add(pattern_.heads).add(pattern_.kv_heads).add(pattern_.causal);
    fp.add(pattern_.mixing).add(pattern_.num_branches);
    for (int i = 0; i < pattern_.num_branches; ++i)
      fp.add(pattern_.segment_length[i]).add(pattern_.dilation_rate[i]);
    fp.add(options_.partition).add(double(scale(std::int64_t(head_dim) > 0 ? head_dim : 1)));
    fp.add(std::uint64_t(batch)).add(std::uint64_t(head_dim)).add(sizeof(Scalar));
    fp.add(mpi_options.skip_messages);
    Details::agree_on_arguments(comm, error, fp.value(), where);
  }
#endif

  /// What a plan must share with the RingAttention that runs it.
  std::uint64_t plan_key(Details::RingKind kind, int members, std::int64_t head_dim) const {
    Details::Fingerprint fp;
    fp.add(pattern_.seq_len).add(pattern_.heads).add(pattern_.kv_heads).add(pattern_.causal);
    fp.add(pattern_.mixing).add(pattern_.num_branches);
    for (int i = 0; i < pattern_.num_branches; ++i)
      fp.add(pattern_.segment_length[i]).add(pattern_.dilation_rate[i]);
    const Tiling t = tiling(head_dim);
    fp.add(options_.partition).add(members).add(kind).add(double(scale(head_dim)));
    fp.add(t.q_tile).add(t.k_tile).add(t.team_size).add(t.vector_length).add(t.portable);
    fp.add(t.native_16bit_gemm).add(t.host_amx).add(t.host_avx512).add(t.max_league_size);
    return fp.value();
  }

  std::shared_ptr<typename Plan::Schedule> new_schedule(Details::RingKind kind, std::int64_t batch,
                                                        std::int64_t head_dim,
                                                        const Partition &partition) const {
    auto s = std::make_shared<typename Plan::Schedule>();
    s->pattern = pattern_;
    s->partition = partition;
    s->kind = kind;
    s->tiling = tiling(head_dim);
    s->scale = scale(head_dim);
    s->batch = batch;
    s->head_dim = head_dim;
    s->key = plan_key(kind, partition.members, head_dim);
    return s;
  }

#ifdef RINGATTN_ENABLE_MPI
  /// This rank's plan of the MPI ring over `comm` (collective: MPI_Comm_dup),
  /// its arguments already agreed on; where `deferred`, the schedules are
  /// built by the first pass that needs them.
  Plan build_mpi_plan(MPI_Comm comm, std::int64_t batch, std::int64_t head_dim, bool overlap,
                      const ExecSpace &exec, bool deferred = false) const {
    int P = 1, p = 0;
    MPI_Comm_size(comm, &P);
    MPI_Comm_rank(comm, &p);
    auto schedule = new_schedule(Details::RingKind::mpi, batch, head_dim,
                                 Partition(options_.partition, pattern_.seq_len, P));
    schedule->overlap = overlap && options_.overlap;
    MPI_Comm ring;
    MPI_Comm_dup(comm, &ring); // private tag space, once per plan
    schedule->comm = std::shared_ptr<MPI_Comm>(new MPI_Comm(ring), [](MPI_Comm *c) {
      int finalized = 0;
      MPI_Finalized(&finalized);
      if (!finalized) MPI_Comm_free(c);
      delete c;
    });
    schedule->ranks = {p};
    if (!deferred) schedule->build_forward(exec); // else by the first pass that needs it
    return Plan(schedule);
  }
#endif

  /// A simulated ring's plan: every member's hops (where `deferred`, built
  /// by the first pass that needs them).
  Plan build_plan(Details::RingKind kind, std::int64_t batch, std::int64_t head_dim,
                  const ExecSpace &exec, bool deferred = false) const {
    const Partition partition(options_.partition, pattern_.seq_len, options_.members);
    auto schedule = new_schedule(kind, batch, head_dim, partition);
    schedule->ranks.resize(std::size_t(partition.members));
    for (int p = 0; p < partition.members; ++p) schedule->ranks[std::size_t(p)] = p;
    if (!deferred) schedule->build_forward(exec);
    return Plan(schedule);
  }

  static void check_plan_valid(const Plan &plan, const char *where) {
    if (!plan.valid())
      throw std::invalid_argument(std::string("ringattn::RingAttention::") + where +
                                  ": the plan is empty (make one with make_plan)");
  }
  void check_plan(const Plan &plan, const char *where) const {
    check_plan_valid(plan, where);
    const auto &s = plan.schedule();
    if (s.kind == Details::RingKind::member_io ||
        s.key != plan_key(s.kind,
                          s.kind == Details::RingKind::mpi ? s.partition.members : options_.members,
                          s.head_dim))
      throw std::invalid_argument(std::string("ringattn::RingAttention::") + where +
                                  ": the plan was made for another pattern, partition, members, "
                                  "scale or tiling");
  }
  void check_plan_shape(const Plan &plan, const InTensor4 &q, const char *where) const {
    if (std::int64_t(q.extent(0)) != plan.batch() || std::int64_t(q.extent(3)) != plan.head_dim())
      throw std::invalid_argument(std::string("ringattn::RingAttention::") + where +
                                  ": the plan was made for batch " + std::to_string(plan.batch()) +
                                  " and head_dim " + std::to_string(plan.head_dim()) +
                                  ", the views have batch " + std::to_string(q.extent(0)) +
                                  " and head_dim " + std::to_string(q.extent(3)));
  }

  static void check_tiling_counts(const Tiling &t) {
    if (t.q_tile < 1 || t.k_tile < 1 || t.team_size < 1 || t.vector_length < 1 ||
        t.max_league_size < 1)
      throw std::invalid_argument("ringattn: the tiling needs q_tile, k_tile, team_size, "
                                  "vector_length and max_league_size >= 1");
  }
  static void check_tiling(const Tiling &t, std::int64_t head_dim) {
    check_tiling_counts(t);
    // One team's tiles live in team scratch, whose size Kokkos takes as an
    // int: larger tiles would overflow it (and crashed, before this check).
    const std::size_t elements =
        Details::BlockAttentionFunctor<ExecSpace, Scalar>::scratch_elements(
            t.q_tile, t.k_tile, int(std::min<std::int64_t>(head_dim, INT_MAX)));
    if (elements > std::size_t(INT_MAX / 2) / sizeof(accumulate_t<Scalar>))
      throw std::invalid_argument("ringattn: tiles of q_tile " + std::to_string(t.q_tile) +
                                  " x k_tile " + std::to_string(t.k_tile) + " at head_dim " +
                                  std::to_string(head_dim) +
                                  " need more than 1 GiB of team scratch; use smaller tiles");
  }

  void check_backward_shapes(const InTensor4 &q, const InTensor4 &k, const InTensor4 &v,
                             const InTensor4 &o, const ConstTensor3 &lse, const InTensor4 &dout,
                             const OutTensor4 &dq, const OutTensor4 &dk, const OutTensor4 &dv,
                             std::int64_t rows) const {
    auto fail = [](const std::string &what) {
      throw std::invalid_argument("ringattn::RingAttention::backward: " + what);
    };
    const auto B = q.extent(0), D = q.extent(3);
    if (std::int64_t(q.extent(1)) != rows) fail("q has the wrong number of rows");
    if (int(q.extent(2)) != pattern_.heads) fail("q has the wrong number of heads");
    if (D < 1) fail("head_dim must be >= 1");
    for (const auto *t : {&k, &v})
      if (t->extent(0) != B || std::int64_t(t->extent(1)) != rows ||
          int(t->extent(2)) != pattern_.kv_heads || t->extent(3) != D)
        fail("k and v must be [B, N, kv_heads, D] matching q");
    for (const auto *t : {&o, &dout})
      if (t->extent(0) != B || t->extent(1) != q.extent(1) || t->extent(2) != q.extent(2) ||
          t->extent(3) != D)
        fail("o and dout must have the shape of q");
    if (dq.extent(0) != B || dq.extent(1) != q.extent(1) || dq.extent(2) != q.extent(2) ||
        dq.extent(3) != D)
      fail("dq must have the shape of q");
    for (const auto *t : {&dk, &dv})
      if (t->extent(0) != B || t->extent(1) != k.extent(1) || t->extent(2) != k.extent(2) ||
          t->extent(3) != D)
        fail("dk and dv must have the shape of k");
    if (lse.extent(0) != B || int(lse.extent(1)) != pattern_.heads ||
        std::int64_t(lse.extent(2)) != rows)
      fail("lse must be [B, H, N]");
    for (const auto *t : {&q, &k, &v, &o, &dout})
      if (t->extent(3) > 1 && t->stride_3() != 1)
        fail("q, k, v, o and dout must have a contiguous head dim (stride 1), e.g. LayoutRight "
             "or a subview of one");
  }

  void check_shapes(const InTensor4 &q, const InTensor4 &k, const InTensor4 &v, const OutTensor4 &o,
                    const OutTensor3 &lse, std::int64_t rows) const {
    auto fail = [](const std::string &what) {
      throw std::invalid_argument("ringattn::RingAttention::forward: " + what);
    };
    const auto B = q.extent(0), D = q.extent(3);
    if (std::int64_t(q.extent(1)) != rows) fail("q has the wrong number of rows");
    if (int(q.extent(2)) != pattern_.heads) fail("q has the wrong number of heads");
    for (const auto *t : {&k, &v})
      if (t->extent(0) != B || std::int64_t(t->extent(1)) != rows ||
          int(t->extent(2)) != pattern_.kv_heads || t->extent(3) != D)
        fail("k and v must be [B, N, kv_heads, D] matching q");
    if (o.extent(0) != B || std::int64_t(o.extent(1)) != rows ||
        int(o.extent(2)) != pattern_.heads || o.extent(3) != D)
      fail("o must have the shape of q");
    if (lse.extent(0) != B || int(lse.extent(1)) != pattern_.heads ||
        std::int64_t(lse.extent(2)) != rows)
      fail("lse must be [B, H, N]");
    if (D < 1) fail("head_dim must be >= 1");
    // The kernels (and the host path's GEMMs) read a row's D values as one
    // contiguous vector; rows and heads may lie anywhere.
    for (const auto *t : {&q, &k, &v})
      if (t->extent(3) > 1 && t->stride_3() != 1)
        fail("q, k and v must have a contiguous head dim (stride 1), e.g. LayoutRight or a "
             "subview of one");
  }

  Pattern pattern_;
  RingOptions options_;
};

} // namespace ringattn

#endif
