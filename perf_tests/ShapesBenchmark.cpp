// Dense attention at shapes given on the command line, on the default
// execution space: median time of RingAttention::forward over device-resident
// Views (inputs uniform in [-1, 1), made on the device; one member, the whole
// sequence) and GFLOP/s on the (query, key) pairs kept (4 D flops per pair,
// docs/SPEC.md section 6). One CSV line per shape, for scripts/gpu_compare_torch.py, which
// times PyTorch's scaled_dot_product_attention at the same shapes.
//
//   ringattn_shapes_benchmark [--warmup W] [--repeats R] [--dtype T] B,N,H,D,causal...
//   e.g. ringattn_shapes_benchmark --repeats 5 1,4096,8,64,0 1,4096,8,64,1
// T is the storage type: float32 (the default), bfloat16 or float16 (inputs
// made in float and rounded to nearest even).
// RINGATTN_TILES=QT,KT in the environment overrides the default tiling.
#include "RingAttn_PerfCommon.hpp"

#include <RingAttn.hpp>

#include <Kokkos_Core.hpp>
#include <Kokkos_Timer.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <type_traits>
#include <vector>

namespace {

using Exec = Kokkos::DefaultExecutionSpace;
using Mem = Exec::memory_space;

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
                       "[--dtype float32|bfloat16|float16] B,N,H,D,causal...\n");
  return 2;
}

/// One CSV line: the median and best of `repeats` forward passes.
template <class Scalar>
void time_shape(const Shape &s, std::size_t c, int warmup, int repeats) {
  const ringattn::Pattern p = ringattn::Pattern::dense(s.N, s.H, s.H, s.causal == 1);
  const auto q = ringattn::perf::random_tensor<Scalar>("q", s.B, s.N, s.H, s.D, 1234 + 3 * c);
  const auto k = ringattn::perf::random_tensor<Scalar>("k", s.B, s.N, s.H, s.D, 1235 + 3 * c);
  const auto v = ringattn::perf::random_tensor<Scalar>("v", s.B, s.N, s.H, s.D, 1236 + 3 * c);
  ringattn::Tensor4<Scalar, Mem> o("o", s.B, s.N, s.H, s.D);
  ringattn::Tensor3<ringattn::accumulate_t<Scalar>, Mem> lse("lse", s.B, s.H, s.N);
  ringattn::RingOptions options;
  options.tiling = ringattn::perf::tiling_from_environment<Scalar>(s.D);
  ringattn::RingAttention<Exec, Scalar> attention(p, options);
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

} // namespace

int main(int argc, char *argv[]) {
  Kokkos::initialize(argc, argv);
  int rc = 0;
  {
    int warmup = 1, repeats = 3;
    std::string dtype = "float32";
    std::vector<Shape> shapes;
    for (int i = 1; i < argc && rc == 0; ++i) {
      const std::string a = argv[i];
      if ((a == "--warmup" || a == "--repeats") && i + 1 < argc)
        (a == "--warmup" ? warmup : repeats) = std::atoi(argv[++i]);
      else if (a == "--dtype" && i + 1 < argc)
        dtype = argv[++i];
      else if (Shape s; parse_shape(a, s))
        shapes.push_back(s);
      else
        rc = usage();
    }
    if (rc == 0 && (shapes.empty() || warmup < 0 || repeats < 1 ||
                    (dtype != "float32" && dtype != "bfloat16" && dtype != "float16")))
      rc = usage();
    if (rc == 0) {
      std::printf("# execution space: %s, concurrency %d, storage %s\n", Exec::name(),
                  Exec().concurrency(), dtype.c_str());
      std::printf("B,N,H,D,causal,median_s,min_s,gflops,key_pairs\n");
      std::fflush(stdout);
    }
    for (std::size_t c = 0; rc == 0 && c < shapes.size(); ++c) {
      if (dtype == "float32")
        time_shape<float>(shapes[c], c, warmup, repeats);
      else if (dtype == "bfloat16")
        time_shape<ringattn::bfloat16_t>(shapes[c], c, warmup, repeats);
      else
        time_shape<ringattn::float16_t>(shapes[c], c, warmup, repeats);
    }
  }
  Kokkos::finalize();
  return rc;
}
