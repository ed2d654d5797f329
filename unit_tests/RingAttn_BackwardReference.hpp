#ifndef RINGATTN_BACKWARDREFERENCE_HPP
#define RINGATTN_BACKWARDREFERENCE_HPP

// The tests' independent float64 reference for the backward pass (docs/SPEC.md section 7):
// brute force over the (branch, key) pairs each query sees (docs/SPEC.md section 2, the
// literal pattern of RingAttn_Reference.hpp; a key kept by two branches is
// two pairs), with the softmax recomputed here from the inputs (it shares
// nothing with the library, not even its O or LSE). For one query row t,
// with P_c the softmax weight of pair c = (i, u):
//   dV_u += P_c dO_t,  dS_c = P_c (dO_t . v_u - dO_t . O_t),
//   dQ_t += scale dS_c k_u,  dK_u += scale dS_c q_t.
// Finite differences of sum(O * dO) check this reference itself.

#include "RingAttn_Reference.hpp"

#include <random>
#include <vector>

namespace ringattn::test {

struct Gradients {
  std::vector<double> dq, dk, dv;
};

template <class T>
Gradients reference_gradients(const LiteralPattern &pat, int B, int D, double scale,
                              const std::vector<T> &q, const std::vector<T> &k,
                              const std::vector<T> &v, const std::vector<T> &dout) {
  const std::int64_t N = pat.N;
  const int H = pat.H, Hkv = pat.Hkv, G = int(pat.w.size());
  Gradients g;
  g.dq.assign(std::size_t(B) * N * H * D, 0.0);
  g.dk.assign(std::size_t(B) * N * Hkv * D, 0.0);
  g.dv.assign(std::size_t(B) * N * Hkv * D, 0.0);
  std::vector<double> s, o(D);
  std::vector<std::int64_t> keys;
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) {
      const int kvh = h / (H / Hkv);
      auto qi = [&](std::int64_t t, int d) { return ((b * N + t) * H + h) * D + d; };
      auto ki = [&](std::int64_t u, int d) { return ((b * N + u) * Hkv + kvh) * D + d; };
      for (std::int64_t t = 0; t < N; ++t) {
        s.clear();
        keys.clear();
        for (int i = 0; i < G; ++i)
          for (std::int64_t u = 0; u < N; ++u) {
            if (!pat.keeps(t, u, h, i)) continue;
            double dot = 0;
            for (int d = 0; d < D; ++d) dot += double(q[qi(t, d)]) * double(k[ki(u, d)]);
            s.push_back(scale * dot);
            keys.push_back(u);
          }
        if (s.empty()) continue; // the row contributes nothing
        const double m = *std::max_element(s.begin(), s.end());
        double l = 0;
        for (double &x : s) l += (x = std::exp(x - m));
        for (double &x : s) x /= l; // softmax weights P_c
        std::fill(o.begin(), o.end(), 0.0);
        for (std::size_t c = 0; c < s.size(); ++c)
          for (int d = 0; d < D; ++d) o[d] += s[c] * double(v[ki(keys[c], d)]);
        double delta = 0;
        for (int d = 0; d < D; ++d) delta += double(dout[qi(t, d)]) * o[d];
        for (std::size_t c = 0; c < s.size(); ++c) {
          const std::int64_t u = keys[c];
          double dp = 0;
          for (int d = 0; d < D; ++d) dp += double(dout[qi(t, d)]) * double(v[ki(u, d)]);
          const double ds = s[c] * (dp - delta);
          for (int d = 0; d < D; ++d) {
            g.dv[ki(u, d)] += s[c] * double(dout[qi(t, d)]);
            g.dq[qi(t, d)] += scale * ds * double(k[ki(u, d)]);
            g.dk[ki(u, d)] += scale * ds * double(q[qi(t, d)]);
          }
        }
      }
    }
  return g;
}

/// sum(O * dO) with O from the forward reference: the loss whose gradients
/// reference_gradients gives.
inline double reference_loss(const LiteralPattern &pat, int B, int D, double scale,
                             const std::vector<double> &q, const std::vector<double> &k,
                             const std::vector<double> &v, const std::vector<double> &dout) {
  const Reference ref = reference_attention(pat, B, D, scale, q, k, v);
  double loss = 0;
  for (std::size_t i = 0; i < dout.size(); ++i) loss += ref.o[i] * dout[i];
  return loss;
}

/// dO uniform in [-1, 1), float32-representable.
inline std::vector<double> random_dout(std::mt19937_64 &rng, std::size_t n) {
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<double> x(n);
  for (auto &e : x) e = double(float(u(rng)));
  return x;
}

} // namespace ringattn::test

#endif
