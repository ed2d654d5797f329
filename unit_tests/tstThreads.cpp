// Two host threads at once: the BLAS thread-count switch of the host path is
// shared (the first caller in sets one thread, the last one out restores the
// caller's setting), and two forwards on two host instances give the results
// each gives alone, against the float64 reference.
#include <catch2/catch.hpp>

#include "RingAttn_TestCase.hpp"

#include <kernels/detail/RingAttn_BlasThreads.hpp>

#include <future>
#include <random>
#include <thread>
#include <vector>

using namespace ringattn;
using namespace ringattn::test;

namespace {
/// A stand-in for the BLAS thread count: the switch's logic is the same for
/// every library, and this one is present in every build.
struct FakeThreads {
  static inline int value = 0;
  static int get() { return value; }
  static void set(int n) { value = n; }
};
} // namespace

TEST_CASE("the BLAS thread switch is shared by overlapping callers", "[threads]") {
  using Switch = Details::SharedScopedSetting<FakeThreads>;
  FakeThreads::value = 8;
  // A enters, B enters, A leaves while B still runs, then B leaves: B must
  // see one thread throughout, and the caller's 8 must come back at the end.
  // (A switch per caller fails both: A restores 8 under B, and B restores
  // the 1 it saved.)
  std::promise<void> a_in, b_in, a_out;
  int seen_by_b_after_a_left = -1;
  std::thread a([&] {
    {
      const Switch one(1);
      a_in.set_value();
      b_in.get_future().wait();
    }
    a_out.set_value();
  });
  std::thread b([&] {
    a_in.get_future().wait();
    {
      const Switch one(1);
      b_in.set_value();
      a_out.get_future().wait();
      seen_by_b_after_a_left = FakeThreads::get();
    }
  });
  a.join();
  b.join();
  CHECK(seen_by_b_after_a_left == 1);
  CHECK(FakeThreads::value == 8);

  // many callers at once, in any order: the setting is 1 while any runs
  std::vector<std::thread> callers;
  std::vector<int> seen(16, -1);
  for (int t = 0; t < 16; ++t)
    callers.emplace_back([&, t] {
      const Switch one(1);
      std::this_thread::yield();
      seen[t] = FakeThreads::get();
    });
  for (auto &c : callers) c.join();
  for (int t = 0; t < 16; ++t) CHECK(seen[t] == 1);
  CHECK(FakeThreads::value == 8);
}

#if KOKKOS_VERSION >= 40200
TEST_CASE("two host threads run forward at once", "[threads][attention]") {
  // Each thread has its own host instance (Kokkos 4 partitions the host
  // space; Kokkos 3 has one host instance, which two threads may not share).
  using Exec = Kokkos::DefaultHostExecutionSpace;
  using Mem = Exec::memory_space;
  const std::vector<Exec> instances = Kokkos::Experimental::partition_space(Exec(), 1, 1);
  std::mt19937_64 rng(20261201);
  std::vector<Problem> problems = {
      ProblemShape{768, false, true, Mixing::mixture, {}, {}, 4, 2, 32}.problem(rng),
      ProblemShape{640, true, false, Mixing::mixture, {64, 128}, {1, 2}, 4, 4, 64}.problem(rng)};
  auto upload = [](const std::vector<double> &x, const Problem &p, int heads) {
    Tensor4<float, Mem> view("x", p.B, p.N, heads, p.D);
    for (std::size_t i = 0; i < x.size(); ++i) view.data()[i] = float(x[i]);
    return view;
  };
  // every View is made before the threads start
  std::vector<Tensor4<float, Mem>> qs, ks, vs, outs;
  std::vector<Tensor3<float, Mem>> lses;
  for (const Problem &p : problems) {
    qs.push_back(upload(p.q, p, p.H));
    ks.push_back(upload(p.k, p, p.Hkv));
    vs.push_back(upload(p.v, p, p.Hkv));
    outs.emplace_back("o", p.B, p.N, p.H, p.D);
    lses.emplace_back("lse", p.B, p.H, p.N);
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t)
    threads.emplace_back([&, t] {
      const Problem &p = problems[t];
      RingOptions options;
      options.members = 2 + t;
      const RingAttention<Exec, float> attention(p.pattern(), options);
      for (int repeat = 0; repeat < 3; ++repeat)
        attention.forward(instances[t], qs[t], ks[t], vs[t], outs[t], lses[t]);
      instances[t].fence();
    });
  for (auto &t : threads) t.join();
  for (int t = 0; t < 2; ++t) {
    const Problem &p = problems[t];
    const Reference ref =
        reference_attention(p.literal(), p.B, p.D, p.effective_scale(), p.q, p.k, p.v);
    double err = 0;
    for (std::size_t i = 0; i < outs[t].size(); ++i)
      err = std::max(err, std::abs(double(outs[t].data()[i]) - ref.o[i]));
    for (std::size_t i = 0; i < lses[t].size(); ++i)
      err = std::max(err, std::abs(double(lses[t].data()[i]) - ref.lse[i]));
    INFO("thread " << t);
    CHECK(err <= 2e-5);
  }
}
#endif
