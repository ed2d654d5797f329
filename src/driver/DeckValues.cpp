#include "DeckValues.hpp"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

namespace ringattn::driver::Details {

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

} // namespace ringattn::driver::Details
