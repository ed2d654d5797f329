#include "Verify.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <set>

namespace ringattn::driver {

std::vector<SampledRow> sample_rows(const RunConfig &cfg) {
  const std::int64_t B = cfg.problem.batch, N = cfg.problem.seq_len;
  const std::int64_t total = B * N;
  const std::int64_t want = std::min<std::int64_t>(cfg.verify.enabled ? cfg.verify.rows : 0, total);
  std::set<std::int64_t> picked;
  if (want > 0) picked.insert(0);
  if (want > 1) picked.insert(total - 1);
  std::mt19937_64 rng(cfg.input.seed ^ 0x5A5A5A5Aull);
  std::uniform_int_distribution<std::int64_t> any(0, total - 1);
  if (want * 2 > total) {
    for (std::int64_t i = 0; std::int64_t(picked.size()) < want; ++i) picked.insert(i);
  } else {
    while (std::int64_t(picked.size()) < want) picked.insert(any(rng));
  }
  std::vector<SampledRow> rows;
  for (std::int64_t flat : picked) rows.push_back(SampledRow{flat / N, flat % N});
  return rows;
}

RowValues reference_row(const InputData &data, const Pattern &pattern, double scale,
                        const SampledRow &row) {
  const int H = pattern.heads;
  const std::int64_t D = data.head_dim();
  const int Hkv = pattern.kv_heads;
  const std::int64_t t = row.t;
  std::vector<double> q(std::size_t(H * D));
  data.read_rows(TensorId::q, row.b, t, 1, q.data());

  // streaming softmax per head, in float64
  std::vector<double> m(H, -std::numeric_limits<double>::infinity()), l(H, 0.0);
  std::vector<double> acc(std::size_t(H * D), 0.0);
  constexpr std::int64_t chunk = 2048;
  std::vector<double> k, v;
  for (int i = 0; i < pattern.num_branches; ++i) {
    std::vector<int> heads;
    for (int h = 0; h < H; ++h)
      if (pattern.offset(h, i) >= 0 && pattern.phase(t, i) == pattern.offset(h, i))
        heads.push_back(h);
    if (heads.empty()) continue;
    const std::int64_t s = pattern.segment(t, i);
    const std::int64_t begin = pattern.segment_begin(s, i);
    const std::int64_t end = pattern.causal ? t + 1 : pattern.segment_end(s, i);
    const std::int64_t r = pattern.dilation_rate[i];
    for (std::int64_t c0 = begin; c0 < end; c0 += chunk) {
      const std::int64_t count = std::min(chunk, end - c0);
      k.resize(std::size_t(count * Hkv * D));
      v.resize(k.size());
      data.read_rows(TensorId::k, row.b, c0, count, k.data());
      data.read_rows(TensorId::v, row.b, c0, count, v.data());
      for (int h : heads) {
        const std::int64_t off = pattern.offset(h, i);
        const int g = pattern.kv_head(h);
        const double *qh = &q[std::size_t(h * D)];
        double *ah = &acc[std::size_t(h * D)];
        // first key of this chunk in phase `off`
        std::int64_t u = c0 + ((off - (c0 - begin) % r) % r + r) % r;
        for (; u < c0 + count; u += r) {
          const double *ku = &k[std::size_t(((u - c0) * Hkv + g) * D)];
          const double *vu = &v[std::size_t(((u - c0) * Hkv + g) * D)];
          double dot = 0;
          for (std::int64_t d = 0; d < D; ++d) dot += qh[d] * ku[d];
          const double sc = scale * dot;
          if (sc > m[h]) {
            const double f = std::exp(m[h] - sc); // 0 when m was -inf
            l[h] *= f;
            for (std::int64_t d = 0; d < D; ++d) ah[d] *= f;
            m[h] = sc;
          }
          const double e = std::exp(sc - m[h]);
          l[h] += e;
          for (std::int64_t d = 0; d < D; ++d) ah[d] += e * vu[d];
        }
      }
    }
  }
  RowValues ref;
  ref.o.assign(std::size_t(H * D), 0.0);
  ref.lse.assign(H, -std::numeric_limits<double>::infinity());
  for (int h = 0; h < H; ++h) {
    if (!(l[h] > 0)) continue;
    for (std::int64_t d = 0; d < D; ++d)
      ref.o[std::size_t(h * D + d)] = acc[std::size_t(h * D + d)] / l[h];
    ref.lse[h] = m[h] + std::log(l[h]);
  }
  return ref;
}

namespace {
/// |a - b| with -inf == -inf an exact match; NaN or a lone infinity flags.
void accumulate(double got, double ref, double &max_err, bool &nonfinite) {
  if (std::isnan(got) || std::isnan(ref)) {
    nonfinite = true;
    return;
  }
  if (std::isinf(got) || std::isinf(ref)) {
    if (got != ref) nonfinite = true;
    return;
  }
  max_err = std::max(max_err, std::abs(got - ref));
}
} // namespace

void VerifyErrors::add(const RowValues &got, const RowValues &ref) {
  ++rows;
  for (std::size_t i = 0; i < ref.o.size(); ++i)
    accumulate(got.o[i], ref.o[i], max_abs_error_o, nonfinite);
  for (std::size_t i = 0; i < ref.lse.size(); ++i)
    accumulate(got.lse[i], ref.lse[i], max_abs_error_lse, nonfinite);
}

void VerifyErrors::merge(const VerifyErrors &other) {
  rows += other.rows;
  max_abs_error_o = std::max(max_abs_error_o, other.max_abs_error_o);
  max_abs_error_lse = std::max(max_abs_error_lse, other.max_abs_error_lse);
  nonfinite = nonfinite || other.nonfinite;
}

} // namespace ringattn::driver
