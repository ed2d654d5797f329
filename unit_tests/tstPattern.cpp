// Pattern layer (docs/SPEC.md section 2) against a brute-force enumeration written
// straight from its wording, for all small N, w, r, H, G.
#include <catch2/catch.hpp>

#include "RingAttn_Reference.hpp"
#include "RingAttn_TestSpaces.hpp"
#include <pattern/RingAttn_Pattern.hpp>

#include <algorithm>
#include <cstdint>
#include <vector>

using ringattn::Mixing;
using ringattn::Pattern;

namespace {
ringattn::test::LiteralPattern literal(std::int64_t N, const std::vector<std::int64_t> &w,
                                       const std::vector<std::int64_t> &r, int H, Mixing mixing,
                                       bool causal) {
  ringattn::test::LiteralPattern lit;
  lit.N = N;
  lit.w = w;
  lit.r = r;
  lit.H = H;
  lit.mixing = mixing == Mixing::mixture ? ringattn::test::LiteralPattern::Mixing::mixture
                                         : ringattn::test::LiteralPattern::Mixing::head_groups;
  lit.causal = causal;
  return lit;
}
} // namespace

TEST_CASE("head groups: contiguous, first H % G one larger", "[pattern]") {
  for (int G = 1; G <= 5; ++G)
    for (int H = G; H <= 13; ++H) {
      std::vector<std::int64_t> w(G, 4), r(G, 1);
      const Pattern p = Pattern::dilated(8, H, 1, false, Mixing::head_groups, w, r);
      std::vector<int> count(G, 0);
      int previous = 0;
      for (int h = 0; h < H; ++h) {
        const int g = p.head_group(h);
        REQUIRE(g >= previous); // contiguous, non-decreasing
        previous = g;
        ++count.at(g);
      }
      for (int g = 0; g < G; ++g) CHECK(count[g] == H / G + (g < H % G ? 1 : 0));
    }
}

TEST_CASE("dilated keeps() equals the literal SPEC enumeration", "[pattern]") {
  const std::vector<std::vector<std::int64_t>> ws = {{1}, {3}, {4, 8}, {5, 2, 7}, {16}, {2, 3}};
  int cases = 0;
  for (const auto &w : ws)
    for (int rate_case = 0; rate_case < 3; ++rate_case) {
      std::vector<std::int64_t> r(w.size());
      for (std::size_t i = 0; i < w.size(); ++i)
        r[i] = rate_case == 0 ? 1 : rate_case == 1 ? w[i] : std::max<std::int64_t>(1, w[i] / 2);
      for (Mixing mixing : {Mixing::mixture, Mixing::head_groups})
        for (bool causal : {false, true})
          for (std::int64_t N = 1; N <= 19; N += 3)
            for (int H = int(w.size()); H <= 5; ++H) {
              const Pattern p = Pattern::dilated(N, H, 1, causal, mixing, w, r);
              const auto lit = literal(N, w, r, H, mixing, causal);
              for (int h = 0; h < H; ++h)
                for (std::int64_t t = 0; t < N; ++t) {
                  std::int64_t pairs = 0;
                  for (int i = 0; i < int(w.size()); ++i)
                    for (std::int64_t u = 0; u < N; ++u) {
                      const bool expect = lit.keeps(t, u, h, i);
                      REQUIRE(p.keeps(t, u, h, i) == expect);
                      pairs += expect;
                    }
                  REQUIRE(p.pairs_for_query(t, h) == pairs);
                }
              ++cases;
            }
    }
  CHECK(cases > 500);
}

TEST_CASE("dense pattern keeps every key (u <= t when causal)", "[pattern]") {
  for (std::int64_t N = 1; N <= 33; ++N)
    for (bool causal : {false, true}) {
      const Pattern p = Pattern::dense(N, 4, 2, causal);
      for (int h = 0; h < 4; ++h)
        for (std::int64_t t = 0; t < N; ++t) {
          for (std::int64_t u = 0; u < N; ++u) REQUIRE(p.keeps(t, u, h, 0) == (!causal || u <= t));
          REQUIRE(p.pairs_for_query(t, h) == (causal ? t + 1 : N));
        }
    }
}

TEST_CASE("GQA: query head h reads kv head h / (H / Hkv)", "[pattern]") {
  for (int Hkv = 1; Hkv <= 4; ++Hkv)
    for (int m = 1; m <= 4; ++m) {
      const Pattern p = Pattern::dense(4, Hkv * m, Hkv, false);
      for (int h = 0; h < Hkv * m; ++h) CHECK(p.kv_head(h) == h / m);
    }
}

TEST_CASE("pattern rejects invalid parameters", "[pattern]") {
  CHECK_THROWS(Pattern::dense(0, 1, 1, false));
  CHECK_THROWS(Pattern::dense(4, 3, 2, false));
  CHECK_THROWS(Pattern::dilated(8, 2, 1, false, Mixing::mixture, {4, 8}, {1}));
  CHECK_THROWS(Pattern::dilated(8, 2, 1, false, Mixing::mixture, {4}, {5}));
  CHECK_THROWS(Pattern::dilated(8, 2, 1, false, Mixing::mixture, {0}, {1}));
  CHECK_THROWS(Pattern::dilated(8, 1, 1, false, Mixing::head_groups, {4, 8}, {1, 1}));
}

TEMPLATE_LIST_TEST_CASE("pattern is device callable and agrees with the host", "[pattern][backend]",
                        ringattn::test::ExecSpaces) {
  using ExecSpace = TestType;
  const Pattern p = Pattern::dilated(37, 5, 1, true, Mixing::head_groups, {4, 9, 16}, {1, 3, 4});
  std::int64_t host_pairs = 0;
  for (int h = 0; h < p.heads; ++h)
    for (std::int64_t t = 0; t < p.seq_len; ++t) host_pairs += p.pairs_for_query(t, h);
  std::int64_t device_pairs = 0;
  Kokkos::parallel_reduce(
      "pattern_pairs", Kokkos::RangePolicy<ExecSpace>(0, p.seq_len * p.heads),
      KOKKOS_LAMBDA(const std::int64_t idx, std::int64_t &sum) {
        const int h = int(idx % p.heads);
        const std::int64_t t = idx / p.heads;
        for (int i = 0; i < p.num_branches; ++i)
          for (std::int64_t u = 0; u < p.seq_len; ++u) sum += p.keeps(t, u, h, i) ? 1 : 0;
      },
      device_pairs);
  CHECK(device_pairs == host_pairs);
  CHECK(host_pairs > 0);
}

TEST_CASE("segment lengths and rates up to 2^63 - 1 keep the literal pairs", "[pattern]") {
  // Beyond N, w and r change nothing; the pattern must neither overflow nor
  // lose pairs (the literal reference never forms (s + 1) * w for s > 0 here).
  const std::int64_t huge = INT64_MAX;
  const std::vector<std::vector<std::int64_t>> ws = {
      {huge}, {huge, 8}, {std::int64_t(1) << 62, 16}, {huge, huge}};
  const std::vector<std::vector<std::int64_t>> rs = {
      {huge}, {std::int64_t(1) << 40, 2}, {std::int64_t(1) << 33, 16}, {1, huge}};
  for (std::size_t c = 0; c < ws.size(); ++c)
    for (Mixing mixing : {Mixing::mixture, Mixing::head_groups})
      for (bool causal : {false, true}) {
        const std::int64_t N = 37;
        const int H = 3;
        const Pattern p = Pattern::dilated(N, H, 1, causal, mixing, ws[c], rs[c]);
        const auto lit = literal(N, ws[c], rs[c], H, mixing, causal);
        for (int h = 0; h < H; ++h)
          for (std::int64_t t = 0; t < N; ++t) {
            std::int64_t pairs = 0;
            for (int i = 0; i < int(ws[c].size()); ++i)
              for (std::int64_t u = 0; u < N; ++u) {
                REQUIRE(p.keeps(t, u, h, i) == lit.keeps(t, u, h, i));
                pairs += lit.keeps(t, u, h, i);
              }
            REQUIRE(p.pairs_for_query(t, h) == pairs);
          }
      }
}
