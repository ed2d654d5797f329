#ifndef RINGATTN_DRIVER_DTYPE_HPP
#define RINGATTN_DRIVER_DTYPE_HPP

// Storage type of the arrays the driver reads and writes (docs/SPEC.md sections 1, 5).

#include <cstddef>

namespace ringattn::driver {

enum class DType { float32, float64 };

/// The deck spelling: "float32" or "float64".
inline const char *dtype_name(DType t) { return t == DType::float64 ? "float64" : "float32"; }
/// Bytes per element.
inline std::size_t dtype_size(DType t) { return t == DType::float64 ? 8 : 4; }

} // namespace ringattn::driver

#endif
