#ifndef RINGATTN_DRIVER_NPYFILE_HPP
#define RINGATTN_DRIVER_NPYFILE_HPP

// The .npy format (docs/SPEC.md section 5) and the file handling the reader
// and the writer share: the header (built, parsed and checked), the open
// descriptor with its path and header, whole-buffer pread/pwrite, byte order.

#include "DType.hpp"

#include <algorithm>
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
/// bytes) of a C-order little-endian array of `dtype` (float16, float32 or float64; NpyError
/// for bfloat16) and `shape`.
std::string npy_header(DType dtype, const std::vector<std::int64_t> &shape);

namespace Details {

bool host_is_little_endian();
/// strerror(errno).
std::string errno_text();

template <class T>
void byteswap_inplace(T *p, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) {
    unsigned char *b = reinterpret_cast<unsigned char *>(p + i);
    std::reverse(b, b + sizeof(T));
  }
}

/// pread until `bytes` are read; false at end of file (errno 0) or on error.
bool pread_all(int fd, void *buf, std::size_t bytes, std::int64_t offset);
/// pwrite until `bytes` are written; false on error.
bool pwrite_all(int fd, const void *buf, std::size_t bytes, std::int64_t offset);

/// The number of elements of `shape`; throws NpyError (naming `path`) for a
/// negative dimension or more bytes than an int64 can count.
std::int64_t checked_elements(const std::vector<std::int64_t> &shape, const std::string &path);
/// Throws NpyError unless [offset, offset + count) lies in [0, n); `what`
/// is "read" or "write".
void check_range(const std::string &path, std::int64_t offset, std::int64_t count, std::int64_t n,
                 const char *what);

/// An open .npy file: descriptor, path and header; closed on destruction,
/// movable, not copyable.
class NpyFile {
public:
  NpyFile() = default;
  /// Opens `path` with `flags` (O_CLOEXEC added, mode 0644 when created);
  /// throws NpyError "PATH: cannot WHAT: reason".
  NpyFile(std::string path, int flags, const char *what);
  ~NpyFile();
  NpyFile(NpyFile &&other) noexcept;
  NpyFile &operator=(NpyFile &&other) noexcept;
  NpyFile(const NpyFile &) = delete;
  NpyFile &operator=(const NpyFile &) = delete;

  /// Parses and checks the header (magic, version 1.0, 2.0 or 3.0, dtype
  /// '<f2', '<f4' or '<f8', C order, a file long enough for the shape) into header.
  void read_header();
  /// Closes the descriptor (no-op when closed); throws NpyError if close fails.
  void close();

  std::string path;
  NpyHeader header;
  int fd = -1;
};

} // namespace Details

} // namespace ringattn::driver

#endif
