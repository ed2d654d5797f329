// The in-memory forward reads Q, K, V and writes O, LSE in place (docs/SPEC.md
// section 3, memory): what it allocates while it runs is counted through
// Kokkos' tools interface, and the result checked against the float64
// reference.
#include <catch2/catch.hpp>

#include "RingAttn_AllocationCount.hpp"
#include "RingAttn_BackwardReference.hpp"
#include "RingAttn_TestCase.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

using namespace ringattn;
using namespace ringattn::test;

namespace {

/// Host options for R members (zigzag for three), the host path's tiles
/// for head dim D or the portable kernel.
RingOptions members_options(int R, int D, bool portable) {
  RingOptions options;
  options.members = R;
  options.partition = R == 3 ? PartitionKind::zigzag : PartitionKind::contiguous;
  Tiling t = default_tiling<Kokkos::DefaultHostExecutionSpace>(D);
  t.portable = portable;
  options.tiling = t;
  return options;
}

/// The largest |x - want| over a contiguous view's values.
template <class View>
double max_error(const View &x, const std::vector<double> &want) {
  double err = 0;
  for (std::size_t i = 0; i < x.size(); ++i)
    err = std::max(err, std::abs(double(float(x.data()[i])) - want[i]));
  return err;
}

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
        const AllocationCount counting;
        attention.forward(q, k, v, o, lse);
        // only the schedule of a hop (tasks, work items): well below one tensor
        CHECK(AllocationCount::largest < smallest_tensor / 8);
      }
      CHECK(std::max(max_error(o, ref.o), max_error(lse, ref.lse)) <= 2e-5);
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
      const RingAttention<Exec, float> attention(p.pattern(), members_options(R, p.D, portable));
      Tensor4<float, Mem> o("o", p.B, p.N, p.H, p.D);
      Tensor3<float, Mem> lse("lse", p.B, p.H, p.N);
      {
        const AllocationCount counting;
        attention.forward(q, k, v, o, lse);
        CHECK(AllocationCount::largest < smallest_tensor / 8);
      }
      CHECK(std::max(max_error(o, ref.o), max_error(lse, ref.lse)) <= 2e-5);
    }
}

TEST_CASE("forward reads K and V whose rows lie at different pitches", "[attention][memory]") {
  // K a tensor of its own (rows Hkv D values apart), V a subview of a packed
  // projection (rows (H + 2 Hkv) D apart): every kernel steps each by its
  // own row pitch (the host tiles' leading dimensions), in float32 and in
  // 16 bits, against the float64 reference.
  using Exec = Kokkos::DefaultHostExecutionSpace;
  using Mem = Exec::memory_space;
  std::mt19937_64 rng(20261204);
  Problem p =
      ProblemShape{384, true, true, Mixing::mixture, {64, 128}, {1, 2}, 4, 2, 32}.problem(rng);
  const Reference ref =
      reference_attention(p.literal(), p.B, p.D, p.effective_scale(), p.q, p.k, p.v);
  const PackedQkv<Mem> packed(p);
  Tensor4<float, Mem> k("k", p.B, p.N, p.Hkv, p.D);
  Kokkos::deep_copy(k, packed.k);
  REQUIRE(k.stride_1() != packed.v.stride_1());
  // bfloat16 likewise, against the rounded inputs' reference: K of its own,
  // Q and V subviews of a packed projection
  using Half = bfloat16_t;
  const Problem h = rounded_to<Half>(p);
  const Reference href =
      reference_attention(h.literal(), h.B, h.D, h.effective_scale(), h.q, h.k, h.v);
  Kokkos::View<Half ****, Kokkos::LayoutRight, Mem> qkv("qkv", p.B, p.N, p.H + 2 * p.Hkv, p.D);
  Tensor4<Half, Mem> kh("kh", p.B, p.N, p.Hkv, p.D);
  for (std::int64_t b = 0; b < p.B; ++b)
    for (std::int64_t r = 0; r < p.N; ++r)
      for (int d = 0; d < p.D; ++d) {
        for (int x = 0; x < p.H; ++x)
          qkv(b, r, x, d) = Half(float(h.q[((b * p.N + r) * p.H + x) * p.D + d]));
        for (int g = 0; g < p.Hkv; ++g) {
          const std::size_t i = ((b * p.N + r) * p.Hkv + g) * p.D + d;
          kh(b, r, g, d) = Half(float(h.k[i]));
          qkv(b, r, p.H + p.Hkv + g, d) = Half(float(h.v[i]));
        }
      }
  const auto all = Kokkos::ALL;
  const auto qh = Kokkos::subview(qkv, all, all, Kokkos::make_pair(0, p.H), all);
  const auto vh =
      Kokkos::subview(qkv, all, all, Kokkos::make_pair(p.H + p.Hkv, p.H + 2 * p.Hkv), all);
  for (bool portable : {false, true})
    for (int R : {1, 3}) {
      INFO("R " << R << " portable " << portable);
      const RingOptions options = members_options(R, p.D, portable);
      Tensor4<float, Mem> o("o", p.B, p.N, p.H, p.D);
      Tensor3<float, Mem> lse("lse", p.B, p.H, p.N);
      RingAttention<Exec, float>(p.pattern(), options).forward(packed.q, k, packed.v, o, lse);
      CHECK(max_error(o, ref.o) <= 2e-5);
      Tensor4<Half, Mem> oh("oh", p.B, p.N, p.H, p.D);
      Tensor3<float, Mem> lseh("lseh", p.B, p.H, p.N);
      RingAttention<Exec, Half>(h.pattern(), options).forward(qh, kh, vh, oh, lseh);
      CHECK(max_error(oh, href.o) <= 1e-2);
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

TEST_CASE("the 16-bit host backward widens tiles, not tensors", "[backward][half][memory]") {
  // docs/backward.md, memory: with bfloat16 storage the host sweep widens Q
  // and dO a query tile at a time and K and V a key tile at a time in team
  // scratch, and a member whose rows are one run of the sequence reads its
  // Q, O and dO in place. The one-member backward then allocates the float
  // sums of dQ, dK and dV, Delta, the member's LSE, and one hop's wire
  // (16-bit K/V) with its float partial; a copy of Q, O or dO (B N H D
  // 16-bit values) or a float copy of K or V fails it.
  using Exec = Kokkos::DefaultHostExecutionSpace;
  using Mem = Exec::memory_space;
  using Half = bfloat16_t;
  std::mt19937_64 rng(20261205);
  for (bool causal : {false, true}) {
    const Problem p = rounded_to<Half>(
        ProblemShape{1024, false, causal, Mixing::mixture, {}, {}, 4, 4, 64}.problem(rng));
    INFO(p.describe());
    std::vector<double> dout = random_dout(rng, std::size_t(p.B) * p.N * p.H * p.D);
    for (double &e : dout) e = double(float(Half(e)));
    const Gradients ref =
        reference_gradients(p.literal(), p.B, p.D, p.effective_scale(), p.q, p.k, p.v, dout);
    auto upload = [&](const std::vector<double> &x, int heads, const char *label) {
      Tensor4<Half, Mem> view(std::string(label), p.B, p.N, heads, p.D);
      for (std::size_t i = 0; i < x.size(); ++i) view.data()[i] = Half(float(x[i]));
      return view;
    };
    const auto q = upload(p.q, p.H, "q"), k = upload(p.k, p.Hkv, "k"), v = upload(p.v, p.Hkv, "v"),
               d_o = upload(dout, p.H, "do");
    Tensor4<Half, Mem> o("o", p.B, p.N, p.H, p.D), dq("dq", p.B, p.N, p.H, p.D),
        dk("dk", p.B, p.N, p.Hkv, p.D), dv("dv", p.B, p.N, p.Hkv, p.D);
    Tensor3<float, Mem> lse("lse", p.B, p.H, p.N);
    const RingAttention<Exec, Half> attention(p.pattern(), members_options(1, p.D, false));
    attention.forward(q, k, v, o, lse);
    const std::int64_t rows = p.B * p.N, f = sizeof(float), h = sizeof(Half);
    const std::int64_t sums = rows * (p.H + 2 * p.Hkv) * p.D * f, delta_lse = 2 * rows * p.H * f;
    const std::int64_t wire = 2 * rows * p.Hkv * p.D * (h + f);
    const std::int64_t expected = sums + delta_lse + wire;
    {
      const AllocationCount counting;
      attention.backward(q, k, v, o, lse, d_o, dq, dk, dv);
      INFO("allocated " << AllocationCount::bytes << " bytes, expected " << expected);
      CHECK(AllocationCount::bytes <= expected + rows * p.H * p.D * h / 4);
    }
    auto scale_of = [](const std::vector<double> &g) {
      double m = 1;
      for (double x : g) m = std::max(m, std::abs(x));
      return m;
    };
    CHECK(max_error(dq, ref.dq) <= 2e-2 * scale_of(ref.dq));
    CHECK(max_error(dk, ref.dk) <= 2e-2 * scale_of(ref.dk));
    CHECK(max_error(dv, ref.dv) <= 2e-2 * scale_of(ref.dv));
  }
}
