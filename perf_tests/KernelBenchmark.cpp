// Block-kernel benchmark: GFLOP/s on the (query, key) pairs each pattern
// keeps (4 D flops per pair, docs/SPEC.md section 6), beside sgemm of the QK^T shape
// (N x N x D, from the CBLAS the kernel uses, rows split over the threads)
// at the same thread count, measured in the same run.
//
//   OMP_NUM_THREADS=1 build/perf_tests/ringattn_kernel_benchmark
//   OMP_NUM_THREADS=2 build/perf_tests/ringattn_kernel_benchmark
#include "RingAttn_PerfCommon.hpp"

#include <RingAttn.hpp>

#include <Kokkos_Core.hpp>
#include <Kokkos_Random.hpp>
#include <Kokkos_Timer.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using namespace ringattn::perf;

struct Measurement {
  double seconds = 0;
  double gflops = 0;
};

/// Median time of `repeats` forward passes (after one warm-up) of one
/// member over the whole sequence, and GFLOP/s on the pairs the pattern keeps.
Measurement measure(const Case &c, int repeats) {
  const auto &p = c.pattern;
  T4 q("q", 1, p.seq_len, p.heads, c.D), k("k", 1, p.seq_len, p.kv_heads, c.D),
      v("v", 1, p.seq_len, p.kv_heads, c.D), o("o", 1, p.seq_len, p.heads, c.D);
  ringattn::Tensor3<float, Mem> lse("lse", 1, p.heads, p.seq_len);
  Kokkos::Random_XorShift64_Pool<Exec> pool(1);
  Kokkos::fill_random(q, pool, -1.0f, 1.0f);
  Kokkos::fill_random(k, pool, -1.0f, 1.0f);
  Kokkos::fill_random(v, pool, -1.0f, 1.0f);
  ringattn::RingOptions options;
  if (const char *tiles = std::getenv("RINGATTN_TILES")) { // "QT,KT" to explore tilings
    ringattn::Tiling t = ringattn::default_tiling<Exec>(c.D);
    std::sscanf(tiles, "%d,%d", &t.q_tile, &t.k_tile);
    options.tiling = t;
  }
  ringattn::RingAttention<Exec, float> attention(p, options);
  std::vector<double> times;
  for (int r = 0; r < repeats + 1; ++r) {
    Kokkos::fence();
    Kokkos::Timer timer;
    attention.forward(q, k, v, o, lse);
    Kokkos::fence();
    if (r > 0) times.push_back(timer.seconds());
  }
  Measurement m;
  m.seconds = median(times);
  m.gflops = 4.0 * c.D * key_pairs(p) / m.seconds * 1e-9;
  return m;
}

} // namespace

int main(int argc, char *argv[]) {
  Kokkos::initialize(argc, argv);
  {
    const bool smoke = argc > 1 && std::strcmp(argv[argc - 1], "--smoke") == 0;
    const std::int64_t N = smoke ? 1024 : 8192;
    const std::int64_t Nd = smoke ? 4096 : 65536;
    const int repeats = smoke ? 1 : 3;
    using ringattn::Mixing;
    using ringattn::Pattern;
    std::vector<Case> cases = {
        {"dense", Pattern::dense(N, 1, 1, false), 64},
        {"dense", Pattern::dense(N, 1, 1, false), 128},
        {"dense causal", Pattern::dense(N, 1, 1, true), 64},
        {"dense causal", Pattern::dense(N, 1, 1, true), 128},
        {"dilated longnet",
         Pattern::dilated(Nd, 4, 4, false, Mixing::mixture, {2048, 4096, 8192}, {1, 2, 4}), 64},
    };
    std::printf("threads=%d\n", Exec().concurrency());
    std::printf("| case | N | H | D | seconds | kernel GFLOP/s | sgemm GFLOP/s | ratio |\n");
    std::printf("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (const Case &c : cases) {
      const Measurement m = measure(c, repeats);
      const double base = sgemm_gflops(c.pattern.seq_len, c.D, repeats);
      std::printf("| %s | %lld | %d | %d | %.4f | %.1f | %.1f | %.2f |\n", c.name.c_str(),
                  (long long)c.pattern.seq_len, c.pattern.heads, c.D, m.seconds, m.gflops, base,
                  base > 0 ? m.gflops / base : 0.0);
    }

    // Dilated attention's work is linear in N: time(2N) / time(N) should stay
    // near 2 from N = 65,536 to 1,048,576.
    std::printf("\n| dilated longnet (w = 2048, 4096, 8192; r = 1, 2, 4), H = 1, D = 64: N | "
                "seconds | time(N) / time(N/2) | GFLOP/s | ratio to sgemm |\n");
    std::printf("| --- | --- | --- | --- | --- |\n");
    const double base = sgemm_gflops(4096, 64, repeats);
    double previous = 0;
    for (std::int64_t n = smoke ? 16384 : 65536; n <= (smoke ? 32768 : 1048576); n *= 2) {
      const Case c{"dilated",
                   Pattern::dilated(n, 1, 1, false, Mixing::mixture, {2048, 4096, 8192}, {1, 2, 4}),
                   64};
      const Measurement m = measure(c, n >= 524288 ? 1 : repeats);
      std::printf("| %lld | %.4f | %s | %.1f | %.2f |\n", (long long)n, m.seconds,
                  previous > 0 ? std::to_string(m.seconds / previous).substr(0, 4).c_str() : "-",
                  m.gflops, base > 0 ? m.gflops / base : 0.0);
      previous = m.seconds;
    }
  }
  Kokkos::finalize();
  return 0;
}
