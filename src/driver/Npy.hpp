#ifndef RINGATTN_DRIVER_NPY_HPP
#define RINGATTN_DRIVER_NPY_HPP

// NumPy .npy files (docs/SPEC.md section 5): little-endian float16 ('<f2'), float32
// ('<f4') or float64 ('<f8'), C order. The reader reads element ranges, the writer
// writes them at offsets, so a member touches only its own rows (memory N/P,
// docs/SPEC.md section 3) and several ranks can fill one file. The format
// and the file handling both share are in NpyFile.hpp; AtomicFile.hpp gives
// "no partial output files".

#include "DType.hpp"
#include "NpyFile.hpp"

#include <core/RingAttn_Half.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace ringattn::driver {

/// An open .npy file for reading. The header is checked on construction:
/// magic, version (1.0; 2.0 and 3.0 too), dtype '<f2', '<f4' or '<f8', fortran_order
/// False, and a file long enough for the shape. Element ranges are read on
/// demand (pread), converted to float or double, or rounded (to nearest even)
/// to a 16-bit storage type.
class NpyReader {
public:
  explicit NpyReader(const std::string &path);

  const std::string &path() const { return file_.path; }
  const NpyHeader &header() const { return file_.header; }

  /// Throws NpyError unless the shape is `expected`; `meaning` (e.g.
  /// "[B, N, H, D]") is put in the message.
  void expect_shape(const std::vector<std::int64_t> &expected,
                    const std::string &meaning = "") const;

  /// Reads the flat (C-order) elements [offset, offset + count) into dst.
  void read(std::int64_t offset, std::int64_t count, float *dst) const;
  void read(std::int64_t offset, std::int64_t count, double *dst) const;
  void read(std::int64_t offset, std::int64_t count, bfloat16_t *dst) const;
  void read(std::int64_t offset, std::int64_t count, float16_t *dst) const;

private:
  Details::NpyFile file_;
};

/// An .npy file open for writing element ranges at offsets (pwrite), for
/// example each rank its own rows. create() makes the file, open() lets other
/// writers (ranks) join a file that create() made.
class NpyWriter {
public:
  /// Creates (truncates) `path`, writes the header and sizes the file to its
  /// full length (unwritten elements read as 0). `dtype` float16, float32 or
  /// float64 (NpyError for bfloat16, which no .npy file holds).
  static NpyWriter create(const std::string &path, DType dtype,
                          const std::vector<std::int64_t> &shape);
  /// Opens a file made by create(); its header must say `dtype` and `shape`.
  static NpyWriter open(const std::string &path, DType dtype,
                        const std::vector<std::int64_t> &shape);

  const std::string &path() const { return file_.path; }
  const NpyHeader &header() const { return file_.header; }

  /// Writes src to the flat elements [offset, offset + count), converting to
  /// the file's dtype (16-bit values to float32 or float64 exactly).
  void write(std::int64_t offset, std::int64_t count, const float *src);
  void write(std::int64_t offset, std::int64_t count, const double *src);
  void write(std::int64_t offset, std::int64_t count, const bfloat16_t *src);
  void write(std::int64_t offset, std::int64_t count, const float16_t *src);
  /// Closes the file, reporting any late write error. Also done by the
  /// destructor (which cannot report).
  void close();

private:
  NpyWriter() = default;
  Details::NpyFile file_;
};

} // namespace ringattn::driver

#endif
