#ifndef RINGATTN_OPTIONS_HPP
#define RINGATTN_OPTIONS_HPP

// The options of a ring pass: tile sizes of the block kernel, the ring's
// partition and members, and the MPI ring's switches.

#include <pattern/RingAttn_Partition.hpp>
#include <ring/RingAttn_RingStats.hpp>

#include <climits>
#include <cstdint>
#include <optional>

namespace ringattn {

/// Tile sizes and team shape of the block kernel.
struct Tiling {
  int q_tile = 64;
  int k_tile = 64;
  int team_size = 1;
  int vector_length = 1;
  /// Use the portable kernel even where the host fast path could run.
  bool portable = false;
  /// 16-bit storage on the host fast path with MKL: tile products by MKL's
  /// 16-bit GEMMs with float results (probabilities rounded to the storage
  /// type for P V) instead of tiles widened to float for sgemm. Ignored
  /// elsewhere. default_tiling picks the faster of the two as measured
  /// (perf_tests/KernelBenchmark.cpp, README): on for bfloat16 where the
  /// CPU has AVX512-BF16 and AMX does not run, off otherwise.
  bool native_16bit_gemm = false;
  /// bfloat16 storage on the host fast path: tile products on Intel AMX
  /// where the build targets it (-march with AMX-BF16) and Linux grants the
  /// process the tile state; elsewhere ignored. Takes precedence over
  /// native_16bit_gemm. Probabilities are rounded to bfloat16 for P V.
  bool host_amx = true;
  /// Float and 16-bit storage on the host fast path: both tile products in
  /// AVX-512 float arithmetic, fused with the softmax, instead of two CBLAS
  /// sgemm calls per tile, where the build targets AVX-512 and the head dim
  /// is a multiple of 8; elsewhere ignored. AMX and native_16bit_gemm take
  /// precedence. default_tiling sets it where it was measured faster.
  bool host_avx512 = false;
  /// Most teams one kernel launch may have (Kokkos league sizes are int):
  /// batch x work items beyond it are launched in turns.
  std::int64_t max_league_size = INT_MAX;
};

/// How RingAttention runs a pass (docs/SPEC.md section 3).
struct RingOptions {
  PartitionKind partition = PartitionKind::contiguous;
  /// Virtual members of the simulated ring (in-memory forward); the MPI ring
  /// takes its size from the communicator.
  int members = 1;
  /// Post the next hop's messages before computing the current one (MPI).
  bool overlap = true;
  /// Score scale; 1/sqrt(D) when empty (docs/SPEC.md section 1).
  std::optional<double> scale;
  /// Tile sizes; the execution space's default when empty.
  std::optional<Tiling> tiling;
  ProgressCallback progress;
};

/// Switches of the MPI ring (RingAttention::forward with a communicator).
struct MpiRingOptions {
  bool overlap = true; ///< post step s+1's messages before computing step s
};

namespace Details {
/// What the MPI rings run with: the public switches, and one for benchmarks
/// only, which computes on stale blocks and sends nothing (the ring's
/// compute alone; perf_tests/RingBenchmark.cpp reaches it through
/// RingBenchmarkAccess, src/api/detail/RingAttn_BenchmarkAccess.hpp).
struct MpiRingSettings {
  bool overlap = true;
  bool skip_messages = false;
};
struct RingBenchmarkAccess;
} // namespace Details

} // namespace ringattn

#endif
