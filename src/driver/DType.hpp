#ifndef RINGATTN_DRIVER_DTYPE_HPP
#define RINGATTN_DRIVER_DTYPE_HPP

// Storage type of the arrays the driver reads and writes (docs/SPEC.md sections 1, 5), and the
// element type of an .npy file ('<f2' float16, '<f4' float32, '<f8' float64; NumPy has no
// bfloat16, so no file holds one).

#include <cstddef>

namespace ringattn::driver {

enum class DType { float32, float64, bfloat16, float16 };

/// The deck spelling: "float32", "float64", "bfloat16" or "float16".
inline const char *dtype_name(DType t) {
  switch (t) {
  case DType::float64:
    return "float64";
  case DType::bfloat16:
    return "bfloat16";
  case DType::float16:
    return "float16";
  default:
    return "float32";
  }
}
/// Bytes per element.
inline std::size_t dtype_size(DType t) {
  return t == DType::float64 ? 8 : t == DType::float32 ? 4 : 2;
}
/// The 16-bit storage types: O (and dQ, dK, dV) are written as float32 files holding exactly
/// the stored values, LSE is float32 (docs/SPEC.md section 5).
inline bool is_16bit(DType t) { return t == DType::bfloat16 || t == DType::float16; }
/// The element type of the O, LSE, dQ, dK and dV files of a run in storage type t.
inline DType output_file_dtype(DType t) { return is_16bit(t) ? DType::float32 : t; }

/// verify.tolerance's default: O (and dQ, dK, dV) within 1e-4, or 1e-2 (bfloat16) and
/// 2e-3 (float16) of the float64 reference of the rounded inputs.
inline double default_tolerance(DType t) {
  return t == DType::bfloat16 ? 1e-2 : t == DType::float16 ? 2e-3 : 1e-4;
}
/// LSE's tolerance: verify.tolerance, and at most 1e-3 with 16-bit storage (LSE is float32
/// in every storage type; only the rounded inputs move it).
inline double lse_tolerance(DType t, double tolerance) {
  return is_16bit(t) && tolerance > 1e-3 ? 1e-3 : tolerance;
}

} // namespace ringattn::driver

#endif
