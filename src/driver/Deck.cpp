#include "Deck.hpp"

#include "Npy.hpp"

#include <RingAttn_Config.hpp>

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

namespace ringattn::driver {

namespace fs = std::filesystem;

// ---- the schema ---------------------------------------------------------------

namespace {

struct Section {
  const char *name;
  std::vector<std::string> keys;
};

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

/// The most points a sweep may have (each one is a full run).
constexpr std::size_t max_sweep_points = 10000;

std::string join(const std::vector<std::string> &v, const char *sep = ", ") {
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

// ---- scalar conversions -----------------------------------------------------------

std::string quoted(const std::string &s) { return "\"" + s + "\""; }

std::string describe_node(const YAML::Node &n) {
  switch (n.Type()) {
  case YAML::NodeType::Null:
    return "nothing";
  case YAML::NodeType::Scalar:
    return quoted(n.Scalar());
  case YAML::NodeType::Sequence:
    return "a list";
  case YAML::NodeType::Map:
    return "a map";
  default:
    return "an undefined value";
  }
}

enum class IntParse { ok, not_integer, out_of_range };

/// Integers: [+-]digits, or a number in exponent/decimal form that is exactly
/// an integer (1e6, 65536.0), convenient in scaling studies.
IntParse parse_int(const std::string &s, std::int64_t &out) {
  if (s.empty()) return IntParse::not_integer;
  std::size_t i = (s[0] == '+' || s[0] == '-') ? 1 : 0;
  bool digits = i < s.size();
  for (std::size_t j = i; j < s.size(); ++j)
    if (!std::isdigit(static_cast<unsigned char>(s[j]))) digits = false;
  if (digits) {
    errno = 0;
    char *end = nullptr;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    if (errno == ERANGE) return IntParse::out_of_range;
    out = v;
    return IntParse::ok;
  }
  if (s.find_first_of(".eE") == std::string::npos || s.find_first_of("xXnN") != std::string::npos)
    return IntParse::not_integer;
  char *end = nullptr;
  const double d = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !std::isfinite(d) || d != std::floor(d))
    return IntParse::not_integer;
  if (std::fabs(d) > 9007199254740992.0) return IntParse::out_of_range; // 2^53: still exact
  out = static_cast<std::int64_t>(d);
  return IntParse::ok;
}

bool parse_double(const std::string &s, double &out) {
  if (s.empty() || std::isspace(static_cast<unsigned char>(s[0]))) return false;
  char *end = nullptr;
  out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

bool parse_bool(const std::string &s, bool &out) {
  std::string l;
  for (char c : s) l += char(std::tolower(static_cast<unsigned char>(c)));
  if (l == "true" || l == "yes" || l == "on") return out = true, true;
  if (l == "false" || l == "no" || l == "off") return out = false, true;
  return false;
}

/// Shortest text that reads back as the same double.
std::string format_double(double v) {
  char buf[64];
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string s = buf;
  // Keep it a float in YAML's eyes: 1 -> 1.0, 1e-05 stays.
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

std::string int_expectation(std::int64_t lo, std::int64_t hi) {
  if (hi == std::numeric_limits<std::int64_t>::max()) return "an integer >= " + std::to_string(lo);
  return "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
}

std::string location(const std::string &file, const YAML::Mark &m) {
  const int line = m.is_null() ? 1 : m.line + 1;
  const int col = m.is_null() ? 1 : m.column + 1;
  return file + ":" + std::to_string(line) + ":" + std::to_string(col);
}

/// YAML text of a node on one line (flow style), for sweep values.
std::string flow_text(const YAML::Node &n) {
  if (n.IsScalar()) return n.Scalar();
  YAML::Emitter e;
  e << YAML::Flow << n;
  return e.c_str();
}

} // namespace

// ---- the parsed deck ----------------------------------------------------------------

namespace detail {

/// Where a value came from: a place in the deck file, or a --set argument.
struct Origin {
  bool from_file = false;
  YAML::Mark mark;  // from_file
  std::string text; // otherwise: "--set KEY=VALUE"
  std::string key;  // the dotted key the origin is about
  fs::path base;    // the folder relative paths are resolved against
};

struct FileEntry {
  YAML::Node key;
  YAML::Node value;
};

struct SetOverride {
  std::string text; // "--set KEY=VALUE"
  std::string key;
  YAML::Node value;
};

struct SweepAxisSource {
  std::string key;
  std::vector<YAML::Node> values;
  std::vector<std::string> texts;
  Origin origin; // of the axis (its list)
};

struct DeckSource {
  std::string file; // as given, for messages
  fs::path dir;     // the deck's folder
  YAML::Node root;
  std::map<std::string, FileEntry> entries;        // dotted key -> file entry
  std::map<std::string, YAML::Mark> section_marks; // section -> mark of its key
  std::vector<SetOverride> sets;
  std::vector<SweepAxisSource> sweep;
  bool file_has_sweep = false;
};

} // namespace detail

namespace {

using detail::DeckSource;
using detail::Origin;

[[noreturn]] void fail_at(const std::string &file, const YAML::Mark &m, const std::string &key,
                          const std::string &what) {
  throw DeckError(location(file, m) + ": " + key + ": " + what);
}

// Structure of the file: sections are maps, keys are known and not repeated.
void index_file(DeckSource &src) {
  const YAML::Node &root = src.root;
  if (!root || root.IsNull()) return;
  if (!root.IsMap())
    fail_at(src.file, root.Mark(), "(top level)",
            "expected a map of sections (" + join(section_names()) + "), got " +
                describe_node(root));
  std::map<std::string, YAML::Mark> seen;
  for (auto it = root.begin(); it != root.end(); ++it) {
    const YAML::Node key = it->first, value = it->second;
    if (!key.IsScalar())
      fail_at(src.file, key.Mark(), "(top level)",
              "expected a section name, got " + describe_node(key));
    const std::string name = key.Scalar();
    if (seen.count(name))
      fail_at(src.file, key.Mark(), name,
              "duplicate section (first at line " + std::to_string(seen[name].line + 1) + ")");
    seen[name] = key.Mark();
    const Section *sec = find_section(name);
    if (!sec && name != "sweep") fail_at(src.file, key.Mark(), name, unknown_key_message("", name));
    src.section_marks[name] = key.Mark();
    if (!value.IsNull() && !value.IsMap())
      fail_at(src.file, value.Mark(), name, "expected a map of keys, got " + describe_node(value));
    if (value.IsNull()) continue;

    std::map<std::string, YAML::Mark> seen_keys;
    for (auto kt = value.begin(); kt != value.end(); ++kt) {
      const YAML::Node k = kt->first, v = kt->second;
      if (!k.IsScalar())
        fail_at(src.file, k.Mark(), name, "expected a key, got " + describe_node(k));
      const std::string kname = k.Scalar();
      const std::string dotted = name + "." + kname;
      if (seen_keys.count(kname))
        fail_at(src.file, k.Mark(), dotted,
                "duplicate key (first at line " + std::to_string(seen_keys[kname].line + 1) + ")");
      seen_keys[kname] = k.Mark();
      if (sec) {
        const auto &keys = sec->keys;
        if (std::find(keys.begin(), keys.end(), kname) == keys.end())
          fail_at(src.file, k.Mark(), dotted, unknown_key_message(name, kname));
        src.entries[dotted] = detail::FileEntry{k, v};
        continue;
      }
      // sweep: dotted key -> non-empty list of values
      src.file_has_sweep = true;
      if (!is_data_key(kname)) {
        const std::string guess = nearest(kname, all_dotted_keys());
        fail_at(src.file, k.Mark(), dotted,
                guess.empty() ? "unknown key; a sweep axis is a dotted key such as "
                                "problem.seq_len"
                              : "unknown key; did you mean 'sweep." + guess + "'?");
      }
      if (kname.rfind("output.", 0) == 0)
        fail_at(src.file, k.Mark(), dotted, "output paths cannot be swept");
      if (!v.IsSequence() || v.size() == 0)
        fail_at(src.file, v.IsNull() ? k.Mark() : v.Mark(), dotted,
                "expected a non-empty list of values, got " +
                    (v.IsSequence() ? std::string("an empty list") : describe_node(v)));
      detail::SweepAxisSource axis;
      axis.key = kname;
      axis.origin.from_file = true;
      axis.origin.mark = v.Mark();
      axis.origin.key = dotted;
      axis.origin.base = src.dir;
      for (std::size_t i = 0; i < v.size(); ++i) {
        const YAML::Node item = v[i];
        if (item.IsMap())
          fail_at(src.file, item.Mark(), dotted + "[" + std::to_string(i) + "]",
                  "expected a value (a scalar or a list), got a map");
        axis.values.push_back(item);
        axis.texts.push_back(flow_text(item));
      }
      src.sweep.push_back(axis);
    }
  }
}

void add_set_override(DeckSource &src, const std::string &arg) {
  const std::string text = "--set " + arg;
  const std::size_t eq = arg.find('=');
  if (eq == std::string::npos || eq == 0)
    throw DeckError(text + ": expected KEY=VALUE, e.g. --set problem.seq_len=65536");
  const std::string key = arg.substr(0, eq);
  const std::string value_text = arg.substr(eq + 1);
  YAML::Node value;
  try {
    value = YAML::Load(value_text);
  } catch (const YAML::Exception &e) {
    throw DeckError(text + ": cannot parse the value as YAML: " + e.msg);
  }

  if (key.rfind("sweep.", 0) == 0) {
    const std::string axis_key = key.substr(6);
    if (!is_data_key(axis_key)) {
      const std::string guess = nearest(axis_key, all_dotted_keys());
      throw DeckError(text + ": unknown key" +
                      (guess.empty() ? std::string("; a sweep axis is a dotted key such as "
                                                   "sweep.problem.seq_len")
                                     : "; did you mean 'sweep." + guess + "'?"));
    }
    if (axis_key.rfind("output.", 0) == 0) throw DeckError(text + ": output paths cannot be swept");
    if (!value.IsSequence() || value.size() == 0)
      throw DeckError(text + ": expected a non-empty list of values such as [1, 2, 4], got " +
                      (value.IsSequence() ? std::string("an empty list") : describe_node(value)));
    detail::SweepAxisSource axis;
    axis.key = axis_key;
    axis.origin.text = text;
    axis.origin.key = key;
    axis.origin.base = fs::path();
    for (std::size_t i = 0; i < value.size(); ++i) {
      if (value[i].IsMap())
        throw DeckError(text + ": " + key + "[" + std::to_string(i) +
                        "]: expected a value (a scalar or a list), got a map");
      axis.values.push_back(value[i]);
      axis.texts.push_back(flow_text(value[i]));
    }
    auto same = [&](const detail::SweepAxisSource &a) { return a.key == axis_key; };
    auto it = std::find_if(src.sweep.begin(), src.sweep.end(), same);
    if (it != src.sweep.end())
      *it = axis;
    else
      src.sweep.push_back(axis);
    return;
  }

  if (!is_data_key(key)) {
    if (find_section(key))
      throw DeckError(text + ": expected a dotted key SECTION.KEY such as " + key + "." +
                      find_section(key)->keys[0]);
    const std::string guess = nearest(key, all_dotted_keys());
    throw DeckError(text + ": unknown key" +
                    (guess.empty() ? std::string("; valid keys: ") + join(all_dotted_keys())
                                   : "; did you mean '" + guess + "'?"));
  }
  // Pinning a swept key takes it out of the sweep.
  src.sweep.erase(std::remove_if(src.sweep.begin(), src.sweep.end(),
                                 [&](const detail::SweepAxisSource &a) { return a.key == key; }),
                  src.sweep.end());
  src.sets.push_back(detail::SetOverride{text, key, value});
}

// ---- typed reading of one configuration ------------------------------------------------

struct Value {
  YAML::Node node;
  Origin origin;
};

class Builder {
public:
  Builder(const DeckSource &src, const SweepPoint *point) : src_(src), point_(point) {
    if (point && !point->empty()) {
      note_ = " (at sweep point";
      for (std::size_t i = 0; i < point->size(); ++i)
        note_ += std::string(i ? ", " : " ") + (*point)[i].first + "=" + (*point)[i].second;
      note_ += ")";
    }
  }

  std::optional<Value> get(const std::string &key) const {
    if (point_)
      for (const auto &[k, text] : *point_)
        if (k == key) return point_value(k, text);
    for (auto it = src_.sets.rbegin(); it != src_.sets.rend(); ++it)
      if (it->key == key) {
        Origin o;
        o.text = it->text;
        o.key = key;
        o.base = fs::path(); // --set paths are relative to the current folder
        return Value{it->value, o};
      }
    auto it = src_.entries.find(key);
    if (it == src_.entries.end()) return std::nullopt;
    Origin o;
    o.from_file = true;
    o.key = key;
    // An empty value (`seq_len:`) has no useful mark of its own: use the key's.
    o.mark = it->second.value.IsNull() ? it->second.key.Mark() : it->second.value.Mark();
    o.base = src_.dir;
    return Value{it->second.value, o};
  }

  [[noreturn]] void fail(const Origin &o, const std::string &key, const std::string &what) const {
    if (o.from_file)
      throw DeckError(location(src_.file, o.mark) + ": " + key + ": " + what + note_);
    throw DeckError(o.text + ": " + (key != o.key ? key + ": " : "") + what + note_);
  }
  [[noreturn]] void fail(const Value &v, const std::string &key, const std::string &what) const {
    fail(v.origin, key, what);
  }
  /// An error about a key that has no value: at its section, or the file's start.
  [[noreturn]] void fail_missing(const std::string &key, const std::string &what) const {
    const std::string section = key.substr(0, key.find('.'));
    auto it = src_.section_marks.find(section);
    const YAML::Mark m = it != src_.section_marks.end() ? it->second : YAML::Mark::null_mark();
    throw DeckError(location(src_.file, m) + ": " + key + ": " + what + note_);
  }

  /// Where a given key came from, for RunConfig::origins.
  std::string origin_text(const std::string &key) const {
    auto v = get(key);
    if (!v) return "";
    return v->origin.from_file ? location(src_.file, v->origin.mark) : v->origin.text;
  }

  // -- typed getters ----------------------------------------------------------

  std::int64_t integer(const Value &v, const std::string &key, std::int64_t lo,
                       std::int64_t hi) const {
    return integer_node(v.node, v.origin, key, lo, hi);
  }
  std::int64_t integer_node(const YAML::Node &n, const Origin &o, const std::string &key,
                            std::int64_t lo, std::int64_t hi) const {
    std::int64_t x = 0;
    if (!n.IsScalar())
      fail(o, key, "expected " + int_expectation(lo, hi) + ", got " + describe_node(n));
    switch (parse_int(n.Scalar(), x)) {
    case IntParse::not_integer:
      fail(o, key, "expected " + int_expectation(lo, hi) + ", got " + quoted(n.Scalar()));
    case IntParse::out_of_range:
      fail(o, key,
           "expected " + int_expectation(lo, hi) + ", got " + n.Scalar() + " (out of range)");
    case IntParse::ok:
      break;
    }
    if (x < lo || x > hi)
      fail(o, key, "expected " + int_expectation(lo, hi) + ", got " + std::to_string(x));
    return x;
  }
  std::int64_t integer(const std::string &key, std::int64_t lo, std::int64_t hi,
                       std::int64_t def) const {
    auto v = get(key);
    return v ? integer(*v, key, lo, hi) : def;
  }
  std::int64_t required_integer(const std::string &key, std::int64_t lo, std::int64_t hi) const {
    auto v = get(key);
    if (!v) {
      const std::string section = key.substr(0, key.find('.'));
      if (!src_.section_marks.count(section) && section == "problem")
        fail_missing(section, "required section is missing (it needs at least seq_len, heads and "
                              "head_dim)");
      fail_missing(key, "required key is missing (expected " + int_expectation(lo, hi) + ")");
    }
    return integer(*v, key, lo, hi);
  }

  std::uint64_t unsigned64(const std::string &key, std::uint64_t def) const {
    auto v = get(key);
    if (!v) return def;
    const std::string expect = "expected an integer in [0, 18446744073709551615]";
    if (!v->node.IsScalar()) fail(*v, key, expect + ", got " + describe_node(v->node));
    const std::string s = v->node.Scalar();
    bool digits = !s.empty();
    for (std::size_t i = (s[0] == '+' ? 1 : 0); i < s.size(); ++i)
      if (!std::isdigit(static_cast<unsigned char>(s[i]))) digits = false;
    if (!digits || s == "+") fail(*v, key, expect + ", got " + quoted(s));
    errno = 0;
    const unsigned long long x = std::strtoull(s.c_str(), nullptr, 10);
    if (errno == ERANGE) fail(*v, key, expect + ", got " + s + " (out of range)");
    return x;
  }

  bool boolean(const std::string &key, bool def) const {
    auto v = get(key);
    if (!v) return def;
    bool b = false;
    if (!v->node.IsScalar() || !parse_bool(v->node.Scalar(), b))
      fail(*v, key, "expected true or false, got " + describe_node(v->node));
    return b;
  }

  double positive_number(const std::string &key, double def) const {
    auto v = get(key);
    if (!v) return def;
    return positive_number(*v, key, "");
  }
  double positive_number(const Value &v, const std::string &key, const std::string &alt) const {
    return finite_number(v, key, alt, true);
  }
  /// A finite number; > 0 when `positive`.
  double finite_number(const Value &v, const std::string &key, const std::string &alt,
                       bool positive) const {
    const std::string expect =
        "expected " + alt + (positive ? "a positive finite number" : "a finite number");
    double x = 0;
    if (!v.node.IsScalar()) fail(v, key, expect + ", got " + describe_node(v.node));
    if (!parse_double(v.node.Scalar(), x))
      fail(v, key, expect + ", got " + quoted(v.node.Scalar()));
    if (!std::isfinite(x) || (positive && x <= 0))
      fail(v, key, expect + ", got " + v.node.Scalar());
    return x;
  }

  template <class E>
  E choice(const std::string &key, const std::vector<std::pair<const char *, E>> &options,
           E def) const {
    auto v = get(key);
    if (!v) return def;
    std::vector<std::string> names;
    for (const auto &o : options) names.push_back(o.first);
    const std::string expect = "expected one of " + join(names, " | ");
    if (!v->node.IsScalar()) fail(*v, key, expect + ", got " + describe_node(v->node));
    const std::string s = v->node.Scalar();
    for (const auto &o : options)
      if (s == o.first) return o.second;
    const std::string guess = nearest(s, names);
    fail(*v, key,
         expect + ", got " + quoted(s) + (guess.empty() ? "" : "; did you mean '" + guess + "'?"));
  }

  /// A path (resolved against the folder of its origin); empty when absent,
  /// or, with `allow_empty`, when given as null or "".
  std::string path(const std::string &key, const std::string &def, bool allow_empty) const {
    auto v = get(key);
    if (!v) return def;
    if (allow_empty && (v->node.IsNull() || (v->node.IsScalar() && v->node.Scalar().empty())))
      return "";
    const std::string expect =
        std::string("expected a file path") + (allow_empty ? " (or nothing: not written)" : "");
    if (!v->node.IsScalar() || v->node.Scalar().empty())
      fail(*v, key, expect + ", got " + describe_node(v->node));
    fs::path p(v->node.Scalar());
    if (p.is_relative() && !v->origin.base.empty()) p = v->origin.base / p;
    return p.lexically_normal().string();
  }

  std::vector<std::int64_t> int_list(const Value &v, const std::string &key, std::int64_t lo,
                                     std::size_t max_len) const {
    if (!v.node.IsSequence())
      fail(v, key,
           "expected a list of integers such as [2048, 4096], got " + describe_node(v.node));
    if (v.node.size() == 0 || v.node.size() > max_len)
      fail(v, key,
           "expected 1 to " + std::to_string(max_len) + " values, got " +
               std::to_string(v.node.size()));
    std::vector<std::int64_t> out;
    for (std::size_t i = 0; i < v.node.size(); ++i)
      out.push_back(integer_node(v.node[i], element_origin(v, i),
                                 key + "[" + std::to_string(i) + "]", lo,
                                 std::numeric_limits<std::int64_t>::max()));
    return out;
  }
  Origin element_origin(const Value &v, std::size_t i) const {
    Origin o = v.origin;
    if (o.from_file) o.mark = v.node[i].Mark();
    return o;
  }

  bool has_sweep() const { return !src_.sweep.empty(); }

private:
  Value point_value(const std::string &key, const std::string &text) const {
    for (const auto &axis : src_.sweep)
      if (axis.key == key)
        for (std::size_t i = 0; i < axis.texts.size(); ++i)
          if (axis.texts[i] == text) {
            Origin o = axis.origin;
            o.key = key;
            if (o.from_file) o.mark = axis.values[i].Mark();
            return Value{axis.values[i], o};
          }
    Origin o;
    o.text = "sweep point " + key + "=" + text;
    o.key = key;
    o.base = src_.dir;
    YAML::Node n;
    try {
      n = YAML::Load(text);
    } catch (const YAML::Exception &e) {
      throw DeckError(o.text + ": cannot parse the value as YAML: " + e.msg);
    }
    return Value{n, o};
  }

  const DeckSource &src_;
  const SweepPoint *point_;
  std::string note_;
};

constexpr std::int64_t int_max = INT_MAX;
constexpr std::int64_t i64_max = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t count_cap = 1000000; // warmup / repeats
constexpr std::int64_t max_head_dim = 65536;

RunConfig build(const std::shared_ptr<const DeckSource> &srcp, const SweepPoint *point) {
  const DeckSource &src = *srcp;
  const Builder b(src, point);
  RunConfig c;
  c.deck_path = src.file;
  c.deck_dir = src.dir.string();
  c.source = srcp;

  // problem
  ProblemConfig &p = c.problem;
  p.batch = b.integer("problem.batch", 1, i64_max, 1);
  p.seq_len = b.required_integer("problem.seq_len", 1, i64_max);
  p.heads = int(b.required_integer("problem.heads", 1, int_max));
  p.kv_heads = int(b.integer("problem.kv_heads", 1, int_max, p.heads));
  // The block kernel holds tiles of head_dim values in (int-indexed) scratch.
  p.head_dim = b.required_integer("problem.head_dim", 1, max_head_dim);
  p.dtype = b.choice<DType>(
      "problem.dtype", {{"float32", DType::float32}, {"float64", DType::float64}}, DType::float32);
  if (p.kv_heads > p.heads || p.heads % p.kv_heads != 0)
    b.fail(*b.get("problem.kv_heads"), "problem.kv_heads",
           "expected a divisor of problem.heads (" + std::to_string(p.heads) + "), got " +
               std::to_string(p.kv_heads));
  {
    // B*N*H*D elements of dtype bytes, in 64-bit arithmetic: reject what
    // cannot be addressed (more than 2^62 bytes) before anyone multiplies.
    std::int64_t bytes = std::int64_t(dtype_size(p.dtype));
    bool overflow = false;
    for (std::int64_t f : {p.batch, p.seq_len, std::int64_t(p.heads), p.head_dim})
      overflow = overflow || __builtin_mul_overflow(bytes, f, &bytes);
    if (overflow || bytes > (std::int64_t(1) << 62)) {
      const long double approx =
          (long double)p.batch * p.seq_len * p.heads * p.head_dim * dtype_size(p.dtype);
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.3Lg", approx);
      auto v = b.get("problem.seq_len");
      b.fail(*v, "problem.seq_len",
             "batch*seq_len*heads*head_dim = " + std::to_string(p.batch) + "*" +
                 std::to_string(p.seq_len) + "*" + std::to_string(p.heads) + "*" +
                 std::to_string(p.head_dim) + " " + dtype_name(p.dtype) + " values (" + buf +
                 " bytes) is absurd, expected at most 2^62 bytes");
    }
  }

  // attention
  AttentionConfig &a = c.attention;
  a.kind = b.choice<AttentionKind>(
      "attention.kind", {{"dense", AttentionKind::dense}, {"dilated", AttentionKind::dilated}},
      AttentionKind::dense);
  const auto segs = b.get("attention.segment_lengths");
  const auto rates = b.get("attention.dilation_rates");
  if (a.kind == AttentionKind::dense) {
    for (const auto *v : {&segs, &rates})
      if (*v)
        b.fail(**v, (*v)->origin.key,
               "only used with attention.kind: dilated, but kind is dense (add kind: dilated)");
  } else {
    if (!segs)
      b.fail_missing("attention.segment_lengths",
                     "required when kind is dilated (a list such as [2048, 4096, 8192])");
    a.segment_lengths =
        b.int_list(*segs, "attention.segment_lengths", 1, std::size_t(max_branches));
    if (!rates)
      b.fail_missing("attention.dilation_rates",
                     "required when kind is dilated (one rate per segment length, such as "
                     "[1, 2, 4])");
    if (rates->node.IsSequence() && rates->node.size() != a.segment_lengths.size())
      b.fail(*rates, "attention.dilation_rates",
             "expected " + std::to_string(a.segment_lengths.size()) +
                 " values (one per segment length), got " + std::to_string(rates->node.size()));
    a.dilation_rates = b.int_list(*rates, "attention.dilation_rates", 1, std::size_t(max_branches));
    for (std::size_t i = 0; i < a.dilation_rates.size(); ++i)
      if (a.dilation_rates[i] > a.segment_lengths[i]) {
        const std::string key = "attention.dilation_rates[" + std::to_string(i) + "]";
        b.fail(b.element_origin(*rates, i), key,
               "expected an integer in [1, " + std::to_string(a.segment_lengths[i]) +
                   "] (a rate is at most its segment length, segment_lengths[" + std::to_string(i) +
                   "] = " + std::to_string(a.segment_lengths[i]) + "), got " +
                   std::to_string(a.dilation_rates[i]));
      }
  }
  a.mixing = b.choice<Mixing>("attention.mixing",
                              {{"mixture", Mixing::mixture}, {"head_groups", Mixing::head_groups}},
                              Mixing::mixture);
  if (a.kind == AttentionKind::dilated && a.mixing == Mixing::head_groups &&
      std::size_t(p.heads) < a.segment_lengths.size())
    b.fail(*b.get("attention.mixing"), "attention.mixing",
           "head_groups needs problem.heads >= the number of branches (" +
               std::to_string(a.segment_lengths.size()) + "), got " + std::to_string(p.heads) +
               " heads");
  a.causal = b.boolean("attention.causal", false);
  if (auto v = b.get("attention.scale")) {
    if (!(v->node.IsScalar() && v->node.Scalar() == "auto"))
      a.scale = b.finite_number(*v, "attention.scale", "auto or ", false); // SPEC 5: a number
  }

  // ring
  RingConfig &r = c.ring;
  r.mode =
      b.choice<RingMode>("ring.mode", {{"mpi", RingMode::mpi}, {"simulated", RingMode::simulated}},
                         RingMode::simulated);
  if (r.mode == RingMode::mpi)
    r.size = int(b.integer("ring.size", 0, int_max, 0)); // 0: the number of ranks
  else
    r.size = int(b.integer("ring.size", 1, int_max, 1));
  r.partition = b.choice<PartitionKind>(
      "ring.partition",
      {{"contiguous", PartitionKind::contiguous}, {"zigzag", PartitionKind::zigzag}},
      PartitionKind::contiguous);
  r.overlap = b.boolean("ring.overlap", true);

  // input
  InputConfig &in = c.input;
  in.source = b.choice<InputSource>("input.source",
                                    {{"random", InputSource::random}, {"npy", InputSource::npy}},
                                    InputSource::random);
  in.seed = b.unsigned64("input.seed", 42);
  const std::pair<const char *, std::string *> npy_keys[] = {
      {"input.q", &in.q}, {"input.k", &in.k}, {"input.v", &in.v}};
  for (const auto &[name, field] : npy_keys) {
    if (in.source == InputSource::npy) {
      if (!b.get(name)) b.fail_missing(name, "required when source is npy (a .npy file path)");
      *field = b.path(name, "", false);
    } else if (auto v = b.get(name)) {
      b.fail(*v, name, "only used with input.source: npy, but source is random (add source: npy)");
    }
  }
  in.check_finite = b.boolean("input.check_finite", true);

  // verify
  c.verify.enabled = b.boolean("verify.enabled", true);
  c.verify.rows = b.integer("verify.rows", 0, i64_max, 64);
  c.verify.tolerance = b.positive_number("verify.tolerance", 1e-4);

  // benchmark
  c.benchmark.warmup = int(b.integer("benchmark.warmup", 0, count_cap, 1));
  c.benchmark.repeats = int(b.integer("benchmark.repeats", 1, count_cap, 5));

  // output
  OutputConfig &out = c.output;
  out.results =
      b.path("output.results", (src.dir / "results.yaml").lexically_normal().string(), false);
  out.o = b.path("output.o", "", true);
  out.lse = b.path("output.lse", "", true);
  const bool sweeping = src.file_has_sweep || b.has_sweep();
  out.csv = b.path("output.csv",
                   sweeping ? (src.dir / "results.csv").lexically_normal().string() : "", true);
  {
    // No output may overwrite another output or an input.
    std::vector<std::pair<std::string, std::string>> files = {
        {"input.q", in.q},      {"input.k", in.k},
        {"input.v", in.v},      {"output.results", out.results},
        {"output.o", out.o},    {"output.lse", out.lse},
        {"output.csv", out.csv}};
    for (std::size_t i = 3; i < files.size(); ++i)
      for (std::size_t j = 0; j < i; ++j) {
        if (files[i].second.empty() || files[i].second != files[j].second) continue;
        const std::string &key = files[i].first;
        const auto v = b.get(key);
        const std::string what =
            "the same file as " + files[j].first + " (" + files[i].second + ")";
        if (v) b.fail(*v, key, what);
        b.fail_missing(key, what);
      }
  }

  // sweep (kept on the base config only)
  if (!point)
    for (const auto &axis : src.sweep) c.sweep.push_back(SweepAxis{axis.key, axis.texts});
  else
    c.sweep_point = *point;

  for (const std::string &key : all_dotted_keys()) {
    const std::string o = b.origin_text(key);
    if (!o.empty()) c.origins[key] = o;
  }
  for (const auto &[section, mark] : src.section_marks)
    c.origins[section] = location(src.file, mark);
  return c;
}

RunConfig load_source(std::shared_ptr<DeckSource> src,
                      const std::vector<std::string> &set_overrides) {
  index_file(*src);
  for (const std::string &s : set_overrides) add_set_override(*src, s);
  std::shared_ptr<const DeckSource> csrc = src;
  RunConfig cfg = build(csrc, nullptr);
  // Check every point of the sweep now, so a sweep never fails half-way.
  const std::size_t n = sweep_size(cfg);
  if (!cfg.sweep.empty())
    for (std::size_t i = 0; i < n; ++i) {
      const SweepPoint point = sweep_point(cfg, i);
      build(csrc, &point);
    }
  return cfg;
}

std::shared_ptr<DeckSource> parse_source(const std::string &text, const std::string &name,
                                         const fs::path &dir) {
  auto src = std::make_shared<DeckSource>();
  src->file = name;
  src->dir = dir;
  try {
    src->root = YAML::Load(text);
  } catch (const YAML::DeepRecursion &e) { // yaml-cpp's own message says "bad file"
    throw DeckError(location(name, e.mark) +
                    ": malformed YAML: nested too deeply (the parser's limit is " +
                    std::to_string(e.depth()) + " levels)");
  } catch (const YAML::ParserException &e) {
    std::string hint;
    if (!e.mark.is_null()) {
      // yaml-cpp's messages about tabs are cryptic; say what is wrong.
      std::istringstream lines(text);
      std::string line;
      for (int i = 0; i <= e.mark.line && std::getline(lines, line); ++i) {
      }
      const std::size_t indent_end = line.find_first_not_of(" \t");
      if (line.substr(0, indent_end).find('\t') != std::string::npos)
        hint = "; line " + std::to_string(e.mark.line + 1) +
               " is indented with a tab (YAML needs spaces)";
    }
    throw DeckError(location(name, e.mark) + ": malformed YAML: " + e.msg + hint);
  } catch (const YAML::Exception &e) {
    throw DeckError(location(name, e.mark) + ": cannot read the deck: " + e.msg);
  }
  return src;
}

} // namespace

// ---- public API ------------------------------------------------------------------------

RunConfig load_deck(const std::string &path, const std::vector<std::string> &set_overrides) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw DeckError(path + ": cannot read the deck: no such file");
  if (fs::is_directory(path, ec)) throw DeckError(path + ": cannot read the deck: it is a folder");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DeckError(path + ": cannot read the deck: cannot open it for reading");
  std::ostringstream text;
  text << in.rdbuf();
  return load_source(parse_source(text.str(), path, fs::path(path).parent_path()), set_overrides);
}

RunConfig load_deck_string(const std::string &yaml, const std::string &name,
                           const std::vector<std::string> &set_overrides,
                           const std::string &base_dir) {
  return load_source(parse_source(yaml, name, fs::path(base_dir)), set_overrides);
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
    auto s = parse_source(describe(cfg), cfg.deck_path.empty() ? "<config>" : cfg.deck_path, "");
    index_file(*s);
    src = s;
  }
  for (const auto &[key, value] : point)
    if (!is_data_key(key)) throw DeckError("sweep point " + key + "=" + value + ": unknown key");
  return build(src, &point);
}

std::vector<RunConfig> expand_sweep(const RunConfig &cfg) {
  if (cfg.sweep.empty()) return {cfg};
  std::vector<RunConfig> out;
  const std::size_t n = sweep_size(cfg);
  for (std::size_t i = 0; i < n; ++i) out.push_back(apply_sweep_point(cfg, sweep_point(cfg, i)));
  return out;
}

// ---- description -------------------------------------------------------------------------

const char *to_string(AttentionKind k) { return k == AttentionKind::dilated ? "dilated" : "dense"; }
const char *to_string(RingMode m) { return m == RingMode::mpi ? "mpi" : "simulated"; }
const char *to_string(InputSource s) { return s == InputSource::npy ? "npy" : "random"; }
const char *to_string(Mixing m) { return m == Mixing::head_groups ? "head_groups" : "mixture"; }
const char *to_string(PartitionKind p) {
  return p == PartitionKind::zigzag ? "zigzag" : "contiguous";
}

void emit_config(YAML::Emitter &out, const RunConfig &c) {
  auto path_or_null = [&](const char *key, const std::string &p) {
    out << YAML::Key << key << YAML::Value;
    if (p.empty())
      out << YAML::Null;
    else
      out << p;
  };
  auto int_list = [&](const char *key, const std::vector<std::int64_t> &v) {
    out << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (std::int64_t x : v) out << x;
    out << YAML::EndSeq;
  };

  out << YAML::BeginMap;
  out << YAML::Key << "problem" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "batch" << YAML::Value << c.problem.batch;
  out << YAML::Key << "seq_len" << YAML::Value << c.problem.seq_len;
  out << YAML::Key << "heads" << YAML::Value << c.problem.heads;
  out << YAML::Key << "kv_heads" << YAML::Value << c.problem.kv_heads;
  out << YAML::Key << "head_dim" << YAML::Value << c.problem.head_dim;
  out << YAML::Key << "dtype" << YAML::Value << dtype_name(c.problem.dtype);
  out << YAML::EndMap;

  out << YAML::Key << "attention" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "kind" << YAML::Value << to_string(c.attention.kind);
  if (c.attention.kind == AttentionKind::dilated) {
    int_list("segment_lengths", c.attention.segment_lengths);
    int_list("dilation_rates", c.attention.dilation_rates);
    out << YAML::Key << "mixing" << YAML::Value << to_string(c.attention.mixing);
  }
  out << YAML::Key << "causal" << YAML::Value << c.attention.causal;
  out << YAML::Key << "scale" << YAML::Value
      << (c.attention.scale ? format_double(*c.attention.scale) : std::string("auto"));
  out << YAML::EndMap;

  out << YAML::Key << "ring" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "mode" << YAML::Value << to_string(c.ring.mode);
  out << YAML::Key << "size" << YAML::Value << c.ring.size;
  if (c.ring.mode == RingMode::mpi && c.ring.size == 0)
    out << YAML::Comment("0: the number of MPI ranks");
  out << YAML::Key << "partition" << YAML::Value << to_string(c.ring.partition);
  out << YAML::Key << "overlap" << YAML::Value << c.ring.overlap;
  out << YAML::EndMap;

  out << YAML::Key << "input" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "source" << YAML::Value << to_string(c.input.source);
  out << YAML::Key << "seed" << YAML::Value << c.input.seed;
  if (c.input.source == InputSource::npy) {
    out << YAML::Key << "q" << YAML::Value << c.input.q;
    out << YAML::Key << "k" << YAML::Value << c.input.k;
    out << YAML::Key << "v" << YAML::Value << c.input.v;
  }
  out << YAML::Key << "check_finite" << YAML::Value << c.input.check_finite;
  out << YAML::EndMap;

  out << YAML::Key << "verify" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "enabled" << YAML::Value << c.verify.enabled;
  out << YAML::Key << "rows" << YAML::Value << c.verify.rows;
  out << YAML::Key << "tolerance" << YAML::Value << format_double(c.verify.tolerance);
  out << YAML::EndMap;

  out << YAML::Key << "benchmark" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "warmup" << YAML::Value << c.benchmark.warmup;
  out << YAML::Key << "repeats" << YAML::Value << c.benchmark.repeats;
  out << YAML::EndMap;

  out << YAML::Key << "output" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "results" << YAML::Value << c.output.results;
  path_or_null("o", c.output.o);
  path_or_null("lse", c.output.lse);
  path_or_null("csv", c.output.csv);
  out << YAML::EndMap;

  if (!c.sweep.empty()) {
    out << YAML::Key << "sweep" << YAML::Value << YAML::BeginMap;
    for (const SweepAxis &a : c.sweep) {
      out << YAML::Key << a.key << YAML::Value << YAML::Flow << YAML::BeginSeq;
      for (const std::string &v : a.values) out << YAML::Load(v);
      out << YAML::EndSeq;
    }
    out << YAML::EndMap;
  }
  out << YAML::EndMap;
}

std::string describe(const RunConfig &cfg) {
  YAML::Emitter out;
  emit_config(out, cfg);
  return std::string(out.c_str()) + "\n";
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
