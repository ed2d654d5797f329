#ifndef RINGATTN_REFERENCE_HPP
#define RINGATTN_REFERENCE_HPP

// The tests' independent float64 reference: docs/SPEC.md section 2 written out
// literally (no code shared with the library), and brute-force attention
// over the (branch, key) pairs each query sees.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace ringattn::test {

struct LiteralPattern {
  enum class Mixing { mixture, head_groups };
  std::int64_t N = 0;
  std::vector<std::int64_t> w, r; // dense: w = {N}, r = {1}
  int H = 1;
  int Hkv = 1;
  Mixing mixing = Mixing::mixture;
  bool causal = false;

  // head_groups: G contiguous groups, the first H % G one larger.
  int group_of(int h) const {
    const int G = int(w.size());
    int start = 0;
    for (int g = 0; g < G; ++g) {
      const int size = H / G + (g < H % G ? 1 : 0);
      if (h < start + size) return g;
      start += size;
    }
    return -1;
  }
  bool keeps(std::int64_t t, std::int64_t u, int h, int i) const {
    std::int64_t off;
    if (mixing == Mixing::mixture) {
      off = h % r[i];
    } else {
      if (group_of(h) != i) return false;
      off = i % r[i];
    }
    const std::int64_t s = t / w[i];
    const std::int64_t lo = s * w[i], hi = std::min((s + 1) * w[i], N);
    if (u < lo || u >= hi) return false;
    if ((t - lo) % r[i] != off || (u - lo) % r[i] != off) return false;
    return !causal || u <= t;
  }
};

/// Row-major tensors as flat vectors: q, o [B, N, H, D]; k, v [B, N, Hkv, D];
/// lse [B, H, N].
struct Reference {
  std::vector<double> o, lse;
};

template <class T>
Reference reference_attention(const LiteralPattern &pat, int B, int D, double scale,
                              const std::vector<T> &q, const std::vector<T> &k,
                              const std::vector<T> &v) {
  const std::int64_t N = pat.N;
  const int H = pat.H, Hkv = pat.Hkv, G = int(pat.w.size());
  Reference ref;
  ref.o.assign(std::size_t(B) * N * H * D, 0.0);
  ref.lse.assign(std::size_t(B) * H * N, -std::numeric_limits<double>::infinity());
  std::vector<double> s, acc(D);
  std::vector<std::int64_t> keys;
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) {
      const int g = h / (H / Hkv);
      for (std::int64_t t = 0; t < N; ++t) {
        s.clear();
        keys.clear();
        for (int i = 0; i < G; ++i)
          for (std::int64_t u = 0; u < N; ++u) {
            if (!pat.keeps(t, u, h, i)) continue;
            double dot = 0;
            for (int d = 0; d < D; ++d)
              dot += double(q[((b * N + t) * H + h) * D + d]) *
                     double(k[((b * N + u) * Hkv + g) * D + d]);
            s.push_back(scale * dot);
            keys.push_back(u);
          }
        if (s.empty()) continue;
        const double m = *std::max_element(s.begin(), s.end());
        double l = 0;
        std::fill(acc.begin(), acc.end(), 0.0);
        for (std::size_t c = 0; c < s.size(); ++c) {
          const double e = std::exp(s[c] - m);
          l += e;
          for (int d = 0; d < D; ++d)
            acc[d] += e * double(v[((b * N + keys[c]) * Hkv + g) * D + d]);
        }
        for (int d = 0; d < D; ++d) ref.o[((b * N + t) * H + h) * D + d] = acc[d] / l;
        ref.lse[(std::size_t(b) * H + h) * N + t] = m + std::log(l);
      }
    }
  return ref;
}

} // namespace ringattn::test

#endif
