// Ring benchmark: the MPI ring against one rank, overlap on/off, messages
// skipped (what communication costs when it is not hidden), and the simulated
// ring's cost of R members against one, all measured in the same run.
//
//   OMP_NUM_THREADS=1 mpirun -np 2 --oversubscribe build/perf_tests/ringattn_ring_benchmark [N] [D]
//       [--ring-only | --backward]
//
// --ring-only times the MPI ring cases alone (no single-process baselines);
// --backward times the MPI ring's backward the same way (overlap on, off,
// messages skipped), after one forward for O and LSE.
// Where messages cost something: Open MPI's TCP transport on loopback,
//   OMPI_MCA_btl_tcp_if_include=lo OMP_NUM_THREADS=1 mpirun -np 2 --mca btl tcp,self
//       build/perf_tests/ringattn_ring_benchmark 65536 64 --ring-only   (one command line)
#include <RingAttn.hpp>
#include <api/detail/RingAttn_BenchmarkAccess.hpp>

#include <Kokkos_Core.hpp>
#include <Kokkos_Random.hpp>
#include <Kokkos_Timer.hpp>
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

namespace {

using Exec = Kokkos::DefaultExecutionSpace;
using Mem = Exec::memory_space;
using T4 = ringattn::Tensor4<float, Mem>;
using T3 = ringattn::Tensor3<float, Mem>;

/// Median seconds of `repeats` calls after one warm-up, the slowest rank's.
double time_median(MPI_Comm comm, int repeats, const std::function<void()> &fn) {
  std::vector<double> times;
  for (int r = 0; r < repeats + 1; ++r) {
    MPI_Barrier(comm);
    Kokkos::Timer timer;
    fn();
    Kokkos::fence();
    double t = timer.seconds(), worst = 0;
    MPI_Allreduce(&t, &worst, 1, MPI_DOUBLE, MPI_MAX, comm);
    if (r > 0) times.push_back(worst);
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

struct Local {
  T4 q, k, v, o, dout, dq, dk, dv;
  T3 lse;
  Local(std::int64_t n, int H, int D, bool backward = false)
      : q("q", 1, n, H, D), k("k", 1, n, H, D), v("v", 1, n, H, D), o("o", 1, n, H, D),
        dout("do", 1, backward ? n : 0, H, D), dq("dq", 1, backward ? n : 0, H, D),
        dk("dk", 1, backward ? n : 0, H, D), dv("dv", 1, backward ? n : 0, H, D),
        lse("lse", 1, H, n) {
    Kokkos::Random_XorShift64_Pool<Exec> pool(17);
    Kokkos::fill_random(q, pool, -1.0f, 1.0f);
    Kokkos::fill_random(k, pool, -1.0f, 1.0f);
    Kokkos::fill_random(v, pool, -1.0f, 1.0f);
    if (backward) Kokkos::fill_random(dout, pool, -1.0f, 1.0f);
  }
};

} // namespace

int main(int argc, char *argv[]) {
  MPI_Init(&argc, &argv);
  Kokkos::initialize(argc, argv);
  {
    int rank = 0, P = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    const std::int64_t N = argc > 1 ? std::atoll(argv[1]) : 32768;
    const int D = argc > 2 ? std::atoi(argv[2]) : 64;
    const bool backward = argc > 3 && std::string(argv[3]) == "--backward";
    const bool ring_only = backward || (argc > 3 && std::string(argv[3]) == "--ring-only");
    const int H = 1, repeats = 3;
    const auto pattern = ringattn::Pattern::dense(N, H, H, true);
    ringattn::RingOptions options;
    options.partition = ringattn::PartitionKind::zigzag;

    // One rank, the whole sequence (the others wait).
    MPI_Comm self_or_null;
    MPI_Comm_split(MPI_COMM_WORLD, rank == 0 ? 0 : MPI_UNDEFINED, 0, &self_or_null);
    double t_one = 0, t_sim1 = 0, t_sim16 = 0;
    if (rank == 0 && !ring_only) {
      Local all(N, H, D);
      ringattn::RingAttention<Exec, float> one(pattern, options);
      t_one = time_median(self_or_null, repeats,
                          [&] { one.forward(self_or_null, all.q, all.k, all.v, all.o, all.lse); });
      ringattn::RingOptions sim = options;
      sim.members = 1;
      ringattn::RingAttention<Exec, float> sim1(pattern, sim);
      t_sim1 = time_median(self_or_null, repeats,
                           [&] { sim1.forward(all.q, all.k, all.v, all.o, all.lse); });
      sim.members = 16;
      ringattn::RingAttention<Exec, float> sim16(pattern, sim);
      t_sim16 = time_median(self_or_null, repeats,
                            [&] { sim16.forward(all.q, all.k, all.v, all.o, all.lse); });
    }
    if (self_or_null != MPI_COMM_NULL) MPI_Comm_free(&self_or_null);
    MPI_Barrier(MPI_COMM_WORLD);

    // The ring over all ranks.
    const ringattn::Partition part(options.partition, N, P);
    Local mine(part.local_size(rank), H, D, backward);
    ringattn::RingAttention<Exec, float> ring(pattern, options);
    if (backward) ring.forward(MPI_COMM_WORLD, mine.q, mine.k, mine.v, mine.o, mine.lse);
    using Access = ringattn::Details::RingBenchmarkAccess;
    auto run = [&](bool overlap, bool skip) {
      return time_median(MPI_COMM_WORLD, repeats, [&] {
        if (backward)
          Access::backward(ring, MPI_COMM_WORLD, mine.q, mine.k, mine.v, mine.o, mine.lse,
                           mine.dout, mine.dq, mine.dk, mine.dv, overlap, skip);
        else
          Access::forward(ring, MPI_COMM_WORLD, mine.q, mine.k, mine.v, mine.o, mine.lse, overlap,
                          skip);
      });
    };
    const double t_overlap = run(true, false);
    const double t_serial = run(false, false);
    const double t_skip = run(true, true);

    if (rank == 0) {
      std::printf("dense causal zigzag, N=%lld, H=%d, D=%d, %d threads per rank%s\n", (long long)N,
                  H, D, Exec().concurrency(), backward ? ", backward" : "");
      std::printf("| case | seconds | ratio |\n| --- | --- | --- |\n");
      if (ring_only) {
        std::printf("| %d ranks, messages skipped | %.4f | 1.000 |\n", P, t_skip);
        std::printf("| %d ranks, overlap on | %.4f | overlap-on / skipped %.3f |\n", P, t_overlap,
                    t_overlap / t_skip);
        std::printf("| %d ranks, overlap off | %.4f | overlap-off / skipped %.3f |\n", P, t_serial,
                    t_serial / t_skip);
      } else {
        std::printf("| 1 rank | %.4f | 1.00 |\n", t_one);
        std::printf("| %d ranks, overlap on | %.4f | parallel efficiency %.2f |\n", P, t_overlap,
                    t_one / (P * t_overlap));
        std::printf("| %d ranks, overlap off | %.4f | parallel efficiency %.2f |\n", P, t_serial,
                    t_one / (P * t_serial));
        std::printf("| %d ranks, messages skipped | %.4f | overlap-on / skipped %.3f |\n", P,
                    t_skip, t_overlap / t_skip);
      }
      if (!ring_only) {
        std::printf("| simulated R=1 (one process) | %.4f | 1.00 |\n", t_sim1);
        std::printf("| simulated R=16 (one process) | %.4f | R=16 / R=1 %.3f |\n", t_sim16,
                    t_sim16 / t_sim1);
      }
    }
  }
  Kokkos::finalize();
  MPI_Finalize();
  return 0;
}
