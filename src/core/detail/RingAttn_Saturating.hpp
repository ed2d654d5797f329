#ifndef RINGATTN_SATURATING_HPP
#define RINGATTN_SATURATING_HPP

// Sizes that saturate instead of overflowing: the memory model evaluates
// decks far beyond any machine (the capacity search doubles N until a
// member does not fit), and a wrapped product would make them fit.

#include <cstdint>
#include <initializer_list>
#include <stdexcept>

namespace ringattn::Details {

inline constexpr std::int64_t saturated = INT64_MAX;

/// a * b and a + b for a, b >= 0, saturating at `saturated`.
inline std::int64_t sat_mul(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (a < 0 || b < 0) throw std::logic_error("sat_mul: negative operand");
  return __builtin_mul_overflow(a, b, &r) ? saturated : r;
}

inline std::int64_t sat_add(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (a < 0 || b < 0) throw std::logic_error("sat_add: negative operand");
  return __builtin_add_overflow(a, b, &r) ? saturated : r;
}

inline std::int64_t sat_prod(std::initializer_list<std::int64_t> factors) {
  std::int64_t r = 1;
  for (std::int64_t f : factors) r = sat_mul(r, f);
  return r;
}

} // namespace ringattn::Details

#endif
