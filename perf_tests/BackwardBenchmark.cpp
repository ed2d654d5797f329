// Backward-pass benchmark (docs/SPEC.md section 7): one member over the whole sequence,
// float32. For each case, in the same run: the forward's time, the
// backward's time, and sgemm of the QK^T shape (N x N x D, capped
// at 4096; the kernel's CBLAS) at the same thread count. Backward GFLOP/s count 10 D flops per
// kept (query, key) pair (recompute QK^T, dP = dO V^T, dV, dQ, dK); the
// forward's count 4 D (docs/SPEC.md section 6). Prints a table, asserts nothing.
//
//   OMP_NUM_THREADS=1 build/perf_tests/ringattn_backward_benchmark
//   OMP_NUM_THREADS=2 OMP_PROC_BIND=false build/perf_tests/ringattn_backward_benchmark
//   build/perf_tests/ringattn_backward_benchmark --case N,H,D,causal[,repeats] [--dtype T]
//       one dense case, B = 1, storage T (float32, bfloat16, float16), after one warm-up: prints
//       "N,H,D,causal,forward_s,backward_s" (medians; perf_tests/compare_torch.py
//       --backward times PyTorch's backward beside it)
#include "RingAttn_PerfCommon.hpp"

#include <RingAttn.hpp>

#include <Kokkos_Core.hpp>
#include <Kokkos_Random.hpp>
#include <Kokkos_Timer.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

using namespace ringattn::perf;

struct Times {
  double forward = 0;
  double backward = 0;
};

/// Median times of `repeats` forward and backward passes (after a warm-up),
/// Q, K, V, dO and the outputs in storage type Scalar.
template <class Scalar = float>
Times measure(const Case &c, int repeats) {
  const auto &p = c.pattern;
  using S4 = ringattn::Tensor4<Scalar, Mem>;
  const S4 q = random_tensor<Scalar>("q", 1, p.seq_len, p.heads, c.D, 1),
           k = random_tensor<Scalar>("k", 1, p.seq_len, p.kv_heads, c.D, 2),
           v = random_tensor<Scalar>("v", 1, p.seq_len, p.kv_heads, c.D, 3),
           dout = random_tensor<Scalar>("do", 1, p.seq_len, p.heads, c.D, 4);
  S4 o("o", 1, p.seq_len, p.heads, c.D), dq("dq", 1, p.seq_len, p.heads, c.D),
      dk("dk", 1, p.seq_len, p.kv_heads, c.D), dv("dv", 1, p.seq_len, p.kv_heads, c.D);
  ringattn::Tensor3<float, Mem> lse("lse", 1, p.heads, p.seq_len);
  ringattn::RingOptions options;
  options.tiling = tiling_from_environment<Scalar>(c.D);
  ringattn::RingAttention<Exec, Scalar> attention(p, options);
  std::vector<double> fwd, bwd;
  for (int r = 0; r < repeats + 1; ++r) {
    Kokkos::fence();
    Kokkos::Timer timer;
    attention.forward(q, k, v, o, lse);
    Kokkos::fence();
    if (r > 0) fwd.push_back(timer.seconds());
    timer.reset();
    attention.backward(q, k, v, o, lse, dout, dq, dk, dv);
    Kokkos::fence();
    if (r > 0) bwd.push_back(timer.seconds());
  }
  return Times{median(fwd), median(bwd)};
}

} // namespace

int main(int argc, char *argv[]) {
  Kokkos::initialize(argc, argv);
  if (argc > 2 && std::strcmp(argv[1], "--case") == 0) {
    long long n = 0, causal = 0;
    int h = 0, d = 0, repeats = 1;
    if (std::sscanf(argv[2], "%lld,%d,%d,%lld,%d", &n, &h, &d, &causal, &repeats) < 4 || n < 1 ||
        h < 1 || d < 1 || repeats < 1) {
      std::fprintf(stderr, "--case wants N,H,D,causal[,repeats], e.g. 4096,8,64,1\n");
      Kokkos::finalize();
      return 2;
    }
    const std::string dtype =
        argc > 4 && std::strcmp(argv[3], "--dtype") == 0 ? argv[4] : "float32";
    const Case c{"dense", ringattn::Pattern::dense(n, h, h, causal != 0), d};
    Times t;
    if (dtype == "float32")
      t = measure<float>(c, repeats);
    else if (dtype == "bfloat16")
      t = measure<ringattn::bfloat16_t>(c, repeats);
    else if (dtype == "float16")
      t = measure<ringattn::float16_t>(c, repeats);
    else {
      std::fprintf(stderr, "--dtype wants float32, bfloat16 or float16\n");
      Kokkos::finalize();
      return 2;
    }
    std::printf("%lld,%d,%d,%lld,%.6f,%.6f\n", n, h, d, causal, t.forward, t.backward);
    Kokkos::finalize();
    return 0;
  }
  {
    const bool smoke = argc > 1 && std::strcmp(argv[argc - 1], "--smoke") == 0;
    const std::int64_t N = smoke ? 512 : 8192;
    const std::int64_t Nd = smoke ? 4096 : 65536;
    const int repeats = smoke ? 1 : 3;
    using ringattn::Mixing;
    using ringattn::Pattern;
    const std::vector<Case> cases = {
        {"dense", Pattern::dense(N, 1, 1, false), 64},
        {"dense", Pattern::dense(N, 1, 1, false), 128},
        {"dense causal", Pattern::dense(N, 1, 1, true), 64},
        {"dilated longnet",
         Pattern::dilated(Nd, 4, 4, false, Mixing::mixture, {2048, 4096, 8192}, {1, 2, 4}), 64},
    };
    std::printf("threads=%d\n", Exec().concurrency());
    std::printf("| case | N | H | D | forward s | backward s | backward / forward | "
                "backward GFLOP/s | sgemm GFLOP/s | ratio to sgemm |\n");
    std::printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (const Case &c : cases) {
      const Times t = measure(c, repeats);
      const double gflops = 10.0 * c.D * key_pairs(c.pattern) / t.backward * 1e-9;
      const double base = sgemm_gflops(c.pattern.seq_len, c.D, repeats);
      std::printf("| %s | %lld | %d | %d | %.4f | %.4f | %.2f | %.1f | %.1f | %.2f |\n",
                  c.name.c_str(), (long long)c.pattern.seq_len, c.pattern.heads, c.D, t.forward,
                  t.backward, t.backward / t.forward, gflops, base, base > 0 ? gflops / base : 0.0);
    }
  }
  Kokkos::finalize();
  return 0;
}
