#ifndef RINGATTN_TESTCASE_HPP
#define RINGATTN_TESTCASE_HPP

// A test problem: a pattern described twice (the library's Pattern and the
// tests' literal reading of docs/SPEC.md section 2), inputs, and helpers to run the API and
// compare.

#include "RingAttn_Reference.hpp"
#include <RingAttn.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace ringattn::test {

struct Problem {
  int B = 1, H = 1, Hkv = 1, D = 1;
  std::int64_t N = 1;
  bool dilated = false;
  bool causal = false;
  Mixing mixing = Mixing::mixture;
  std::vector<std::int64_t> w, r;
  double scale = 0; // 0: 1/sqrt(D)
  std::vector<double> q, k, v;

  double effective_scale() const { return scale > 0 ? scale : 1.0 / std::sqrt(double(D)); }
  Pattern pattern() const {
    return dilated ? Pattern::dilated(N, H, Hkv, causal, mixing, w, r)
                   : Pattern::dense(N, H, Hkv, causal);
  }
  LiteralPattern literal() const {
    LiteralPattern lit;
    lit.N = N;
    lit.w = dilated ? w : std::vector<std::int64_t>{N};
    lit.r = dilated ? r : std::vector<std::int64_t>{1};
    lit.H = H;
    lit.Hkv = Hkv;
    lit.mixing = mixing == Mixing::mixture ? LiteralPattern::Mixing::mixture
                                           : LiteralPattern::Mixing::head_groups;
    lit.causal = causal;
    return lit;
  }
  std::string describe() const {
    std::ostringstream s;
    s << "B=" << B << " N=" << N << " H=" << H << " Hkv=" << Hkv << " D=" << D
      << (causal ? " causal" : "") << (dilated ? " dilated " : " dense");
    if (dilated) {
      s << (mixing == Mixing::mixture ? "mixture" : "head_groups") << " w=[";
      for (auto x : w) s << x << ' ';
      s << "] r=[";
      for (auto x : r) s << x << ' ';
      s << "]";
    }
    return s.str();
  }
  /// Inputs uniform in [-amplitude, amplitude) (the accuracy of docs/SPEC.md section 1 is for [-1,
  /// 1)).
  void fill(std::mt19937_64 &rng, double amplitude = 1.0) {
    std::uniform_real_distribution<double> u(-amplitude, amplitude);
    auto make = [&](std::size_t n) {
      std::vector<double> x(n);
      for (auto &e : x) e = double(float(u(rng))); // representable in float32
      return x;
    };
    q = make(std::size_t(B) * N * H * D);
    k = make(std::size_t(B) * N * Hkv * D);
    v = make(std::size_t(B) * N * Hkv * D);
  }
};

/// A random problem: shapes, pattern, mixing, causal, GQA, ragged segments.
inline Problem random_problem(std::mt19937_64 &rng, std::int64_t max_n) {
  auto pick = [&](std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
  };
  Problem p;
  p.B = int(pick(1, 2));
  p.N = pick(1, max_n);
  p.Hkv = int(pick(1, 3));
  p.H = p.Hkv * int(pick(1, 3));
  const int dims[] = {1, 3, 8, 16, 24, 32, 64};
  p.D = dims[pick(0, 6)];
  p.causal = pick(0, 1) == 1;
  p.dilated = pick(0, 3) != 0;
  if (p.dilated) {
    const int G = int(pick(1, std::min(4, p.H)));
    p.mixing = pick(0, 1) ? Mixing::mixture : Mixing::head_groups;
    for (int i = 0; i < G; ++i) {
      const std::int64_t wi = pick(1, std::max<std::int64_t>(1, p.N + 8));
      p.w.push_back(wi);
      const int choice = int(pick(0, 3));
      p.r.push_back(choice == 0 ? 1 : choice == 1 ? wi : pick(1, std::min<std::int64_t>(wi, 8)));
    }
  }
  if (pick(0, 4) == 0) p.scale = 0.05 + 0.5 * double(pick(0, 10));
  p.fill(rng);
  return p;
}

/// A problem's shape; problem(rng) fills q, k, v from rng.
struct ProblemShape {
  std::int64_t N;
  bool dilated, causal;
  Mixing mixing;
  std::vector<std::int64_t> w, r;
  int H, Hkv, D;

  Problem problem(std::mt19937_64 &rng) const {
    Problem p;
    p.N = N;
    p.dilated = dilated;
    p.causal = causal;
    p.mixing = mixing;
    p.w = w;
    p.r = r;
    p.H = H;
    p.Hkv = Hkv;
    p.D = D;
    p.fill(rng);
    return p;
  }
};

inline Problem make_problem(std::int64_t N, int H, int Hkv, int D, bool causal, bool dilated,
                            Mixing mixing, std::vector<std::int64_t> w, std::vector<std::int64_t> r,
                            unsigned seed) {
  std::mt19937_64 rng(seed);
  return ProblemShape{N, dilated, causal, mixing, std::move(w), std::move(r), H, Hkv, D}.problem(
      rng);
}

/// A fused projection [B, rows, H + 2 Hkv, D] (host-accessible) and Q, K, V
/// as strided subviews of it: how a model holds them, rows (H + 2 Hkv) D
/// values apart. The whole-sequence constructor fills it on the host (a
/// host-accessible Mem).
template <class Mem = Kokkos::DefaultHostExecutionSpace::memory_space>
struct PackedQkv {
  using Packed = Kokkos::View<float ****, Kokkos::LayoutRight, Mem>;
  using Part = decltype(Kokkos::subview(Packed(), Kokkos::ALL, Kokkos::ALL, Kokkos::make_pair(0, 0),
                                        Kokkos::ALL));
  Packed qkv;
  Part q, k, v;

  PackedQkv(const Problem &p, std::int64_t rows)
      : qkv("qkv", p.B, rows, p.H + 2 * p.Hkv, p.D),
        q(Kokkos::subview(qkv, Kokkos::ALL, Kokkos::ALL, Kokkos::make_pair(0, p.H), Kokkos::ALL)),
        k(Kokkos::subview(qkv, Kokkos::ALL, Kokkos::ALL, Kokkos::make_pair(p.H, p.H + p.Hkv),
                          Kokkos::ALL)),
        v(Kokkos::subview(qkv, Kokkos::ALL, Kokkos::ALL,
                          Kokkos::make_pair(p.H + p.Hkv, p.H + 2 * p.Hkv), Kokkos::ALL)) {}

  /// The whole sequence of p's Q, K and V.
  explicit PackedQkv(const Problem &p) : PackedQkv(p, p.N) {
    for (std::int64_t b = 0; b < p.B; ++b)
      for (std::int64_t t = 0; t < p.N; ++t)
        for (int d = 0; d < p.D; ++d) {
          for (int h = 0; h < p.H; ++h)
            q(b, t, h, d) = float(p.q[((b * p.N + t) * p.H + h) * p.D + d]);
          for (int g = 0; g < p.Hkv; ++g) {
            const std::size_t i = ((b * p.N + t) * p.Hkv + g) * p.D + d;
            k(b, t, g, d) = float(p.k[i]);
            v(b, t, g, d) = float(p.v[i]);
          }
        }
  }
};

/// Dense, dense causal GQA, dilated mixture, dilated causal head_groups with
/// MQA, and r = w with w > N: the cases every ring mode is checked on.
inline std::vector<Problem> standard_problems() {
  return {
      make_problem(97, 2, 2, 16, false, false, Mixing::mixture, {}, {}, 1), // dense
      make_problem(130, 4, 2, 8, true, false, Mixing::mixture, {}, {}, 2),  // dense causal GQA
      make_problem(150, 4, 4, 8, false, true, Mixing::mixture, {8, 16, 64}, {1, 2, 4}, 3),
      make_problem(121, 5, 1, 8, true, true, Mixing::head_groups, {10, 33, 121}, {1, 3, 11}, 4),
      make_problem(64, 3, 3, 4, true, true, Mixing::mixture, {5, 100}, {5, 3}, 5), // r = w, w > N
  };
}

/// The portable kernel forced (where a host fast path would take the
/// launch), with small tiles so that tile edges are crossed often.
template <class ExecSpace = Kokkos::DefaultHostExecutionSpace>
Tiling small_portable_tiles() {
  Tiling t = default_tiling<ExecSpace>(64);
  t.portable = true;
  t.q_tile = 16;
  t.k_tile = 32;
  return t;
}

/// O and LSE as float64 vectors, from any backend.
struct Output {
  std::vector<double> o, lse;
};

template <class ExecSpace, class Scalar>
Output run_api(const Problem &p, RingOptions options = {}) {
  using Mem = typename ExecSpace::memory_space;
  auto upload = [&](const std::vector<double> &x, int heads, const char *label) {
    Tensor4<Scalar, Mem> view(std::string(label), std::size_t(p.B), std::size_t(p.N),
                              std::size_t(heads), std::size_t(p.D));
    auto host = Kokkos::create_mirror_view(view);
    for (std::size_t i = 0; i < x.size(); ++i) host.data()[i] = Scalar(x[i]);
    Kokkos::deep_copy(view, host);
    return view;
  };
  auto q = upload(p.q, p.H, "q");
  auto k = upload(p.k, p.Hkv, "k");
  auto v = upload(p.v, p.Hkv, "v");
  Tensor4<Scalar, Mem> o("o", std::size_t(p.B), std::size_t(p.N), std::size_t(p.H),
                         std::size_t(p.D));
  Tensor3<accumulate_t<Scalar>, Mem> lse("lse", std::size_t(p.B), std::size_t(p.H),
                                         std::size_t(p.N));
  if (p.scale > 0) options.scale = p.scale;
  RingAttention<ExecSpace, Scalar> attention(p.pattern(), options);
  attention.forward(q, k, v, o, lse);
  auto oh = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), o);
  auto lh = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), lse);
  Output out;
  for (std::size_t i = 0; i < oh.size(); ++i) out.o.push_back(double(oh.data()[i]));
  for (std::size_t i = 0; i < lh.size(); ++i) out.lse.push_back(double(lh.data()[i]));
  return out;
}

/// The problem with its inputs rounded to the storage type (the float64
/// reference of docs/SPEC.md section 1 is computed from the rounded inputs).
template <class Scalar>
Problem rounded_to(Problem p) {
  for (auto *x : {&p.q, &p.k, &p.v})
    for (double &e : *x) e = double(float(Scalar(e)));
  return p;
}

/// Max |a - b|, with -inf == -inf counted as equal and NaN or a lone -inf
/// as an infinite error.
inline double max_abs_error(const std::vector<double> &a, const std::vector<double> &b) {
  if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
  double err = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) || std::isnan(b[i])) return std::numeric_limits<double>::infinity();
    if (std::isinf(a[i]) || std::isinf(b[i])) {
      if (a[i] != b[i]) return std::numeric_limits<double>::infinity();
      continue;
    }
    err = std::max(err, std::abs(a[i] - b[i]));
  }
  return err;
}

} // namespace ringattn::test

#endif
