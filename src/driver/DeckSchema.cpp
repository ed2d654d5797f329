#include "DeckSchema.hpp"

#include <algorithm>
#include <cctype>
#include <limits>

namespace ringattn::driver::Details {

const std::vector<Section> &schema() {
  static const std::vector<Section> s = {
      {"problem", {"batch", "seq_len", "heads", "kv_heads", "head_dim", "dtype"}},
      {"attention", {"kind", "segment_lengths", "dilation_rates", "mixing", "causal", "scale"}},
      {"ring", {"mode", "size", "partition", "overlap"}},
      {"input", {"source", "seed", "q", "k", "v", "check_finite"}},
      {"verify", {"enabled", "rows", "tolerance"}},
      {"benchmark", {"warmup", "repeats"}},
      {"output", {"results", "o", "lse", "csv"}},
  };
  return s;
}

const Section *find_section(const std::string &name) {
  for (const Section &s : schema())
    if (name == s.name) return &s;
  return nullptr;
}

std::vector<std::string> section_names() {
  std::vector<std::string> out;
  for (const Section &s : schema()) out.push_back(s.name);
  out.push_back("sweep");
  return out;
}

std::vector<std::string> all_dotted_keys() {
  std::vector<std::string> out;
  for (const Section &s : schema())
    for (const std::string &k : s.keys) out.push_back(std::string(s.name) + "." + k);
  return out;
}

bool is_data_key(const std::string &dotted) {
  const auto keys = all_dotted_keys();
  return std::find(keys.begin(), keys.end(), dotted) != keys.end();
}

std::string join(const std::vector<std::string> &v, const char *sep) {
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

// ---- "did you mean" -------------------------------------------------------------

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
std::size_t edit_distance(const std::string &a, const std::string &b) {
  const std::size_t n = a.size(), m = b.size();
  std::vector<std::vector<std::size_t>> d(n + 1, std::vector<std::size_t>(m + 1));
  for (std::size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= n; ++i)
    for (std::size_t j = 1; j <= m; ++j) {
      const std::size_t cost = std::tolower(static_cast<unsigned char>(a[i - 1])) ==
                                       std::tolower(static_cast<unsigned char>(b[j - 1]))
                                   ? 0
                                   : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[n][m];
}

/// The candidate nearest to `word`, if near enough to be a likely typo.
std::string nearest(const std::string &word, const std::vector<std::string> &candidates) {
  std::string best;
  std::size_t best_d = std::numeric_limits<std::size_t>::max();
  for (const std::string &c : candidates) {
    const std::size_t d = edit_distance(word, c);
    if (d < best_d) best_d = d, best = c;
  }
  // A typo changes about one character in three; short words get one.
  const std::size_t limit = std::max<std::size_t>(1, std::min(word.size(), best.size()) / 3);
  return best_d <= limit && best_d < word.size() ? best : std::string();
}

/// "unknown key; did you mean 'seq_len'?" for a key of `section` (empty:
/// top level), or a list of the valid keys when nothing is near.
std::string unknown_key_message(const std::string &section, const std::string &key) {
  std::vector<std::string> own;
  if (section.empty())
    own = section_names();
  else
    own = find_section(section)->keys;
  std::string guess = nearest(key, own);
  if (guess.empty()) {
    // The right key in the wrong place: `seq_len` under attention or at the top.
    for (const std::string &dotted : all_dotted_keys()) {
      const std::string bare = dotted.substr(dotted.find('.') + 1);
      if (edit_distance(key, bare) == 0 || key == dotted) guess = dotted;
    }
    if (guess.empty()) {
      std::vector<std::string> bare_all;
      for (const std::string &dotted : all_dotted_keys())
        bare_all.push_back(dotted.substr(dotted.find('.') + 1));
      const std::string near = nearest(key, bare_all);
      for (const std::string &dotted : all_dotted_keys())
        if (!near.empty() && dotted.substr(dotted.find('.') + 1) == near) guess = dotted;
    }
  }
  if (!guess.empty()) return "unknown key; did you mean '" + guess + "'?";
  return "unknown key; valid keys " +
         (section.empty() ? std::string("(sections)") : "of " + section) + ": " + join(own);
}

} // namespace ringattn::driver::Details
