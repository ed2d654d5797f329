// The deck's entry points (Deck.hpp): loading a file or a string, and what
// the run and plan commands ask of a RunConfig. The pieces: DeckSchema (the
// key tree), DeckSource (the parsed file), SetOverrides (--set), DeckBuild
// (the typed RunConfig), Sweep, DeckEmit (the YAML echo).
#include "Deck.hpp"

#include "DeckBuild.hpp"
#include "DeckSource.hpp"
#include "Npy.hpp"

#include <RingAttn_Config.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace ringattn::driver {

namespace fs = std::filesystem;

RunConfig load_deck(const std::string &path, const std::vector<std::string> &set_overrides) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw DeckError(path + ": cannot read the deck: no such file");
  if (fs::is_directory(path, ec)) throw DeckError(path + ": cannot read the deck: it is a folder");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DeckError(path + ": cannot read the deck: cannot open it for reading");
  std::ostringstream text;
  text << in.rdbuf();
  return Details::load_source(Details::parse_source(text.str(), path, fs::path(path).parent_path()),
                              set_overrides);
}

RunConfig load_deck_string(const std::string &yaml, const std::string &name,
                           const std::vector<std::string> &set_overrides,
                           const std::string &base_dir) {
  return Details::load_source(Details::parse_source(yaml, name, fs::path(base_dir)), set_overrides);
}

std::string RunConfig::where(const std::string &key) const {
  auto compose = [&](const std::string &loc) {
    return loc.rfind("--set ", 0) == 0 ? loc : loc + ": " + key;
  };
  auto it = origins.find(key);
  if (it != origins.end()) return compose(it->second);
  auto sec = origins.find(key.substr(0, key.find('.')));
  if (sec != origins.end()) return compose(sec->second);
  return deck_path + ": " + key;
}

double RunConfig::effective_scale() const {
  return attention.scale ? *attention.scale : 1.0 / std::sqrt(double(problem.head_dim));
}

std::vector<std::int64_t> RunConfig::q_shape() const {
  return {problem.batch, problem.seq_len, problem.heads, problem.head_dim};
}
std::vector<std::int64_t> RunConfig::kv_shape() const {
  return {problem.batch, problem.seq_len, problem.kv_heads, problem.head_dim};
}
std::vector<std::int64_t> RunConfig::o_shape() const { return q_shape(); }
std::vector<std::int64_t> RunConfig::lse_shape() const {
  return {problem.batch, problem.heads, problem.seq_len};
}

// ---- helpers for the run and plan commands ------------------------------------------------

Pattern make_pattern(const RunConfig &c) {
  const auto &p = c.problem;
  if (c.attention.kind == AttentionKind::dense)
    return Pattern::dense(p.seq_len, p.heads, p.kv_heads, c.attention.causal);
  return Pattern::dilated(p.seq_len, p.heads, p.kv_heads, c.attention.causal, c.attention.mixing,
                          c.attention.segment_lengths, c.attention.dilation_rates);
}

void resolve_ring_size(RunConfig &cfg, int num_ranks) {
  if (cfg.ring.mode != RingMode::mpi) return;
  if (cfg.ring.size == 0) {
    cfg.ring.size = num_ranks;
  } else if (cfg.ring.size != num_ranks) {
    throw DeckError(cfg.where("ring.size") + ": expected the number of MPI ranks (" +
                    std::to_string(num_ranks) + "), got " + std::to_string(cfg.ring.size) +
                    " (leave ring.size out, or run under mpirun -np " +
                    std::to_string(cfg.ring.size) + ")");
  }
}

bool needs_mpi(const RunConfig &cfg) {
  for (const RunConfig &point : expand_sweep(cfg))
    if (point.ring.mode == RingMode::mpi) return true;
  return false;
}

void check_build_supports(const RunConfig &cfg) {
#ifdef RINGATTN_ENABLE_MPI
  (void)cfg;
#else
  for (const RunConfig &point : expand_sweep(cfg))
    if (point.ring.mode == RingMode::mpi)
      throw DeckError(point.where("ring.mode") +
                      ": expected simulated, got mpi, but this ringattn was built without MPI "
                      "(RingAttn_ENABLE_MPI=OFF); use ring.mode: simulated (--set "
                      "ring.mode=simulated), or rebuild with -DRingAttn_ENABLE_MPI=ON");
#endif
}

void check_input_files(const RunConfig &cfg) {
  if (cfg.input.source != InputSource::npy) return;
  const std::pair<const char *, const std::string *> files[] = {
      {"input.q", &cfg.input.q}, {"input.k", &cfg.input.k}, {"input.v", &cfg.input.v}};
  for (const auto &[key, path] : files) {
    const bool is_q = std::string(key) == "input.q";
    try {
      NpyReader r(*path);
      r.expect_shape(is_q ? cfg.q_shape() : cfg.kv_shape(),
                     is_q ? "[B, N, H, D]" : "[B, N, Hkv, D]");
    } catch (const NpyError &e) {
      throw DeckError(cfg.where(key) + ": " + e.what());
    }
  }
}

} // namespace ringattn::driver
