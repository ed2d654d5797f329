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
#include <type_traits>
#include <vector>

namespace {

using namespace ringattn::perf;

struct Measurement {
  double seconds = 0;
  double gflops = 0;
};

/// Median time of `repeats` forward passes (after one warm-up) of one
/// member over the whole sequence, and GFLOP/s on the pairs the pattern
/// keeps; storage type Scalar (16-bit: `path` picks the host path's way to
/// multiply 16-bit tiles: the default tile, which is the AVX-512 tile where
/// built (bfloat16 by VDPBF16PS where built for AVX512-BF16), the sgemm tile
/// on tiles widened to float, MKL's 16-bit GEMMs, or AMX).
enum class Path { host_default, sgemm_widened, mkl_16bit, amx };
template <class Scalar = float>
Measurement measure(const Case &c, int repeats, Path path = Path::host_default) {
  const auto &p = c.pattern;
  const auto q = random_tensor<Scalar>("q", 1, p.seq_len, p.heads, c.D, 1);
  const auto k = random_tensor<Scalar>("k", 1, p.seq_len, p.kv_heads, c.D, 2);
  const auto v = random_tensor<Scalar>("v", 1, p.seq_len, p.kv_heads, c.D, 3);
  ringattn::Tensor4<Scalar, Mem> o("o", std::size_t(1), std::size_t(p.seq_len),
                                   std::size_t(p.heads), std::size_t(c.D));
  ringattn::Tensor3<float, Mem> lse("lse", 1, p.heads, p.seq_len);
  ringattn::RingOptions options;
  // the sgemm tile and MKL's 16-bit GEMMs at the tiles of widened 16-bit
  // storage (float16's), the default and AMX at the type's defaults
  ringattn::Tiling t = path == Path::host_default || path == Path::amx
                           ? ringattn::default_tiling<Exec, Scalar>(c.D)
                           : ringattn::default_tiling<Exec, ringattn::float16_t>(c.D);
  if (path == Path::sgemm_widened || path == Path::mkl_16bit) t.host_avx512 = false;
  if (const char *tiles = std::getenv("RINGATTN_TILES")) // "QT,KT" to explore tilings
    std::sscanf(tiles, "%d,%d", &t.q_tile, &t.k_tile);
  t.native_16bit_gemm = path == Path::mkl_16bit;
  t.host_amx = path == Path::amx;
  options.tiling = t;
  ringattn::RingAttention<Exec, Scalar> attention(p, options);
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

    // 16-bit storage against float32 on the same case, in the same run: the
    // default host tile (the AVX-512 tile where built), tiles widened to
    // float for sgemm, (MKL) MKL's 16-bit GEMMs, and (bfloat16, where built
    // for AMX and granted) the tile unit.
    std::printf("\n| storage, host path (seconds; ratio to float32) | case | D | float32 | "
                "bfloat16 default%s | bfloat16 sgemm widened | bfloat16 MKL gemm_bf16bf16f32 | "
                "bfloat16 AMX | float16 default%s | float16 sgemm widened | "
                "float16 MKL gemm_f16f16f32 |\n",
                ringattn::Details::host_avx512_bf16_dot()    ? " (AVX-512 tile, VDPBF16PS)"
                : ringattn::Details::host_avx512_available() ? " (AVX-512 tile)"
                                                             : "",
                ringattn::Details::host_avx512_available() ? " (AVX-512 tile)" : "");
    std::printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (const Case &c : cases) {
      const double f32 = measure<float>(c, repeats).seconds;
      const double bd = measure<ringattn::bfloat16_t>(c, repeats).seconds;
      const double bw = measure<ringattn::bfloat16_t>(c, repeats, Path::sgemm_widened).seconds;
      const double fd = measure<ringattn::float16_t>(c, repeats).seconds;
      const double fw = measure<ringattn::float16_t>(c, repeats, Path::sgemm_widened).seconds;
      const bool mkl = ringattn::Details::host_native_16bit_gemm;
      const bool amx = ringattn::Details::amx_permitted();
      const double bn =
          mkl ? measure<ringattn::bfloat16_t>(c, repeats, Path::mkl_16bit).seconds : 0;
      const double fn = mkl ? measure<ringattn::float16_t>(c, repeats, Path::mkl_16bit).seconds : 0;
      const double ba = amx ? measure<ringattn::bfloat16_t>(c, repeats, Path::amx).seconds : 0;
      auto cell = [&](double x, const char *none) {
        return x > 0 ? std::to_string(x).substr(0, 6) + " (" +
                           std::to_string(x / f32).substr(0, 4) + ")"
                     : std::string(none);
      };
      std::printf("| | %s | %d | %.4f | %s | %s | %s | %s | %s | %s | %s |\n", c.name.c_str(), c.D,
                  f32, cell(bd, "").c_str(), cell(bw, "").c_str(), cell(bn, "no MKL").c_str(),
                  cell(ba, "no AMX").c_str(), cell(fd, "").c_str(), cell(fw, "").c_str(),
                  cell(fn, "no MKL").c_str());
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
