// The attention core (SPEC 1-2) against the float64 brute-force reference,
// on every enabled backend, single member and simulated ring.
#include <catch2/catch.hpp>

#include "RingAttn_TestCase.hpp"
#include "RingAttn_TestSpaces.hpp"

#include <cmath>
#include <initializer_list>
#include <limits>
#include <random>

using namespace ringattn;
using namespace ringattn::test;

namespace {
constexpr double tol_float = 2e-5; // issue: float32 inputs in [-1, 1), D <= 128

template <class ExecSpace, class Scalar>
void check_against_reference(const Problem &p, const RingOptions &options, double tol) {
  INFO(p.describe());
  const Reference ref =
      reference_attention(p.literal(), p.B, p.D, p.effective_scale(), p.q, p.k, p.v);
  const Output out = run_api<ExecSpace, Scalar>(p, options);
  CHECK(max_abs_error(out.o, ref.o) <= tol);
  CHECK(max_abs_error(out.lse, ref.lse) <= tol);
}
/// Simulated rings of each size in `members`, both partitions: equal to the
/// single member within 1e-5 and to the float64 reference within 2e-5.
template <class ExecSpace>
void check_rings(const Problem &p, const Reference &ref, const Output &single,
                 std::initializer_list<int> members) {
  for (PartitionKind kind : {PartitionKind::contiguous, PartitionKind::zigzag})
    for (int R : members) {
      INFO("R=" << R << (kind == PartitionKind::zigzag ? " zigzag" : " contiguous"));
      RingOptions opts;
      opts.partition = kind;
      opts.members = R;
      const Output ring = run_api<ExecSpace, float>(p, opts);
      CHECK(max_abs_error(ring.o, single.o) <= 1e-5);
      CHECK(max_abs_error(ring.lse, single.lse) <= 1e-5);
      CHECK(max_abs_error(ring.o, ref.o) <= tol_float);
      CHECK(max_abs_error(ring.lse, ref.lse) <= tol_float);
    }
}
} // namespace

TEMPLATE_LIST_TEST_CASE("random shapes and patterns match the float64 reference",
                        "[attention][backend]", ExecSpaces) {
  std::mt19937_64 rng(20261126);
  for (int trial = 0; trial < 60; ++trial) {
    const Problem p = random_problem(rng, trial < 40 ? 40 : 300);
    check_against_reference<TestType, float>(p, {}, tol_float);
  }
}

TEMPLATE_LIST_TEST_CASE("the portable kernel matches the reference where a fast path exists",
                        "[attention][backend]", ExecSpaces) {
  // Host spaces take the CBLAS path for float by default; force the portable
  // kernel, with small tiles so that tile edges are crossed often.
  std::mt19937_64 rng(31337);
  RingOptions options;
  Tiling tiling = default_tiling<TestType>(64);
  tiling.portable = true;
  tiling.q_tile = 16;
  tiling.k_tile = 32;
  options.tiling = tiling;
  for (int trial = 0; trial < 40; ++trial) {
    const Problem p = random_problem(rng, trial < 30 ? 60 : 400);
    check_against_reference<TestType, float>(p, options, tol_float);
  }
}

TEMPLATE_LIST_TEST_CASE("the host fast path at tiles that do not divide N or each other",
                        "[attention][backend]", ExecSpaces) {
  // Causal tiles cut their keys at the tile's last query (the diagonal tile
  // is narrower than k_tile); query tiles wider and narrower than key tiles
  // put the diagonal at every offset inside a key tile. Dense and dilated.
  std::mt19937_64 rng(424242);
  for (const auto &[qt, kt] : {std::pair{24, 40}, std::pair{40, 24}, std::pair{7, 64},
                               std::pair{128, 256}, std::pair{128, 1024}, std::pair{256, 256}}) {
    RingOptions options;
    Tiling tiling = default_tiling<TestType>(64);
    tiling.q_tile = qt;
    tiling.k_tile = kt;
    options.tiling = tiling;
    for (int trial = 0; trial < 8; ++trial) {
      Problem p = random_problem(rng, 700);
      p.causal = trial % 4 != 3;
      p.fill(rng);
      INFO("q_tile " << qt << " k_tile " << kt);
      check_against_reference<TestType, float>(p, options, tol_float);
    }
  }
}

TEMPLATE_LIST_TEST_CASE("long sequences, ragged segments, tile boundaries", "[attention][backend]",
                        ExecSpaces) {
  std::mt19937_64 rng(7);
  struct Shape {
    std::int64_t N;
    bool dilated, causal;
    Mixing mixing;
    std::vector<std::int64_t> w, r;
    int H, Hkv, D;
  };
  const Shape shapes[] = {
      {2000, false, true, Mixing::mixture, {}, {}, 2, 1, 64},
      {1500, false, false, Mixing::mixture, {}, {}, 1, 1, 128},
      {3001, true, false, Mixing::mixture, {100, 300, 1000}, {1, 3, 10}, 4, 2, 16},
      {2500, true, true, Mixing::head_groups, {129, 511, 2048}, {1, 7, 2048}, 5, 5, 32},
      {1025, true, true, Mixing::mixture, {1025}, {1}, 2, 2, 64},
  };
  for (const Shape &s : shapes) {
    Problem p;
    p.N = s.N;
    p.dilated = s.dilated;
    p.causal = s.causal;
    p.mixing = s.mixing;
    p.w = s.w;
    p.r = s.r;
    p.H = s.H;
    p.Hkv = s.Hkv;
    p.D = s.D;
    p.fill(rng);
    check_against_reference<TestType, float>(p, {}, tol_float);
  }
}

TEMPLATE_LIST_TEST_CASE("float64 storage computes in float64", "[attention][backend]", ExecSpaces) {
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 10; ++trial) {
    const Problem p = random_problem(rng, 120);
    check_against_reference<TestType, double>(p, {}, 1e-12);
  }
}

TEMPLATE_LIST_TEST_CASE("rows that see no key give O = 0 and LSE = -inf, never NaN",
                        "[attention][backend]", ExecSpaces) {
  // head_groups with r = w: group g sees only phase g % r of each segment,
  // so most rows of each head see nothing.
  Problem p;
  p.N = 50;
  p.H = 3;
  p.Hkv = 3;
  p.D = 8;
  p.dilated = true;
  p.mixing = Mixing::head_groups;
  p.w = {4, 6, 10};
  p.r = {4, 6, 10};
  p.causal = true;
  std::mt19937_64 rng(3);
  p.fill(rng);
  const Output out = run_api<TestType, float>(p);
  int empty_rows = 0;
  for (int h = 0; h < p.H; ++h)
    for (std::int64_t t = 0; t < p.N; ++t) {
      const double l = out.lse[h * p.N + t];
      REQUIRE(!std::isnan(l));
      if (std::isinf(l)) {
        REQUIRE(l < 0);
        ++empty_rows;
        for (int d = 0; d < p.D; ++d) REQUIRE(out.o[(t * p.H + h) * p.D + d] == 0.0);
      }
    }
  CHECK(empty_rows > p.N);
  check_against_reference<TestType, float>(p, {}, tol_float);
}

TEMPLATE_LIST_TEST_CASE("large logits (scores near 1e4) do not overflow", "[attention][backend]",
                        ExecSpaces) {
  Problem p;
  p.N = 300;
  p.H = 2;
  p.Hkv = 1;
  p.D = 16;
  p.causal = true;
  p.scale = 100.0; // |scale * q.k| up to 100 * 4 * 4 * 16 ~ 2.5e4
  std::mt19937_64 rng(5);
  p.fill(rng, 4.0);
  const Reference ref =
      reference_attention(p.literal(), p.B, p.D, p.effective_scale(), p.q, p.k, p.v);
  double max_lse = 0;
  for (double l : ref.lse) max_lse = std::max(max_lse, l);
  CHECK(max_lse > 5e3);
  const Output out = run_api<TestType, float>(p);
  // No overflow, no NaN; the float32 rounding of a score of size 1e4 is
  // ~1e-3, which bounds the error of both O and LSE (relative 1e-7).
  CHECK(max_abs_error(out.o, ref.o) <= 5e-3);
  CHECK(max_abs_error(out.lse, ref.lse) <= 1e4 * 1e-6);
}

TEMPLATE_LIST_TEST_CASE("simulated ring equals the single member for every R and partition",
                        "[ring][backend]", ExecSpaces) {
  std::mt19937_64 rng(99);
  for (int trial = 0; trial < 12; ++trial) {
    const Problem p = random_problem(rng, 200);
    INFO(p.describe());
    const Reference ref =
        reference_attention(p.literal(), p.B, p.D, p.effective_scale(), p.q, p.k, p.v);
    const Output single = run_api<TestType, float>(p);
    check_rings<TestType>(p, ref, single, {2, 3, 8, 16});
  }
}

TEMPLATE_LIST_TEST_CASE("simulated ring on dense, dilated, causal and GQA cases", "[ring][backend]",
                        ExecSpaces) {
  for (const Problem &p : standard_problems()) {
    INFO(p.describe());
    const Reference ref =
        reference_attention(p.literal(), p.B, p.D, p.effective_scale(), p.q, p.k, p.v);
    const Output single = run_api<TestType, float>(p);
    CHECK(max_abs_error(single.o, ref.o) <= tol_float);
    CHECK(max_abs_error(single.lse, ref.lse) <= tol_float);
    check_rings<TestType>(p, ref, single, {1, 2, 3, 8, 16});
  }
}

TEST_CASE("log-sum-exp merge is NaN-free and exact", "[merge]") {
  const double ninf = -std::numeric_limits<double>::infinity();
  auto m = lse_merge<double>(ninf, ninf);
  CHECK(m.lse == ninf);
  CHECK(m.wa == 1.0);
  CHECK(m.wb == 0.0);
  m = lse_merge<double>(ninf, 2.0);
  CHECK(m.lse == 2.0);
  CHECK(m.wb == 1.0);
  m = lse_merge<double>(std::log(3.0), std::log(5.0));
  CHECK(m.lse == Approx(std::log(8.0)));
  CHECK(m.wa == Approx(3.0 / 8.0));
  m = lse_merge<double>(1e4, -1e4);
  CHECK(m.lse == 1e4);
  CHECK(m.wb == 0.0);
}

TEST_CASE("vectorizable exp matches std::exp on x <= 0", "[merge]") {
  for (double x = -100; x <= 0; x += 0.01) {
    const float e = Details::exp_nonpositive(float(x));
    const double ref = std::exp(double(float(x)));
    REQUIRE(std::abs(e - ref) <= 4e-7 * ref + 2e-38); // flushed to 0 below ~1e-38
  }
  CHECK(Details::exp_nonpositive(-std::numeric_limits<float>::infinity()) == 0.0f);
  CHECK(Details::exp_nonpositive(0.0f) == 1.0f);
}

TEMPLATE_LIST_TEST_CASE("huge segment lengths and rates through the ring", "[attention][backend]",
                        ExecSpaces) {
  Problem p;
  p.N = 64;
  p.H = 3;
  p.Hkv = 1;
  p.D = 8;
  p.dilated = true;
  p.w = {INT64_MAX, std::int64_t(1) << 62};
  p.r = {INT64_MAX, std::int64_t(1) << 31};
  std::mt19937_64 rng(17);
  p.fill(rng);
  for (bool causal : {false, true}) {
    p.causal = causal;
    for (int R : {1, 3}) {
      RingOptions opts;
      opts.members = R;
      check_against_reference<TestType, float>(p, opts, tol_float);
    }
  }
}

TEMPLATE_LIST_TEST_CASE("work beyond one launch's league is launched in turns",
                        "[attention][backend]", ExecSpaces) {
  // Kokkos leagues are int: batch x work items past max_league_size (INT_MAX
  // by default) run as several launches. A tiny limit forces many turns,
  // for the portable kernel and the host fast path.
  std::mt19937_64 rng(2147483647);
  Problem p;
  p.B = 3;
  p.N = 150;
  p.H = 4;
  p.Hkv = 2;
  p.D = 16;
  p.dilated = true;
  p.causal = true;
  p.w = {40, 150};
  p.r = {2, 3};
  p.fill(rng);
  for (bool portable : {false, true})
    for (std::int64_t league : {1, 5, 7}) {
      Tiling tiling = default_tiling<TestType>(p.D);
      tiling.portable = portable;
      tiling.q_tile = 8;
      tiling.max_league_size = league;
      RingOptions options;
      options.tiling = tiling;
      options.members = 2;
      INFO("portable " << portable << " max_league_size " << league);
      check_against_reference<TestType, float>(p, options, tol_float);
    }
}
