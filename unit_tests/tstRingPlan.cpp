// A ring plan (ring/RingAttn_RingPlan.hpp) is built once and reused: passes
// on one plan give the float64 reference's answer (forward and gradients)
// on new values each time, equal bitwise to the passes that build their
// own plan; a forward on a plan allocates nothing (counted through Kokkos'
// tools interface); a plan made for another shape, pattern or ring is
// refused.
#include <catch2/catch.hpp>

#include "RingAttn_AllocationCount.hpp"
#include "RingAttn_BackwardCase.hpp"

#include <cstdint>
#include <cstring>
#include <random>
#include <string>

using namespace ringattn;
using namespace ringattn::test;

namespace {

using Exec = Kokkos::DefaultHostExecutionSpace;
using Mem = Exec::memory_space;
using T4 = Tensor4<float, Mem>;

template <class Scalar = float>
Tensor4<Scalar, Mem> upload(const Problem &p, const std::vector<double> &x, int heads) {
  Tensor4<Scalar, Mem> view("t", std::size_t(p.B), std::size_t(p.N), std::size_t(heads),
                            std::size_t(p.D));
  for (std::size_t i = 0; i < x.size(); ++i) view.data()[i] = Scalar(float(x[i]));
  return view;
}

template <class Scalar>
double max_error(const Tensor4<Scalar, Mem> &x, const std::vector<double> &ref) {
  double err = 0;
  for (std::size_t i = 0; i < x.size(); ++i)
    err = std::max(err, std::abs(double(float(x.data()[i])) - ref[i]));
  return err;
}

bool same_bits(const T4 &a, const T4 &b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

} // namespace

TEST_CASE("a plan is reused: new values each pass, the reference's answers, no allocation",
          "[attention][ringplan]") {
  std::mt19937_64 rng(20261203);
  // LongNet-like dilated, GQA, causal: wires that expand, skipped hops
  const ProblemShape shape{768, true, true, Mixing::mixture, {64, 128, 256}, {1, 2, 4}, 4, 2, 32};
  for (const PartitionKind kind : {PartitionKind::contiguous, PartitionKind::zigzag})
    for (const int R : {1, 3}) {
      INFO("R " << R << " zigzag " << (kind == PartitionKind::zigzag));
      RingOptions options;
      options.members = R;
      options.partition = kind;
      const Problem first = shape.problem(rng);
      const RingAttention<Exec, float> attention(first.pattern(), options);
      const auto plan = attention.make_plan(first.B, first.D);
      REQUIRE(plan.members() == R);
      CHECK(plan.schedule_bytes() > 0);
      for (int pass = 0; pass < 3; ++pass) {
        INFO("pass " << pass);
        const Problem p = pass == 0 ? first : shape.problem(rng); // new values, same pattern
        const Reference ref =
            reference_attention(p.literal(), p.B, p.D, p.effective_scale(), p.q, p.k, p.v);
        const T4 q = upload(p, p.q, p.H), k = upload(p, p.k, p.Hkv), v = upload(p, p.v, p.Hkv);
        T4 o("o", p.B, p.N, p.H, p.D), o_own("o_own", p.B, p.N, p.H, p.D);
        Tensor3<float, Mem> lse("lse", p.B, p.H, p.N), lse_own("lse_own", p.B, p.H, p.N);
        {
          const AllocationCount counting;
          attention.forward(plan, q, k, v, o, lse);
          CHECK(AllocationCount::count == 0); // float: the plan holds all a pass needs
        }
        attention.forward(q, k, v, o_own, lse_own); // builds its own plan
        CHECK(same_bits(o, o_own));
        CHECK(std::memcmp(lse.data(), lse_own.data(), lse.size() * sizeof(float)) == 0);
        CHECK(max_error(o, ref.o) <= 2e-5);

        const std::vector<double> dout = random_dout(rng, std::size_t(p.B) * p.N * p.H * p.D);
        const Gradients g =
            reference_gradients(p.literal(), p.B, p.D, p.effective_scale(), p.q, p.k, p.v, dout);
        const T4 d_o = upload(p, dout, p.H);
        T4 dq("dq", p.B, p.N, p.H, p.D), dk("dk", p.B, p.N, p.Hkv, p.D),
            dv("dv", p.B, p.N, p.Hkv, p.D);
        T4 dq_own("dq", p.B, p.N, p.H, p.D), dk_own("dk", p.B, p.N, p.Hkv, p.D),
            dv_own("dv", p.B, p.N, p.Hkv, p.D);
        attention.backward(plan, q, k, v, o, lse, d_o, dq, dk, dv);
        attention.backward(q, k, v, o, lse, d_o, dq_own, dk_own, dv_own);
        CHECK(same_bits(dq, dq_own));
        CHECK(same_bits(dk, dk_own));
        CHECK(same_bits(dv, dv_own));
        CHECK(max_error(dq, g.dq) <= 1e-4);
        CHECK(max_error(dk, g.dk) <= 1e-4);
        CHECK(max_error(dv, g.dv) <= 1e-4);
      }
    }
}

TEST_CASE("a 16-bit plan keeps its float running O: later passes allocate nothing",
          "[attention][ringplan][half]") {
  // bfloat16 storage keeps the running O in float32 (docs/SPEC.md section 1):
  // the whole rows where members receive (zigzag), a chunk of rows where a
  // member's own block is its only one (contiguous, segments within the
  // share). The plan makes these on its first forward; later passes on the
  // plan allocate nothing, and equal, bit for bit, a pass that builds its
  // own plan and the float64 reference (inputs rounded) within 1e-2.
  using B16 = bfloat16_t;
  using H4 = Tensor4<B16, Mem>;
  std::mt19937_64 rng(20261205);
  const ProblemShape shape{1024, true, true, Mixing::mixture, {128, 256}, {1, 2}, 4, 2, 32};
  for (const PartitionKind kind : {PartitionKind::contiguous, PartitionKind::zigzag}) {
    INFO("zigzag " << (kind == PartitionKind::zigzag));
    RingOptions options;
    options.members = 2;
    options.partition = kind;
    const Problem first = rounded_to<B16>(shape.problem(rng));
    const RingAttention<Exec, B16> attention(first.pattern(), options);
    const auto plan = attention.make_plan(first.B, first.D);
    for (int pass = 0; pass < 3; ++pass) {
      INFO("pass " << pass);
      const Problem p = pass == 0 ? first : rounded_to<B16>(shape.problem(rng));
      const Reference ref =
          reference_attention(p.literal(), p.B, p.D, p.effective_scale(), p.q, p.k, p.v);
      const H4 q = upload<B16>(p, p.q, p.H), k = upload<B16>(p, p.k, p.Hkv),
               v = upload<B16>(p, p.v, p.Hkv);
      H4 o("o", p.B, p.N, p.H, p.D), o_own("o_own", p.B, p.N, p.H, p.D);
      Tensor3<float, Mem> lse("lse", p.B, p.H, p.N), lse_own("lse_own", p.B, p.H, p.N);
      {
        const AllocationCount counting;
        attention.forward(plan, q, k, v, o, lse);
        if (pass > 0) CHECK(AllocationCount::count == 0);
      }
      attention.forward(q, k, v, o_own, lse_own);
      CHECK(std::memcmp(o.data(), o_own.data(), o.size() * sizeof(B16)) == 0);
      CHECK(std::memcmp(lse.data(), lse_own.data(), lse.size() * sizeof(float)) == 0);
      CHECK(max_error(o, ref.o) <= 1e-2);
    }
  }
}

TEST_CASE("a plan made for another shape, pattern or ring is refused", "[attention][ringplan]") {
  std::mt19937_64 rng(20261204);
  const Problem p =
      ProblemShape{256, true, false, Mixing::mixture, {64, 128}, {1, 2}, 4, 2, 16}.problem(rng);
  const T4 q = upload(p, p.q, p.H), k = upload(p, p.k, p.Hkv), v = upload(p, p.v, p.Hkv);
  T4 o("o", p.B, p.N, p.H, p.D);
  Tensor3<float, Mem> lse("lse", p.B, p.H, p.N);
  RingOptions options;
  options.members = 2;
  const RingAttention<Exec, float> attention(p.pattern(), options);

  // another head dim
  CHECK_THROWS_AS(attention.forward(attention.make_plan(p.B, p.D * 2), q, k, v, o, lse),
                  std::invalid_argument);
  // another ring size
  RingOptions four = options;
  four.members = 4;
  const RingAttention<Exec, float> other_ring(p.pattern(), four);
  CHECK_THROWS_AS(attention.forward(other_ring.make_plan(p.B, p.D), q, k, v, o, lse),
                  std::invalid_argument);
  // another pattern (causal)
  Pattern causal = p.pattern();
  causal.causal = !causal.causal;
  const RingAttention<Exec, float> other_pattern(causal, options);
  CHECK_THROWS_AS(attention.forward(other_pattern.make_plan(p.B, p.D), q, k, v, o, lse),
                  std::invalid_argument);
  // an empty plan
  CHECK_THROWS_AS(attention.forward(RingPlan<Exec, float>(), q, k, v, o, lse),
                  std::invalid_argument);
  CHECK_THROWS_AS(attention.make_plan(p.B, 0), std::invalid_argument);
  // its own plan runs
  CHECK_NOTHROW(attention.forward(attention.make_plan(p.B, p.D), q, k, v, o, lse));
}
