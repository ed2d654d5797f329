#include "DeckSource.hpp"

#include "DeckSchema.hpp"
#include "DeckValues.hpp"

#include <yaml-cpp/depthguard.h>

#include <algorithm>
#include <sstream>

namespace ringattn::driver::Details {

namespace {

[[noreturn]] void fail_at(const std::string &file, const YAML::Mark &m, const std::string &key,
                          const std::string &what) {
  throw DeckError(location(file, m) + ": " + key + ": " + what);
}

} // namespace

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
        src.entries[dotted] = FileEntry{k, v};
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
      SweepAxisSource axis;
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

} // namespace ringattn::driver::Details
