#include "Npy.hpp"

#include <algorithm>
#include <cerrno>
#include <type_traits>
#include <utility>

#include <fcntl.h>
#include <unistd.h>

namespace ringattn::driver {

using Details::byteswap_inplace;
using Details::check_range;
using Details::errno_text;
using Details::host_is_little_endian;
using Details::pread_all;
using Details::pwrite_all;

namespace {

constexpr std::int64_t chunk_elements = 1 << 16; // conversion buffer size

/// One element from a file's type to a buffer's, or back: through float when either is a
/// 16-bit storage type (rounding to nearest even into one), a plain cast otherwise.
template <class To, class From>
To convert(From x) {
  if constexpr (std::is_same_v<To, From>)
    return x;
  else if constexpr (is_16bit_storage_v<To> || is_16bit_storage_v<From>)
    return To(float(x));
  else
    return static_cast<To>(x);
}

/// Calls f with a value of the C++ type of an .npy file's elements.
template <class F>
void with_file_type(DType dtype, F &&f) {
  if (dtype == DType::float16)
    f(float16_t{});
  else if (dtype == DType::float64)
    f(double{});
  else
    f(float{});
}

template <class Dst>
void read_range(int fd, const std::string &path, const NpyHeader &h, std::int64_t offset,
                std::int64_t count, Dst *dst) {
  check_range(path, offset, count, h.num_elements(), "read");
  const bool swap = !host_is_little_endian();
  auto read_as = [&](auto tag) {
    using File = decltype(tag);
    const std::int64_t base = h.data_offset + offset * std::int64_t(sizeof(File));
    if constexpr (std::is_same_v<File, Dst>) {
      if (!pread_all(fd, dst, std::size_t(count) * sizeof(File), base))
        throw NpyError(path + ": read failed" +
                       (errno ? ": " + errno_text() : " (file truncated)"));
      if (swap) byteswap_inplace(dst, count);
    } else {
      std::vector<File> buf(std::size_t(std::min(count, chunk_elements)));
      for (std::int64_t done = 0; done < count;) {
        const std::int64_t n = std::min(count - done, chunk_elements);
        if (!pread_all(fd, buf.data(), std::size_t(n) * sizeof(File),
                       base + done * std::int64_t(sizeof(File))))
          throw NpyError(path + ": read failed" +
                         (errno ? ": " + errno_text() : " (file truncated)"));
        if (swap) byteswap_inplace(buf.data(), n);
        for (std::int64_t i = 0; i < n; ++i) dst[done + i] = convert<Dst>(buf[i]);
        done += n;
      }
    }
  };
  with_file_type(h.dtype, read_as);
}

template <class Src>
void write_range(int fd, const std::string &path, const NpyHeader &h, std::int64_t offset,
                 std::int64_t count, const Src *src) {
  if (fd < 0) throw NpyError(path + ": write to a closed file");
  check_range(path, offset, count, h.num_elements(), "write");
  const bool swap = !host_is_little_endian();
  auto write_as = [&](auto tag) {
    using File = decltype(tag);
    const std::int64_t base = h.data_offset + offset * std::int64_t(sizeof(File));
    if (std::is_same_v<File, Src> && !swap) {
      if (!pwrite_all(fd, src, std::size_t(count) * sizeof(File), base))
        throw NpyError(path + ": write failed: " + errno_text());
      return;
    }
    std::vector<File> buf(std::size_t(std::min(count, chunk_elements)));
    for (std::int64_t done = 0; done < count;) {
      const std::int64_t n = std::min(count - done, chunk_elements);
      for (std::int64_t i = 0; i < n; ++i) buf[i] = convert<File>(src[done + i]);
      if (swap) byteswap_inplace(buf.data(), n);
      if (!pwrite_all(fd, buf.data(), std::size_t(n) * sizeof(File),
                      base + done * std::int64_t(sizeof(File))))
        throw NpyError(path + ": write failed: " + errno_text());
      done += n;
    }
  };
  with_file_type(h.dtype, write_as);
}

} // namespace

// ---- reader -----------------------------------------------------------------

NpyReader::NpyReader(const std::string &path) : file_(path, O_RDONLY, "open for reading") {
  file_.read_header();
}

void NpyReader::expect_shape(const std::vector<std::int64_t> &expected,
                             const std::string &meaning) const {
  if (file_.header.shape == expected) return;
  throw NpyError(file_.path + ": shape " + npy_shape_string(file_.header.shape) +
                 " does not match the expected " + (meaning.empty() ? "" : meaning + " = ") +
                 npy_shape_string(expected));
}

void NpyReader::read(std::int64_t offset, std::int64_t count, float *dst) const {
  read_range(file_.fd, file_.path, file_.header, offset, count, dst);
}
void NpyReader::read(std::int64_t offset, std::int64_t count, double *dst) const {
  read_range(file_.fd, file_.path, file_.header, offset, count, dst);
}
void NpyReader::read(std::int64_t offset, std::int64_t count, bfloat16_t *dst) const {
  read_range(file_.fd, file_.path, file_.header, offset, count, dst);
}
void NpyReader::read(std::int64_t offset, std::int64_t count, float16_t *dst) const {
  read_range(file_.fd, file_.path, file_.header, offset, count, dst);
}

// ---- writer -----------------------------------------------------------------

NpyWriter NpyWriter::create(const std::string &path, DType dtype,
                            const std::vector<std::int64_t> &shape) {
  Details::checked_elements(shape, path);
  const std::string head = npy_header(dtype, shape);
  NpyWriter w;
  w.file_ = Details::NpyFile(path, O_RDWR | O_CREAT | O_TRUNC, "create");
  NpyHeader &h = w.file_.header;
  h.dtype = dtype;
  h.shape = shape;
  h.data_offset = std::int64_t(head.size());
  if (!pwrite_all(w.file_.fd, head.data(), head.size(), 0))
    throw NpyError(path + ": cannot write the header: " + errno_text());
  if (::ftruncate(w.file_.fd, static_cast<off_t>(h.data_offset + h.data_bytes())) != 0)
    throw NpyError(path + ": cannot size the file to " +
                   std::to_string(h.data_offset + h.data_bytes()) + " bytes: " + errno_text());
  return w;
}

NpyWriter NpyWriter::open(const std::string &path, DType dtype,
                          const std::vector<std::int64_t> &shape) {
  NpyWriter w;
  w.file_ = Details::NpyFile(path, O_RDWR, "open for writing");
  w.file_.read_header();
  const NpyHeader &h = w.file_.header;
  if (h.dtype != dtype)
    throw NpyError(path + ": dtype " + dtype_name(h.dtype) + " where " + dtype_name(dtype) +
                   " was expected");
  if (h.shape != shape)
    throw NpyError(path + ": shape " + npy_shape_string(h.shape) + " does not match the expected " +
                   npy_shape_string(shape));
  return w;
}

void NpyWriter::write(std::int64_t offset, std::int64_t count, const float *src) {
  write_range(file_.fd, file_.path, file_.header, offset, count, src);
}
void NpyWriter::write(std::int64_t offset, std::int64_t count, const double *src) {
  write_range(file_.fd, file_.path, file_.header, offset, count, src);
}
void NpyWriter::write(std::int64_t offset, std::int64_t count, const bfloat16_t *src) {
  write_range(file_.fd, file_.path, file_.header, offset, count, src);
}
void NpyWriter::write(std::int64_t offset, std::int64_t count, const float16_t *src) {
  write_range(file_.fd, file_.path, file_.header, offset, count, src);
}

void NpyWriter::close() { file_.close(); }

} // namespace ringattn::driver
