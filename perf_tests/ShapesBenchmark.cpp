// Dense attention at shapes given on the command line, on the default
// execution space: median time of RingAttention::forward over device-resident
// Views (inputs uniform in [-1, 1), made on the device; one member, the whole
// sequence) and GFLOP/s on the (query, key) pairs kept (4 D flops per pair,
// docs/SPEC.md section 6). One CSV line per shape, for scripts/gpu_compare_torch.py, which
// times PyTorch's scaled_dot_product_attention at the same shapes.
//
//   ringattn_shapes_benchmark [--warmup W] [--repeats R] B,N,H,D,causal...
//   e.g. ringattn_shapes_benchmark --repeats 5 1,4096,8,64,0 1,4096,8,64,1
// RINGATTN_TILES=QT,KT in the environment overrides the default tiling.
#include <RingAttn.hpp>

#include <Kokkos_Core.hpp>
#include <Kokkos_Random.hpp>
#include <Kokkos_Timer.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

using Exec = Kokkos::DefaultExecutionSpace;
using Mem = Exec::memory_space;
using T4 = ringattn::Tensor4<float, Mem>;

struct Shape {
  int B = 1, H = 1, D = 1;
  long long N = 1;
  int causal = 0;
};

bool parse_shape(const std::string &text, Shape &s) {
  char tail = 0;
  return std::sscanf(text.c_str(), "%d,%lld,%d,%d,%d%c", &s.B, &s.N, &s.H, &s.D, &s.causal,
                     &tail) == 5 &&
         s.B >= 1 && s.N >= 1 && s.H >= 1 && s.D >= 1 && (s.causal == 0 || s.causal == 1);
}

int usage() {
  std::fprintf(stderr, "usage: ringattn_shapes_benchmark [--warmup W] [--repeats R] "
                       "B,N,H,D,causal...\n");
  return 2;
}

} // namespace

int main(int argc, char *argv[]) {
  Kokkos::initialize(argc, argv);
  int rc = 0;
  {
    int warmup = 1, repeats = 3;
    std::vector<Shape> shapes;
    for (int i = 1; i < argc && rc == 0; ++i) {
      const std::string a = argv[i];
      if ((a == "--warmup" || a == "--repeats") && i + 1 < argc)
        (a == "--warmup" ? warmup : repeats) = std::atoi(argv[++i]);
      else if (Shape s; parse_shape(a, s))
        shapes.push_back(s);
      else
        rc = usage();
    }
    if (rc == 0 && (shapes.empty() || warmup < 0 || repeats < 1)) rc = usage();
    if (rc == 0) {
      std::printf("# execution space: %s, concurrency %d\n", Exec::name(), Exec().concurrency());
      std::printf("B,N,H,D,causal,median_s,min_s,gflops,key_pairs\n");
      std::fflush(stdout);
    }
    for (std::size_t c = 0; rc == 0 && c < shapes.size(); ++c) {
      const Shape &s = shapes[c];
      const ringattn::Pattern p = ringattn::Pattern::dense(s.N, s.H, s.H, s.causal == 1);
      T4 q("q", s.B, s.N, s.H, s.D), k("k", s.B, s.N, s.H, s.D), v("v", s.B, s.N, s.H, s.D),
          o("o", s.B, s.N, s.H, s.D);
      ringattn::Tensor3<float, Mem> lse("lse", s.B, s.H, s.N);
      Kokkos::Random_XorShift64_Pool<Exec> pool(1234 + c);
      Kokkos::fill_random(q, pool, -1.0f, 1.0f);
      Kokkos::fill_random(k, pool, -1.0f, 1.0f);
      Kokkos::fill_random(v, pool, -1.0f, 1.0f);
      ringattn::RingOptions options;
      if (const char *tiles = std::getenv("RINGATTN_TILES")) { // "QT,KT" to explore tilings
        ringattn::Tiling t = ringattn::default_tiling<Exec>(s.D);
        std::sscanf(tiles, "%d,%d", &t.q_tile, &t.k_tile);
        options.tiling = t;
      }
      ringattn::RingAttention<Exec, float> attention(p, options);
      std::vector<double> times;
      for (int r = 0; r < warmup + repeats; ++r) {
        Kokkos::fence();
        Kokkos::Timer timer;
        attention.forward(q, k, v, o, lse);
        Kokkos::fence();
        if (r >= warmup) times.push_back(timer.seconds());
      }
      std::sort(times.begin(), times.end());
      const double pairs =
          double(s.B) * s.H * double(s.N) * (s.causal ? double(s.N + 1) / 2 : double(s.N));
      const double median = times[times.size() / 2];
      std::printf("%d,%lld,%d,%d,%d,%.6e,%.6e,%.3f,%.0f\n", s.B, s.N, s.H, s.D, s.causal, median,
                  times.front(), 4.0 * s.D * pairs / median * 1e-9, pairs);
      std::fflush(stdout);
    }
  }
  Kokkos::finalize();
  return rc;
}
