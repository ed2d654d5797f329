#ifndef RINGATTN_DRIVER_DECKSOURCE_HPP
#define RINGATTN_DRIVER_DECKSOURCE_HPP

// A deck as read: the YAML file indexed by dotted key, the `--set`
// overrides and the sweep axes, each with where it came from. RunConfigs are
// built from it (DeckBuild.hpp), once per sweep point.

#include "Deck.hpp"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace ringattn::driver::Details {

namespace fs = std::filesystem;

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

/// Parses YAML text into a DeckSource (not indexed yet); `name` stands for
/// the file in messages, `dir` is the folder relative paths are resolved
/// against. Throws DeckError for malformed YAML.
std::shared_ptr<DeckSource> parse_source(const std::string &text, const std::string &name,
                                         const fs::path &dir);
/// Checks the structure of the file (sections are maps, keys are known and
/// not repeated, sweep axes are non-empty lists) and fills entries, sweep and
/// section_marks. Throws DeckError.
void index_file(DeckSource &src);
/// Applies one `--set KEY=VALUE` (SetOverrides.cpp). Throws DeckError.
void add_set_override(DeckSource &src, const std::string &arg);

} // namespace ringattn::driver::Details

#endif
