// `--set KEY=VALUE` and `--set sweep.KEY=[...]` on top of the deck file
// (docs/SPEC.md section 5).
#include "DeckSchema.hpp"
#include "DeckSource.hpp"
#include "DeckValues.hpp"

#include <algorithm>

namespace ringattn::driver::Details {

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
    SweepAxisSource axis;
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
    auto same = [&](const SweepAxisSource &a) { return a.key == axis_key; };
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
                                 [&](const SweepAxisSource &a) { return a.key == key; }),
                  src.sweep.end());
  src.sets.push_back(SetOverride{text, key, value});
}

} // namespace ringattn::driver::Details
