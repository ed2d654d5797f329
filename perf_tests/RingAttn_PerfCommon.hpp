#ifndef RINGATTN_PERF_COMMON_HPP
#define RINGATTN_PERF_COMMON_HPP

// What the kernel, shapes and backward benchmarks share: random inputs in a
// storage type, a case, the median, the
// kept (query, key) pairs of a pattern (docs/SPEC.md section 6), and the
// sgemm baseline of the QK^T shape from the CBLAS the kernel's tiles use.

#include <RingAttn.hpp>

#include <Kokkos_Core.hpp>
#include <Kokkos_Random.hpp>
#include <Kokkos_Timer.hpp>
#ifdef RINGATTN_BENCH_SGEMM
#include <kernels/detail/RingAttn_Cblas.hpp> // the provider the kernel uses
#endif

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <type_traits>
#include <vector>

namespace ringattn::perf {

using Exec = Kokkos::DefaultExecutionSpace;
using Mem = Exec::memory_space;
using T4 = ringattn::Tensor4<float, Mem>;

struct Case {
  std::string name;
  ringattn::Pattern pattern;
  int D;
};

/// A [B, n, heads, D] tensor in storage type Scalar: uniform in [-1, 1)
/// made in float, rounded to nearest even for the 16-bit types.
template <class Scalar>
ringattn::Tensor4<Scalar, Mem> random_tensor(const char *label, std::int64_t B, std::int64_t n,
                                             int heads, int D, std::uint64_t seed) {
  const std::string name(label);
  T4 wide(name, std::size_t(B), std::size_t(n), std::size_t(heads), std::size_t(D));
  Kokkos::Random_XorShift64_Pool<Exec> pool(seed);
  Kokkos::fill_random(wide, pool, -1.0f, 1.0f);
  if constexpr (std::is_same_v<Scalar, float>) {
    return wide;
  } else {
    ringattn::Tensor4<Scalar, Mem> narrow(name, std::size_t(B), std::size_t(n), std::size_t(heads),
                                          std::size_t(D));
    Scalar *const dst = narrow.data();
    const float *const src = wide.data();
    Kokkos::parallel_for(
        "round", Kokkos::RangePolicy<Exec>(0, narrow.span()),
        KOKKOS_LAMBDA(const std::size_t i) { dst[i] = Scalar(src[i]); });
    return narrow;
  }
}

/// The default tiling of (Exec, Scalar) at head dim D, with the benchmark
/// knobs of the environment applied: RINGATTN_TILES=QT,KT (tile sizes) and
/// RINGATTN_HOST_AVX512=0|1 (Tiling::host_avx512) and RINGATTN_NATIVE_16BIT=0|1
/// (Tiling::native_16bit_gemm), to explore tilings.
template <class Scalar>
ringattn::Tiling tiling_from_environment(int D) {
  ringattn::Tiling t = ringattn::default_tiling<Exec, Scalar>(D);
  if (const char *tiles = std::getenv("RINGATTN_TILES"))
    std::sscanf(tiles, "%d,%d", &t.q_tile, &t.k_tile);
  if (const char *fused = std::getenv("RINGATTN_HOST_AVX512"))
    t.host_avx512 = std::atoi(fused) != 0;
  if (const char *native = std::getenv("RINGATTN_NATIVE_16BIT"))
    t.native_16bit_gemm = std::atoi(native) != 0;
  return t;
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

inline double key_pairs(const ringattn::Pattern &p) {
  double n = 0;
  for (int h = 0; h < p.heads; ++h)
    for (std::int64_t t = 0; t < p.seq_len; ++t) n += double(p.pairs_for_query(t, h));
  return n;
}

inline double sgemm_gflops(std::int64_t N, int D, int repeats) {
#ifdef RINGATTN_BENCH_SGEMM
  // The same CBLAS as the kernel's tiles, one GEMM thread per thread: the
  // rows of the QK^T product are split over the OpenMP threads.
#ifdef RINGATTN_HAVE_OPENBLAS_THREADS
  openblas_set_num_threads(1);
#endif
  const std::int64_t M = std::min<std::int64_t>(N, 4096); // QK^T shape, capped in memory
  std::vector<float> a(M * D, 0.5f), b(M * D, 0.25f), c(M * M);
  std::vector<double> times;
  const int threads = Exec().concurrency();
  for (int r = 0; r < repeats + 1; ++r) {
    Kokkos::Timer timer;
#pragma omp parallel for num_threads(threads)
    for (int t = 0; t < threads; ++t) {
      const std::int64_t r0 = M * t / threads, r1 = M * (t + 1) / threads;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(r1 - r0), int(M), D, 1.0f,
                  a.data() + r0 * D, D, b.data(), D, 0.0f, c.data() + r0 * M, int(M));
    }
    if (r > 0) times.push_back(timer.seconds());
  }
  return 2.0 * double(M) * M * D / median(times) * 1e-9;
#else
  (void)N, (void)D, (void)repeats;
  return 0;
#endif
}

} // namespace ringattn::perf

#endif
