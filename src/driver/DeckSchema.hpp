#ifndef RINGATTN_DRIVER_DECKSCHEMA_HPP
#define RINGATTN_DRIVER_DECKSCHEMA_HPP

// The deck's key tree (docs/SPEC.md section 5): its sections and their keys,
// and the "did you mean" suggestions for a key that is not in it.

#include <cstddef>
#include <string>
#include <vector>

namespace ringattn::driver::Details {

struct Section {
  const char *name;
  std::vector<std::string> keys;
};

/// The sections of a deck in order, each with its keys (sweep: is apart).
const std::vector<Section> &schema();
/// The section called `name`, or nullptr (also for "sweep").
const Section *find_section(const std::string &name);
/// The top-level names: the schema's sections and "sweep".
std::vector<std::string> section_names();
/// Every key as SECTION.KEY, in schema order.
std::vector<std::string> all_dotted_keys();
/// Whether `dotted` is one of all_dotted_keys().
bool is_data_key(const std::string &dotted);

/// The most points a sweep may have (each one is a full run).
constexpr std::size_t max_sweep_points = 10000;

std::string join(const std::vector<std::string> &v, const char *sep = ", ");

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
std::size_t edit_distance(const std::string &a, const std::string &b);
/// The candidate nearest to `word`, if near enough to be a likely typo.
std::string nearest(const std::string &word, const std::vector<std::string> &candidates);
/// "unknown key; did you mean 'seq_len'?" for a key of `section` (empty:
/// top level), or a list of the valid keys when nothing is near.
std::string unknown_key_message(const std::string &section, const std::string &key);

} // namespace ringattn::driver::Details

#endif
