#ifndef RINGATTN_DRIVER_NPY_HPP
#define RINGATTN_DRIVER_NPY_HPP

// NumPy .npy files (SPEC section 5): little-endian float32 ('<f4') or float64
// ('<f8'), C order. The reader reads element ranges, the writer writes them at
// offsets, so a member touches only its own rows (memory N/P, SPEC 3) and
// several ranks can fill one file. AtomicFile gives "no partial output files"
// (SPEC 4): write under a temporary name, rename into place on commit.

#include "DType.hpp"

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace ringattn::driver {

/// A bad, unreadable or unwritable .npy file; what() starts with the path.
class NpyError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

struct NpyHeader {
  DType dtype = DType::float32;
  std::vector<std::int64_t> shape; // () for a scalar
  bool fortran_order = false;      // always false once a reader accepted it
  std::int64_t data_offset = 0;    // bytes before the first element
  std::int64_t num_elements() const;
  std::int64_t data_bytes() const;
};

/// "(2, 129, 4, 16)", "(7,)", "()": NumPy's spelling of a shape.
std::string npy_shape_string(const std::vector<std::int64_t> &shape);

/// The complete header (magic, version 1.0, dict, padding; a multiple of 64
/// bytes) of a C-order little-endian array of `dtype` and `shape`.
std::string npy_header(DType dtype, const std::vector<std::int64_t> &shape);

/// An open .npy file for reading. The header is checked on construction:
/// magic, version (1.0; 2.0 and 3.0 too), dtype '<f4' or '<f8', fortran_order
/// False, and a file long enough for the shape. Element ranges are read on
/// demand (pread), converted to float or double.
class NpyReader {
public:
  explicit NpyReader(const std::string &path);
  ~NpyReader();
  NpyReader(NpyReader &&other) noexcept;
  NpyReader &operator=(NpyReader &&other) noexcept;
  NpyReader(const NpyReader &) = delete;
  NpyReader &operator=(const NpyReader &) = delete;

  const std::string &path() const { return path_; }
  const NpyHeader &header() const { return header_; }

  /// Throws NpyError unless the shape is `expected`; `meaning` (e.g.
  /// "[B, N, H, D]") is put in the message.
  void expect_shape(const std::vector<std::int64_t> &expected,
                    const std::string &meaning = "") const;

  /// Reads the flat (C-order) elements [offset, offset + count) into dst.
  void read(std::int64_t offset, std::int64_t count, float *dst) const;
  void read(std::int64_t offset, std::int64_t count, double *dst) const;

private:
  std::string path_;
  NpyHeader header_;
  int fd_ = -1;
};

/// An .npy file open for writing element ranges at offsets (pwrite), for
/// example each rank its own rows. create() makes the file, open() lets other
/// writers (ranks) join a file that create() made.
class NpyWriter {
public:
  /// Creates (truncates) `path`, writes the header and sizes the file to its
  /// full length (unwritten elements read as 0).
  static NpyWriter create(const std::string &path, DType dtype,
                          const std::vector<std::int64_t> &shape);
  /// Opens a file made by create(); its header must say `dtype` and `shape`.
  static NpyWriter open(const std::string &path, DType dtype,
                        const std::vector<std::int64_t> &shape);

  ~NpyWriter();
  NpyWriter(NpyWriter &&other) noexcept;
  NpyWriter &operator=(NpyWriter &&other) noexcept;
  NpyWriter(const NpyWriter &) = delete;
  NpyWriter &operator=(const NpyWriter &) = delete;

  const std::string &path() const { return path_; }
  const NpyHeader &header() const { return header_; }

  /// Writes src to the flat elements [offset, offset + count), converting to
  /// the file's dtype.
  void write(std::int64_t offset, std::int64_t count, const float *src);
  void write(std::int64_t offset, std::int64_t count, const double *src);
  /// Closes the file, reporting any late write error. Also done by the
  /// destructor (which cannot report).
  void close();

private:
  NpyWriter() = default;
  std::string path_;
  NpyHeader header_;
  int fd_ = -1;
};

/// A file written under a temporary name (`path.tmp.<token>`, token = the
/// process id by default) and renamed into place by commit(). Destroyed
/// without commit() (an error, an exception), it removes the temporary file,
/// so a failed run leaves nothing half-written. The parent folder of `path`
/// is created if missing.
///
/// With several ranks writing one file: the owner (rank 0) makes the
/// AtomicFile with a token every rank knows (its pid, broadcast), creates the
/// file at temp_path(); the others write to temp_path_for(path, token); after
/// a barrier the owner commits.
class AtomicFile {
public:
  explicit AtomicFile(std::string path);
  AtomicFile(std::string path, long token);
  ~AtomicFile();
  AtomicFile(const AtomicFile &) = delete;
  AtomicFile &operator=(const AtomicFile &) = delete;

  const std::string &path() const { return path_; }
  const std::string &temp_path() const { return temp_; }
  static std::string temp_path_for(const std::string &path, long token);

  /// Renames the temporary file onto path(). Throws NpyError on failure (and
  /// removes the temporary file).
  void commit();
  /// Removes the temporary file (if any); no error if it is absent.
  void discard() noexcept;

private:
  std::string path_;
  std::string temp_;
  bool done_ = false;
  int slot_ = -1; ///< registration for removal on SIGINT/SIGTERM/SIGHUP
};

/// Checks, before any work, that an AtomicFile at `path` could be committed:
/// its folder exists or can be made, `path` is not a folder, and a file can
/// be created beside it (made and removed again). Throws NpyError.
void check_writable(const std::string &path);

/// Writes `contents` to `path` through an AtomicFile. Throws NpyError.
void write_file_atomically(const std::string &path, const std::string &contents);

} // namespace ringattn::driver

#endif
