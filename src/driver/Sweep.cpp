// Sweeps (docs/SPEC.md section 5): the cartesian product of the axes, one
// validated configuration per point.
#include "Deck.hpp"
#include "DeckBuild.hpp"
#include "DeckSchema.hpp"
#include "DeckSource.hpp"

namespace ringattn::driver {

using Details::DeckSource;
using Details::max_sweep_points;

std::size_t sweep_size(const RunConfig &cfg) {
  std::size_t n = 1;
  for (const SweepAxis &a : cfg.sweep) {
    if (a.values.empty()) return 0;
    if (n > std::size_t(max_sweep_points) / a.values.size())
      throw DeckError(cfg.where("sweep") + ": the sweep has more than " +
                      std::to_string(max_sweep_points) + " points");
    n *= a.values.size();
  }
  return n;
}

SweepPoint sweep_point(const RunConfig &cfg, std::size_t index) {
  SweepPoint p(cfg.sweep.size());
  for (std::size_t i = cfg.sweep.size(); i-- > 0;) {
    const SweepAxis &a = cfg.sweep[i];
    p[i] = {a.key, a.values[index % a.values.size()]};
    index /= a.values.size();
  }
  return p;
}

RunConfig apply_sweep_point(const RunConfig &cfg, const SweepPoint &point) {
  std::shared_ptr<const DeckSource> src = cfg.source;
  if (!src) {
    // A config built in code: its description is a deck.
    auto s = Details::parse_source(describe(cfg),
                                   cfg.deck_path.empty() ? "<config>" : cfg.deck_path, "");
    Details::index_file(*s);
    src = s;
  }
  for (const auto &[key, value] : point)
    if (!Details::is_data_key(key))
      throw DeckError("sweep point " + key + "=" + value + ": unknown key");
  return Details::build(src, &point);
}

std::vector<RunConfig> expand_sweep(const RunConfig &cfg) {
  if (cfg.sweep.empty()) return {cfg};
  std::vector<RunConfig> out;
  const std::size_t n = sweep_size(cfg);
  for (std::size_t i = 0; i < n; ++i) out.push_back(apply_sweep_point(cfg, sweep_point(cfg, i)));
  return out;
}

} // namespace ringattn::driver
