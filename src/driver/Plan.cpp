// The deck's side of `ringattn plan` (see Plan.hpp): the problem the
// library's model evaluates, and the units the printer writes.
#include "Plan.hpp"

#include "Deck.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace ringattn::driver {

ModelProblem make_model_problem(const RunConfig &cfg, const Tiling &tiling, int threads) {
  ModelProblem pp;
  pp.pattern = make_pattern(cfg);
  pp.dense = cfg.attention.kind == AttentionKind::dense;
  pp.batch = cfg.problem.batch;
  pp.head_dim = cfg.problem.head_dim;
  pp.scalar_bytes = std::int64_t(dtype_size(cfg.problem.dtype));
  pp.partition = cfg.ring.partition;
  pp.tiling = tiling;
  pp.threads = std::max(1, threads);
  return pp;
}

// ---- units --------------------------------------------------------------------

std::string human_bytes(long double bytes) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  char buf[64];
  if (bytes < 1024) {
    std::snprintf(buf, sizeof buf, "%.0Lf B", bytes);
    return buf;
  }
  int u = 0;
  while (bytes >= 1024 && u < 6) {
    bytes /= 1024;
    ++u;
  }
  std::snprintf(buf, sizeof buf, "%.2Lf %s", bytes, units[u]);
  return buf;
}

std::string human_count(long double value, const std::string &unit) {
  static const char *const prefixes[] = {"", "k", "M", "G", "T", "P", "E", "Z", "Y"};
  int u = 0;
  while (std::fabs(value) >= 1000 && u < 8) {
    value /= 1000;
    ++u;
  }
  char buf[64];
  if (u == 0)
    std::snprintf(buf, sizeof buf, "%.0Lf %s", value, unit.c_str());
  else
    std::snprintf(buf, sizeof buf, "%.2Lf %s%s", value, prefixes[u], unit.c_str());
  return buf;
}

} // namespace ringattn::driver
