#ifndef RINGATTN_DRIVER_DECKVALUES_HPP
#define RINGATTN_DRIVER_DECKVALUES_HPP

// Scalars of a deck: reading integers, numbers and booleans from YAML text,
// writing doubles back, and the pieces of error messages about them.

#include <cstdint>
#include <string>

namespace YAML {
class Node;
class Mark;
} // namespace YAML

namespace ringattn::driver::Details {

std::string quoted(const std::string &s);
/// `"abc"`, `nothing`, `a list`, `a map`: what a value is, for messages.
std::string describe_node(const YAML::Node &n);

enum class IntParse { ok, not_integer, out_of_range };

/// Integers: [+-]digits, or a number in exponent/decimal form that is exactly
/// an integer (1e6, 65536.0), convenient in scaling studies.
IntParse parse_int(const std::string &s, std::int64_t &out);
bool parse_double(const std::string &s, double &out);
/// true/yes/on, false/no/off (any case).
bool parse_bool(const std::string &s, bool &out);
/// Shortest text that reads back as the same double (and reads as a float).
std::string format_double(double v);
/// "an integer >= lo" or "an integer in [lo, hi]".
std::string int_expectation(std::int64_t lo, std::int64_t hi);
/// FILE:LINE:COLUMN (1-based; 1:1 for a null mark).
std::string location(const std::string &file, const YAML::Mark &m);
/// YAML text of a node on one line (flow style), for sweep values.
std::string flow_text(const YAML::Node &n);

} // namespace ringattn::driver::Details

#endif
