// The in-memory forward reads Q, K, V and writes O, LSE in place (docs/SPEC.md
// section 3, memory): what it allocates while it runs is counted through
// Kokkos' tools interface, and the result checked against the float64
// reference.
#include <catch2/catch.hpp>

#include "RingAttn_AllocationCount.hpp"
#include "RingAttn_TestCase.hpp"

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>

using namespace ringattn;
using namespace ringattn::test;

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
        const AllocationCount counting;
        attention.forward(q, k, v, o, lse);
        // only the schedule of a hop (tasks, work items): well below one tensor
        CHECK(AllocationCount::largest < smallest_tensor / 8);
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
  const AllocationCount counting;
  Kokkos::View<float *, Kokkos::HostSpace> buffer("ringattn::probe", 1000);
  CHECK(AllocationCount::bytes >= std::int64_t(1000 * sizeof(float)));
}

TEST_CASE("forward reads Q, K and V as subviews of one packed projection", "[attention][memory]") {
  // A fused QKV projection [B, N, H + 2 Hkv, D]: Q, K and V are strided
  // subviews of it (rows (H + 2 Hkv) D values apart), read in place, with no
  // copy, by the host path and the portable kernel alike.
  using Exec = Kokkos::DefaultHostExecutionSpace;
  using Mem = Exec::memory_space;
  std::mt19937_64 rng(20261202);
  Problem p =
      ProblemShape{640, true, true, Mixing::mixture, {64, 128}, {1, 2}, 4, 2, 32}.problem(rng);
  const Reference ref =
      reference_attention(p.literal(), p.B, p.D, p.effective_scale(), p.q, p.k, p.v);
  const int width = p.H + 2 * p.Hkv;
  const PackedQkv<Mem> packed(p);
  const auto &q = packed.q, &k = packed.k, &v = packed.v;
  static_assert(std::is_same_v<PackedQkv<Mem>::Part::array_layout, Kokkos::LayoutStride>);
  REQUIRE(q.stride_1() == std::size_t(width * p.D));
  const std::int64_t smallest_tensor = std::int64_t(p.B * p.N * p.Hkv * p.D * sizeof(float));
  for (bool portable : {false, true})
    for (int R : {1, 3}) {
      INFO("R " << R << " portable " << portable);
      RingOptions options;
      options.members = R;
      options.partition = R == 3 ? PartitionKind::zigzag : PartitionKind::contiguous;
      Tiling t = default_tiling<Exec>(p.D);
      t.portable = portable;
      options.tiling = t;
      const RingAttention<Exec, float> attention(p.pattern(), options);
      Tensor4<float, Mem> o("o", p.B, p.N, p.H, p.D);
      Tensor3<float, Mem> lse("lse", p.B, p.H, p.N);
      {
        const AllocationCount counting;
        attention.forward(q, k, v, o, lse);
        CHECK(AllocationCount::largest < smallest_tensor / 8);
      }
      double err = 0;
      for (std::size_t i = 0; i < o.size(); ++i)
        err = std::max(err, std::abs(double(o.data()[i]) - ref.o[i]));
      for (std::size_t i = 0; i < lse.size(); ++i)
        err = std::max(err, std::abs(double(lse.data()[i]) - ref.lse[i]));
      CHECK(err <= 2e-5);
    }
}

TEST_CASE("forward refuses a head dim that is not contiguous", "[attention][errors]") {
  using Exec = Kokkos::DefaultHostExecutionSpace;
  using Mem = Exec::memory_space;
  const std::int64_t N = 64, H = 2, D = 8;
  const RingAttention<Exec, float> attention(Pattern::dense(N, H, H, false));
  Kokkos::View<float ****, Kokkos::LayoutLeft, Mem> q_left("q", 1, N, H, D);
  Tensor4<float, Mem> k("k", 1, N, H, D), v("v", 1, N, H, D), o("o", 1, N, H, D);
  Tensor3<float, Mem> lse("lse", 1, H, N);
  CHECK_THROWS_WITH(attention.forward(q_left, k, v, o, lse),
                    Catch::Contains("contiguous head dim"));
}
