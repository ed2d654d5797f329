// The in-memory forward reads Q, K, V and writes O, LSE in place (docs/SPEC.md
// section 3, memory): what it allocates while it runs is counted through
// Kokkos' tools interface, and the result checked against the float64
// reference.
#include <catch2/catch.hpp>

#include "RingAttn_TestCase.hpp"

#include <cstdint>
#include <cstring>
#include <random>
#include <string>

using namespace ringattn;
using namespace ringattn::test;

namespace {
/// Bytes of the allocations whose label starts with "ringattn" (the
/// library's own buffers; Kokkos' internal team scratch is not among them),
/// and the largest one, while a Counting is alive.
struct Counting {
  static inline std::int64_t bytes = 0, largest = 0;
  static void on_allocate(const Kokkos::Tools::SpaceHandle, const char *label, const void *,
                          const std::uint64_t size) {
    if (std::strncmp(label, "ringattn", 8) != 0) return;
    bytes += std::int64_t(size);
    largest = std::max(largest, std::int64_t(size));
  }
  Counting() {
    bytes = largest = 0;
    Kokkos::Tools::Experimental::set_allocate_data_callback(&on_allocate);
  }
  ~Counting() { Kokkos::Tools::Experimental::set_allocate_data_callback(nullptr); }
};
} // namespace

TEST_CASE("the in-memory forward copies none of the caller's tensors", "[attention][memory]") {
  using Exec = Kokkos::DefaultHostExecutionSpace;
  using Mem = Exec::memory_space;
  std::mt19937_64 rng(20261201);
  // LongNet-like dilated, GQA, causal: every path of the schedule
  Problem p =
      ProblemShape{1024, true, true, Mixing::mixture, {64, 128, 256}, {1, 2, 4}, 4, 2, 32}.problem(
          rng);
  const Reference ref =
      reference_attention(p.literal(), p.B, p.D, p.effective_scale(), p.q, p.k, p.v);
  auto upload = [&](const std::vector<double> &x, int heads) {
    Tensor4<float, Mem> view("q", p.B, p.N, heads, p.D);
    for (std::size_t i = 0; i < x.size(); ++i) view.data()[i] = float(x[i]);
    return view;
  };
  const auto q = upload(p.q, p.H), k = upload(p.k, p.Hkv), v = upload(p.v, p.Hkv);
  const std::int64_t smallest_tensor = std::int64_t(p.B * p.N * p.Hkv * p.D * sizeof(float));
  for (PartitionKind kind : {PartitionKind::contiguous, PartitionKind::zigzag})
    for (int R : {1, 4}) {
      INFO("R " << R << " zigzag " << (kind == PartitionKind::zigzag));
      RingOptions options;
      options.members = R;
      options.partition = kind;
      const RingAttention<Exec, float> attention(p.pattern(), options);
      Tensor4<float, Mem> o("o", p.B, p.N, p.H, p.D);
      Tensor3<float, Mem> lse("lse", p.B, p.H, p.N);
      {
        const Counting counting;
        attention.forward(q, k, v, o, lse);
        // only the schedule of a hop (tasks, work items): well below one tensor
        CHECK(Counting::largest < smallest_tensor / 8);
      }
      double err = 0;
      for (std::size_t i = 0; i < o.size(); ++i)
        err = std::max(err, std::abs(double(o.data()[i]) - ref.o[i]));
      for (std::size_t i = 0; i < lse.size(); ++i)
        err = std::max(err, std::abs(double(lse.data()[i]) - ref.lse[i]));
      CHECK(err <= 2e-5);
    }
}

TEST_CASE("allocation counting sees the library's buffers", "[attention][memory]") {
  // The counter itself: a labelled View of the library's kind is seen.
  const Counting counting;
  Kokkos::View<float *, Kokkos::HostSpace> buffer("ringattn::probe", 1000);
  CHECK(Counting::bytes >= std::int64_t(1000 * sizeof(float)));
}
