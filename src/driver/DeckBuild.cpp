#include "DeckBuild.hpp"

#include "DeckSchema.hpp"
#include "DeckValues.hpp"

#include <cctype>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>

namespace ringattn::driver::Details {

namespace {

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

} // namespace

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
  p.dtype = b.choice<DType>("problem.dtype",
                            {{"float32", DType::float32},
                             {"float64", DType::float64},
                             {"bfloat16", DType::bfloat16},
                             {"float16", DType::float16}},
                            DType::float32);
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
  a.backward = b.boolean("attention.backward", false);
  if (auto v = b.get("attention.scale")) {
    if (!(v->node.IsScalar() && v->node.Scalar() == "auto"))
      a.scale = b.finite_number(*v, "attention.scale", "auto or ",
                                false); // docs/SPEC.md section 5: a number
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
  if (in.source == InputSource::npy && a.backward) {
    if (!b.get("input.do"))
      b.fail_missing("input.do",
                     "required when source is npy and attention.backward is true (a .npy file "
                     "path, dO [B, N, H, D])");
    in.dout = b.path("input.do", "", false);
  } else if (auto v = b.get("input.do")) {
    b.fail(*v, "input.do",
           in.source == InputSource::npy
               ? "only used with attention.backward: true"
               : "only used with input.source: npy, but source is random (random input "
                 "generates dO)");
  }
  in.check_finite = b.boolean("input.check_finite", true);

  // verify
  c.verify.enabled = b.boolean("verify.enabled", true);
  c.verify.rows = b.integer("verify.rows", 0, i64_max, 64);
  c.verify.tolerance = b.positive_number("verify.tolerance", default_tolerance(p.dtype));

  // benchmark
  c.benchmark.warmup = int(b.integer("benchmark.warmup", 0, count_cap, 1));
  c.benchmark.repeats = int(b.integer("benchmark.repeats", 1, count_cap, 5));

  // output
  OutputConfig &out = c.output;
  out.results =
      b.path("output.results", (src.dir / "results.yaml").lexically_normal().string(), false);
  out.o = b.path("output.o", "", true);
  out.lse = b.path("output.lse", "", true);
  // A named array: nvcc 11.8 cannot deduce a braced list of pairs in a range-for.
  const std::pair<const char *, std::string *> gradient_outputs[] = {
      {"output.dq", &out.dq}, {"output.dk", &out.dk}, {"output.dv", &out.dv}};
  for (const auto &[name, field] : gradient_outputs) {
    *field = b.path(name, "", true);
    if (!field->empty() && !a.backward)
      if (auto v = b.get(name)) b.fail(*v, name, "only used with attention.backward: true");
  }
  const bool sweeping = src.file_has_sweep || b.has_sweep();
  out.csv = b.path("output.csv",
                   sweeping ? (src.dir / "results.csv").lexically_normal().string() : "", true);
  {
    // No output may overwrite another output or an input.
    std::vector<std::pair<std::string, std::string>> files = {{"input.q", in.q},
                                                              {"input.k", in.k},
                                                              {"input.v", in.v},
                                                              {"input.do", in.dout},
                                                              {"output.results", out.results},
                                                              {"output.o", out.o},
                                                              {"output.lse", out.lse},
                                                              {"output.csv", out.csv},
                                                              {"output.dq", out.dq},
                                                              {"output.dk", out.dk},
                                                              {"output.dv", out.dv}};
    for (std::size_t i = 4; i < files.size(); ++i) // outputs vs all before
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

} // namespace ringattn::driver::Details
