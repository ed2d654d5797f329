// The attention core (docs/SPEC.md sections 1-2) against the float64 brute-force reference,
// on every enabled backend, single member and simulated ring.
#include <catch2/catch.hpp>

#include "RingAttn_TestCase.hpp"
#include "RingAttn_TestSpaces.hpp"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <random>
#include <utility>
#include <vector>

using namespace ringattn;
using namespace ringattn::test;

namespace {
constexpr double tol_float = 2e-5; // docs/SPEC.md section 1: float32 inputs in [-1, 1), D <= 128

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
  options.tiling = small_portable_tiles<TestType>();
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

TEST_CASE("the host's AVX-512 tile and its sgemm tile both match the reference",
          "[attention][avx512]") {
  // Both host fast paths forced (Tiling::host_avx512 on and off), at tiles
  // that cut the AVX-512 path's column blocks (48 queries) and micro-tiles
  // (8 keys, 8 dims) anywhere: query tiles below, at and above 48, key
  // tiles not a multiple of 8, head dims from one micro-tile to 17.
  using Host = Kokkos::DefaultHostExecutionSpace;
  if (!Details::host_avx512_available())
    WARN("this build does not target AVX-512: only the sgemm tile is checked");
  std::mt19937_64 rng(8128);
  const std::pair<int, int> tiles[] = {{7, 5}, {48, 8}, {50, 13}, {96, 128}, {768, 128}};
  for (int trial = 0; trial < 30; ++trial) {
    Problem p = random_problem(rng, 500);
    const int dims[] = {8, 16, 40, 64, 128, 136};
    p.D = dims[trial % 6];
    p.fill(rng);
    const auto [qt, kt] = tiles[trial % 5];
    for (bool avx512 : {true, false}) {
      INFO("q_tile " << qt << " k_tile " << kt << (avx512 ? " AVX-512" : " sgemm"));
      Tiling tiling = default_tiling<Host>(p.D);
      tiling.host_avx512 = avx512;
      tiling.q_tile = qt;
      tiling.k_tile = kt;
      RingOptions options;
      options.tiling = tiling;
      options.members = trial % 3 == 0 ? 3 : 1;
      options.partition = trial % 2 ? PartitionKind::zigzag : PartitionKind::contiguous;
      check_against_reference<Host, float>(p, options, tol_float);
    }
  }
}

TEMPLATE_LIST_TEST_CASE("long sequences, ragged segments, tile boundaries", "[attention][backend]",
                        ExecSpaces) {
  std::mt19937_64 rng(7);
  const ProblemShape shapes[] = {
      {2000, false, true, Mixing::mixture, {}, {}, 2, 1, 64},
      {1500, false, false, Mixing::mixture, {}, {}, 1, 1, 128},
      {3001, true, false, Mixing::mixture, {100, 300, 1000}, {1, 3, 10}, 4, 2, 16},
      {2500, true, true, Mixing::head_groups, {129, 511, 2048}, {1, 7, 2048}, 5, 5, 32},
      {1025, true, true, Mixing::mixture, {1025}, {1}, 2, 2, 64},
  };
  for (const ProblemShape &s : shapes) {
    const Problem p = s.problem(rng);
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
  auto m = Details::lse_merge<double>(ninf, ninf);
  CHECK(m.lse == ninf);
  CHECK(m.wa == 1.0);
  CHECK(m.wb == 0.0);
  m = Details::lse_merge<double>(ninf, 2.0);
  CHECK(m.lse == 2.0);
  CHECK(m.wb == 1.0);
  m = Details::lse_merge<double>(std::log(3.0), std::log(5.0));
  CHECK(m.lse == Approx(std::log(8.0)));
  CHECK(m.wa == Approx(3.0 / 8.0));
  m = Details::lse_merge<double>(1e4, -1e4);
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

#ifdef RINGATTN_ENABLE_BLAS
TEST_CASE("the host path's base-2 exp matches std::exp2 on x <= 0", "[merge]") {
  for (double x = -130; x <= 0; x += 0.001) {
    const float e = Details::exp2_nonpositive_host(float(x));
    const double ref = std::exp2(double(float(x)));
    // relative error 1.9e-7 at most; flushed to 0 within 1/2 of 2^-127
    REQUIRE(std::abs(e - ref) <= 3e-7 * ref + 1.2e-38);
  }
  CHECK(Details::exp2_nonpositive_host(0.0f) == 1.0f);
  CHECK(Details::exp2_nonpositive_host(-1.0f) == 0.5f);
  CHECK(Details::exp2_nonpositive_host(-127.0f) == 0.0f);
  CHECK(Details::exp2_nonpositive_host(-1e30f) == 0.0f);
  CHECK(Details::exp2_nonpositive_host(-std::numeric_limits<float>::infinity()) == 0.0f);
  CHECK(Details::exp2_nonpositive_host(std::numeric_limits<float>::quiet_NaN()) == 0.0f);
}
#endif

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

#ifdef KOKKOS_ENABLE_OPENMP
TEST_CASE("the portable kernel in its GPU shape (team size and vector length above 1) on OpenMP",
          "[attention][openmp]") {
  // What default_tiling gives a GPU (tiles 32 x 32 with 32 vector lanes and
  // 8 threads per team up to D = 64; 16 x 16 with 16 lanes at D = 128), the
  // team cut to the host's threads. OpenMP runs the vector lanes one after
  // another, but the TeamThreadRange splits over several threads, the team
  // barriers between tiles and the ThreadVectorRange loops and reductions
  // all execute, as they do on a GPU.
  using Exec = Kokkos::OpenMP;
  const int threads = int(Exec().concurrency());
  if (threads < 2) {
    WARN("OpenMP has " << threads
                       << " thread; a team of several threads needs OMP_NUM_THREADS >= 2");
    return;
  }
  std::vector<Problem> problems = standard_problems();
  std::mt19937_64 rng(8187);
  for (int trial = 0; trial < 12; ++trial) problems.push_back(random_problem(rng, 200));
  for (const auto &[tile, lanes] : {std::pair{32, 32}, std::pair{16, 16}}) {
    Tiling tiling;
    tiling.portable = true;
    tiling.q_tile = tile;
    tiling.k_tile = tile;
    tiling.vector_length = lanes;
    tiling.team_size = std::min(256 / lanes < tile ? 256 / lanes : tile, threads);
    REQUIRE(tiling.team_size > 1);
    RingOptions options;
    options.tiling = tiling;
    for (const Problem &p : problems) {
      INFO("tiles " << tile << " x " << tile << ", team " << tiling.team_size << " x " << lanes
                    << " lanes");
      check_against_reference<Exec, float>(p, options, tol_float);
      check_against_reference<Exec, double>(p, options, 1e-12);
      RingOptions ring = options;
      ring.members = 3;
      ring.partition = PartitionKind::zigzag;
      check_against_reference<Exec, float>(p, ring, tol_float);
    }
  }
}
#endif

namespace {
/// Runs p (float or double, with `options`) and checks the rule of
/// docs/reliability.md: rows (t, h) with `poisoned(t, h)` have O and LSE all
/// NaN; every other row is finite and equals the float64 reference.
template <class ExecSpace, class Scalar, class Poisoned>
void check_nonfinite_rule(const Problem &p, const RingOptions &options, double tol,
                          const Poisoned &poisoned) {
  INFO(p.describe() << (options.tiling && options.tiling->portable ? " portable" : "")
                    << " members " << options.members << " scalar " << sizeof(Scalar));
  const Reference ref =
      reference_attention(p.literal(), p.B, p.D, p.effective_scale(), p.q, p.k, p.v);
  const Output out = run_api<ExecSpace, Scalar>(p, options);
  int nan_rows = 0, bad = 0;
  double err = 0;
  for (int h = 0; h < p.H; ++h)
    for (std::int64_t t = 0; t < p.N; ++t) {
      const double l = out.lse[h * p.N + t];
      const double *o = &out.o[(t * p.H + h) * p.D];
      if (poisoned(t, h)) {
        ++nan_rows;
        bool all_nan = std::isnan(l);
        for (int d = 0; d < p.D; ++d) all_nan = all_nan && std::isnan(o[d]);
        if (!all_nan) {
          ++bad;
          UNSCOPED_INFO("row t=" << t << " h=" << h << " should be NaN, LSE " << l);
        }
      } else {
        bool finite = std::isfinite(l);
        for (int d = 0; d < p.D; ++d) finite = finite && std::isfinite(o[d]);
        if (!finite) {
          ++bad;
          UNSCOPED_INFO("row t=" << t << " h=" << h << " should be finite, LSE " << l);
          continue;
        }
        err = std::max(err, std::abs(l - ref.lse[h * p.N + t]));
        for (int d = 0; d < p.D; ++d)
          err = std::max(err, std::abs(o[d] - ref.o[(t * p.H + h) * p.D + d]));
      }
    }
  CHECK(nan_rows > 0);
  CHECK(bad == 0);
  CHECK(err <= tol);
}

/// Every kernel path of ExecSpace: the default (the host fast path for float
/// on a host space: its AVX-512 tile where built for AVX-512), its sgemm
/// tile, the portable kernel forced, and a simulated ring of 3
/// (NaN carried through the merges), in float and double.
template <class ExecSpace, class Poisoned>
void check_nonfinite_everywhere(const Problem &p, const Poisoned &poisoned) {
  Tiling portable = default_tiling<ExecSpace>(p.D);
  portable.portable = true;
  portable.q_tile = 8;
  portable.k_tile = 16;
  // the host's sgemm tile, where the AVX-512 tile is the default
  Tiling sgemm = default_tiling<ExecSpace>(p.D);
  sgemm.host_avx512 = false;
  RingOptions fast, forced, ring, fast_sgemm;
  forced.tiling = portable;
  fast_sgemm.tiling = sgemm;
  ring.members = 3;
  ring.partition = PartitionKind::zigzag;
  for (const RingOptions &o : {fast, forced, ring, fast_sgemm}) {
    check_nonfinite_rule<ExecSpace, float>(p, o, tol_float, poisoned);
    check_nonfinite_rule<ExecSpace, double>(p, o, 1e-12, poisoned);
    // bfloat16 (inputs rounded to it; NaN and +-inf are exact): the host
    // path's AMX kernel where the CPU has it, else its widened tiles
    check_nonfinite_rule<ExecSpace, bfloat16_t>(rounded_to<bfloat16_t>(p), o, 1e-2, poisoned);
  }
}
} // namespace

TEMPLATE_LIST_TEST_CASE("a NaN or +inf score makes its row NaN, a -inf score weighs 0",
                        "[attention][backend][nonfinite]", ExecSpaces) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  // Dense causal, two heads on their own kv heads, and a dilated mixture.
  for (bool dilated : {false, true}) {
    Problem p = make_problem(45, 2, 2, 8, true, dilated, Mixing::mixture, {12, 45}, {1, 3}, 11);
    auto qi = [&](std::int64_t t, int h, int d) { return std::size_t((t * p.H + h) * p.D + d); };
    auto ki = [&](std::int64_t u, int g, int d) { return std::size_t((u * p.Hkv + g) * p.D + d); };
    const auto literal = p.literal();
    auto sees = [&](std::int64_t t, std::int64_t u, int h) {
      for (std::size_t i = 0; i < literal.w.size(); ++i)
        if (literal.keeps(t, u, h, int(i))) return true;
      return false;
    };
    SECTION(std::string("NaN in a query row") + (dilated ? ", dilated" : "")) {
      p.q[qi(20, 1, 3)] = nan; // every score of row (20, 1)
      check_nonfinite_everywhere<TestType>(
          p, [&](std::int64_t t, int h) { return t == 20 && h == 1; }); // it sees itself at least
    }
    SECTION(std::string("NaN in a key row") + (dilated ? ", dilated" : "")) {
      p.k[ki(6, 0, 2)] = nan; // rows of head 0 that see key 6
      check_nonfinite_everywhere<TestType>(
          p, [&](std::int64_t t, int h) { return h == 0 && sees(t, 6, h); });
    }
    SECTION(std::string("+inf scores") + (dilated ? ", dilated" : "")) {
      for (int d = 0; d < p.D; ++d) p.q[qi(30, 0, d)] = 0;
      p.q[qi(30, 0, 0)] = inf; // scores +inf or -inf by the sign of k[u, 0, 0]
      for (std::int64_t u = 0; u < p.N; ++u) p.k[ki(u, 0, 0)] = u % 2 ? 0.5 : -0.5;
      check_nonfinite_everywhere<TestType>(p, [&](std::int64_t t, int h) {
        bool plus_inf = false; // row (30, 0) sees an odd key
        for (std::int64_t u = 1; u < p.N; u += 2) plus_inf = plus_inf || sees(t, u, h);
        return t == 30 && h == 0 && plus_inf;
      });
    }
    SECTION(std::string("-inf scores weigh 0") + (dilated ? ", dilated" : "")) {
      // q[., 0, 0] > 0 and k[5, 0, 0] = -inf: key 5 scores -inf for head 0.
      for (std::int64_t t = 0; t < p.N; ++t)
        p.q[qi(t, 0, 0)] = 0.25 + 0.5 * std::abs(p.q[qi(t, 0, 0)]);
      p.k[ki(5, 0, 0)] = -inf;
      // Nothing is poisoned; rows equal the reference, which gives key 5
      // weight exp(-inf) = 0. (nan_rows > 0 is not expected here.)
      const Reference ref =
          reference_attention(p.literal(), p.B, p.D, p.effective_scale(), p.q, p.k, p.v);
      Tiling portable = default_tiling<TestType>(p.D);
      portable.portable = true;
      RingOptions fast, forced, ring;
      forced.tiling = portable;
      ring.members = 3;
      for (const RingOptions &o : {fast, forced, ring}) {
        CHECK(max_abs_error(run_api<TestType, float>(p, o).o, ref.o) <= tol_float);
        CHECK(max_abs_error(run_api<TestType, float>(p, o).lse, ref.lse) <= tol_float);
        CHECK(max_abs_error(run_api<TestType, double>(p, o).o, ref.o) <= 1e-12);
        CHECK(max_abs_error(run_api<TestType, double>(p, o).lse, ref.lse) <= 1e-12);
        const Problem p16 = rounded_to<bfloat16_t>(p);
        const Reference ref16 = reference_attention(p16.literal(), p16.B, p16.D,
                                                    p16.effective_scale(), p16.q, p16.k, p16.v);
        CHECK(max_abs_error(run_api<TestType, bfloat16_t>(p16, o).o, ref16.o) <= 1e-2);
        CHECK(max_abs_error(run_api<TestType, bfloat16_t>(p16, o).lse, ref16.lse) <= 1e-3);
      }
    }
  }
}

TEST_CASE("a tiling whose tiles overflow team scratch is refused", "[attention][options]") {
  // Kokkos takes team scratch sizes as int: 2^20 x 2^20 tiles once crashed
  // the host path; now every entry point refuses them up front.
  const Problem p = make_problem(32, 1, 1, 8, false, false, Mixing::mixture, {}, {}, 1);
  RingOptions options;
  Tiling huge = default_tiling<Kokkos::DefaultHostExecutionSpace>(p.D);
  huge.q_tile = 1 << 20;
  huge.k_tile = 1 << 20;
  options.tiling = huge;
  CHECK_THROWS_AS((run_api<Kokkos::DefaultHostExecutionSpace, float>(p, options)),
                  std::invalid_argument);
  huge.q_tile = 0;
  options.tiling = huge;
  CHECK_THROWS_AS((run_api<Kokkos::DefaultHostExecutionSpace, float>(p, options)),
                  std::invalid_argument);
}

TEST_CASE("tilings and patterns are checked when they are set", "[attention][options]") {
  using Exec = Kokkos::DefaultHostExecutionSpace;
  // Pattern's fields are public: a zero segment or rate set by hand, or a
  // zero tile, is refused by the constructor, before any kernel sees it.
  Pattern zero_segment = Pattern::dilated(64, 2, 1, false, Mixing::mixture, {16, 32}, {1, 2});
  zero_segment.segment_length[1] = 0;
  CHECK_THROWS_WITH(RingAttention<Exec>(zero_segment), Catch::Contains("segment lengths"));
  Pattern zero_rate = Pattern::dense(64, 2, 1, true);
  zero_rate.dilation_rate[0] = 0;
  CHECK_THROWS_WITH(RingAttention<Exec>(zero_rate), Catch::Contains("dilation rates"));
  Pattern no_branch = Pattern::dense(64, 2, 1, true);
  no_branch.num_branches = 0;
  CHECK_THROWS_AS(RingAttention<Exec>(no_branch), std::invalid_argument);
  for (int field = 0; field < 5; ++field) {
    Tiling t = default_tiling<Exec>(32);
    (field == 0   ? t.q_tile
     : field == 1 ? t.k_tile
     : field == 2 ? t.team_size
     : field == 3 ? t.vector_length
                  : t.q_tile) = 0;
    if (field == 4) {
      t.q_tile = 64;
      t.max_league_size = 0;
    }
    RingOptions options;
    options.tiling = t;
    INFO("field " << field);
    CHECK_THROWS_AS(RingAttention<Exec>(Pattern::dense(64, 2, 1, true), options),
                    std::invalid_argument);
  }
  // a valid pattern and tiling are taken
  CHECK_NOTHROW(RingAttention<Exec>(Pattern::dense(64, 2, 1, true)));
}
