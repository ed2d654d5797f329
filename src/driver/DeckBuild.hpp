#ifndef RINGATTN_DRIVER_DECKBUILD_HPP
#define RINGATTN_DRIVER_DECKBUILD_HPP

// Typed reading of a DeckSource: one validated RunConfig with every default
// filled in (docs/SPEC.md section 5), for the deck or for one sweep point.

#include "Deck.hpp"
#include "DeckSource.hpp"

#include <memory>
#include <string>
#include <vector>

namespace ringattn::driver::Details {

/// The configuration of the deck (`point` null) or of one sweep point (the
/// point's values on top of the file and the --set overrides). Throws DeckError.
RunConfig build(const std::shared_ptr<const DeckSource> &src, const SweepPoint *point);
/// Indexes the file, applies the overrides and builds the deck's
/// configuration, then checks every sweep point. Throws DeckError.
RunConfig load_source(std::shared_ptr<DeckSource> src,
                      const std::vector<std::string> &set_overrides);

} // namespace ringattn::driver::Details

#endif
