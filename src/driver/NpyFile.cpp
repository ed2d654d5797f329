#include "NpyFile.hpp"

#include <cctype>
#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace ringattn::driver {

namespace {

constexpr char magic[] = "\x93NUMPY";
constexpr std::size_t magic_len = 6;

} // namespace

namespace Details {

namespace {

// ---- the header dictionary: a Python literal such as
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
class DictParser {
public:
  DictParser(const std::string &text, const std::string &path) : s_(text), path_(path) {}

  NpyHeader parse() {
    NpyHeader h;
    bool have_descr = false, have_fortran = false, have_shape = false;
    std::string descr;
    skip_ws();
    expect('{');
    while (true) {
      skip_ws();
      if (peek() == '}') break;
      const std::string key = parse_string();
      skip_ws();
      expect(':');
      skip_ws();
      if (key == "descr") {
        if (peek() != '\'' && peek() != '"')
          fail("'descr' is not a simple type string (structured dtypes are not supported)");
        descr = parse_string();
        have_descr = true;
      } else if (key == "fortran_order") {
        h.fortran_order = parse_bool();
        have_fortran = true;
      } else if (key == "shape") {
        h.shape = parse_shape();
        have_shape = true;
      } else {
        fail("unexpected key '" + key + "' in the header");
      }
      skip_ws();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      skip_ws();
      if (peek() != '}') fail("expected ',' or '}' in the header dictionary");
    }
    if (!have_descr) fail("the header has no 'descr'");
    if (!have_fortran) fail("the header has no 'fortran_order'");
    if (!have_shape) fail("the header has no 'shape'");

    if (descr == "<f2" || (descr == "=f2" && host_is_little_endian()))
      h.dtype = DType::float16;
    else if (descr == "<f4" || (descr == "=f4" && host_is_little_endian()))
      h.dtype = DType::float32;
    else if (descr == "<f8" || (descr == "=f8" && host_is_little_endian()))
      h.dtype = DType::float64;
    else if (descr == ">f2" || descr == ">f4" || descr == ">f8")
      throw NpyError(path_ + ": big-endian dtype '" + descr +
                     "' is not supported (expected little-endian '<f2', '<f4' or '<f8'; in "
                     "NumPy: a.astype('<f4'))");
    else
      throw NpyError(path_ + ": unsupported dtype '" + descr +
                     "' (expected '<f4' float32 or '<f8' float64, or '<f2' float16)");
    if (h.fortran_order)
      throw NpyError(path_ + ": fortran_order is True; only C-order arrays are supported "
                             "(in NumPy: np.save(f, np.ascontiguousarray(a)))");
    return h;
  }

private:
  [[noreturn]] void fail(const std::string &what) const {
    throw NpyError(path_ + ": malformed .npy header: " + what);
  }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void skip_ws() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++i_;
  }
  std::string parse_string() {
    const char q = peek();
    if (q != '\'' && q != '"') fail("expected a quoted key or string");
    ++i_;
    const std::size_t end = s_.find(q, i_);
    if (end == std::string::npos) fail("unterminated string");
    std::string out = s_.substr(i_, end - i_);
    i_ = end + 1;
    return out;
  }
  bool parse_bool() {
    if (s_.compare(i_, 4, "True") == 0) {
      i_ += 4;
      return true;
    }
    if (s_.compare(i_, 5, "False") == 0) {
      i_ += 5;
      return false;
    }
    fail("'fortran_order' is neither True nor False");
  }
  std::vector<std::int64_t> parse_shape() {
    std::vector<std::int64_t> shape;
    expect('(');
    while (true) {
      skip_ws();
      if (peek() == ')') {
        ++i_;
        break;
      }
      if (!std::isdigit(static_cast<unsigned char>(peek())))
        fail("'shape' must be a tuple of non-negative integers");
      std::int64_t v = 0;
      while (std::isdigit(static_cast<unsigned char>(peek()))) {
        const int d = peek() - '0';
        if (v > (std::numeric_limits<std::int64_t>::max() - d) / 10)
          fail("a dimension in 'shape' is too large");
        v = v * 10 + d;
        ++i_;
      }
      if (peek() == 'L') ++i_; // Python 2 long
      shape.push_back(v);
      skip_ws();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      skip_ws();
      if (peek() != ')') fail("expected ',' or ')' in 'shape'");
    }
    return shape;
  }

  const std::string &s_;
  const std::string &path_;
  std::size_t i_ = 0;
};

} // namespace

bool host_is_little_endian() {
  const std::uint16_t one = 1;
  unsigned char b;
  std::memcpy(&b, &one, 1);
  return b == 1;
}

std::string errno_text() { return std::strerror(errno); }

/// pread until `bytes` are read; false at end of file.
bool pread_all(int fd, void *buf, std::size_t bytes, std::int64_t offset) {
  char *p = static_cast<char *>(buf);
  while (bytes > 0) {
    const ssize_t got = ::pread(fd, p, bytes, static_cast<off_t>(offset));
    if (got < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (got == 0) {
      errno = 0;
      return false;
    }
    p += got;
    bytes -= static_cast<std::size_t>(got);
    offset += got;
  }
  return true;
}

bool pwrite_all(int fd, const void *buf, std::size_t bytes, std::int64_t offset) {
  const char *p = static_cast<const char *>(buf);
  while (bytes > 0) {
    const ssize_t put = ::pwrite(fd, p, bytes, static_cast<off_t>(offset));
    if (put < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += put;
    bytes -= static_cast<std::size_t>(put);
    offset += put;
  }
  return true;
}

std::int64_t checked_elements(const std::vector<std::int64_t> &shape, const std::string &path) {
  std::int64_t n = 1;
  for (std::int64_t d : shape) {
    if (d < 0) throw NpyError(path + ": negative dimension in shape " + npy_shape_string(shape));
    if (d != 0 && n > std::numeric_limits<std::int64_t>::max() / 8 / d)
      throw NpyError(path + ": shape " + npy_shape_string(shape) + " is too large");
    n *= d;
  }
  return n;
}

void check_range(const std::string &path, std::int64_t offset, std::int64_t count, std::int64_t n,
                 const char *what) {
  if (offset < 0 || count < 0 || offset > n || count > n - offset)
    throw NpyError(path + ": cannot " + what + " elements [" + std::to_string(offset) + ", " +
                   std::to_string(offset + count) + ") of an array of " + std::to_string(n) +
                   " elements");
}

namespace {

/// Parses the header of the open file; checks the file holds all the data.
NpyHeader parse_header(int fd, const std::string &path) {
  unsigned char pre[12] = {};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw NpyError(path + ": cannot stat: " + errno_text());
  const std::int64_t file_size = st.st_size;
  if (file_size < 10 || !pread_all(fd, pre, 10, 0) || std::memcmp(pre, magic, magic_len) != 0)
    throw NpyError(path + ": not a .npy file (it does not start with the magic bytes "
                          "\\x93NUMPY)");
  const int major = pre[6], minor = pre[7];
  std::int64_t header_len = 0, dict_start = 0;
  if (major == 1 && minor == 0) {
    header_len = pre[8] | (pre[9] << 8);
    dict_start = 10;
  } else if ((major == 2 || major == 3) && minor == 0) {
    if (file_size < 12 || !pread_all(fd, pre, 12, 0))
      throw NpyError(path + ": truncated .npy header");
    header_len = std::int64_t(pre[8]) | (std::int64_t(pre[9]) << 8) |
                 (std::int64_t(pre[10]) << 16) | (std::int64_t(pre[11]) << 24);
    dict_start = 12;
  } else {
    throw NpyError(path + ": unsupported .npy format version " + std::to_string(major) + "." +
                   std::to_string(minor) + " (expected 1.0, 2.0 or 3.0)");
  }
  if (dict_start + header_len > file_size)
    throw NpyError(path + ": truncated .npy header (header length " + std::to_string(header_len) +
                   ", file size " + std::to_string(file_size) + " bytes)");
  std::string dict(std::size_t(header_len), '\0');
  if (header_len > 0 && !pread_all(fd, dict.data(), dict.size(), dict_start))
    throw NpyError(path + ": cannot read the .npy header: " + errno_text());

  NpyHeader h = DictParser(dict, path).parse();
  h.data_offset = dict_start + header_len;
  checked_elements(h.shape, path);
  const std::int64_t need = h.data_bytes();
  if (file_size - h.data_offset < need)
    throw NpyError(path + ": truncated: shape " + npy_shape_string(h.shape) + " of " +
                   dtype_name(h.dtype) + " needs " + std::to_string(need) +
                   " bytes of data, the file holds " + std::to_string(file_size - h.data_offset));
  return h;
}

} // namespace

NpyFile::NpyFile(std::string path_, int flags, const char *what) : path(std::move(path_)) {
  fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
  if (fd < 0) throw NpyError(path + ": cannot " + what + ": " + errno_text());
}

NpyFile::~NpyFile() {
  if (fd >= 0) ::close(fd);
}

NpyFile::NpyFile(NpyFile &&o) noexcept
    : path(std::move(o.path)), header(std::move(o.header)), fd(std::exchange(o.fd, -1)) {}

NpyFile &NpyFile::operator=(NpyFile &&o) noexcept {
  if (this != &o) {
    if (fd >= 0) ::close(fd);
    path = std::move(o.path);
    header = std::move(o.header);
    fd = std::exchange(o.fd, -1);
  }
  return *this;
}

void NpyFile::read_header() { header = parse_header(fd, path); }

void NpyFile::close() {
  if (fd < 0) return;
  const int f = std::exchange(fd, -1);
  if (::close(f) != 0) throw NpyError(path + ": close failed: " + errno_text());
}

} // namespace Details

std::int64_t NpyHeader::num_elements() const {
  std::int64_t n = 1;
  for (std::int64_t d : shape) n *= d;
  return n;
}
std::int64_t NpyHeader::data_bytes() const {
  return num_elements() * std::int64_t(dtype_size(dtype));
}

std::string npy_shape_string(const std::vector<std::int64_t> &shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

std::string npy_header(DType dtype, const std::vector<std::int64_t> &shape) {
  if (dtype == DType::bfloat16)
    throw NpyError("npy: no .npy dtype holds bfloat16 (write its values as float32)");
  const char *descr = dtype == DType::float64 ? "<f8" : dtype == DType::float16 ? "<f2" : "<f4";
  std::string dict = std::string("{'descr': '") + descr +
                     "', 'fortran_order': False, 'shape': " + npy_shape_string(shape) + ", }";
  // magic (6) + version (2) + length (2) + dict + padding + '\n' = multiple of 64
  const std::size_t unpadded = magic_len + 4 + dict.size() + 1;
  const std::size_t total = (unpadded + 63) / 64 * 64;
  if (total - magic_len - 4 > 65535)
    throw NpyError("npy header too long for format version 1.0 (shape " + npy_shape_string(shape) +
                   ")");
  dict.append(total - unpadded, ' ');
  dict.push_back('\n');
  const std::size_t len = dict.size();
  std::string out(magic, magic_len);
  out.push_back('\x01');
  out.push_back('\x00');
  out.push_back(static_cast<char>(len & 0xff));
  out.push_back(static_cast<char>((len >> 8) & 0xff));
  return out + dict;
}

} // namespace ringattn::driver
