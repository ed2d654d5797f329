// libFuzzer target: the .npy reader (docs/SPEC.md section 5) on arbitrary file contents.
//
// The bytes are written to a scratch file and opened with NpyReader; an
// NpyError is the expected answer to a bad file. For a file the reader
// accepts, every element must read back (as float and as double, whole and in
// pieces), and a file written by NpyWriter with the same dtype and shape must
// read back with that dtype and shape. Anything else is a bug: a crash, a
// sanitizer report, another exception type, a hang.
//
//   scripts/fuzz.sh [SECONDS]       builds and runs it (see docs/reliability.md)
#include <Npy.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

using namespace ringattn::driver;

namespace {

[[noreturn]] void bug(const char *what) {
  std::fprintf(stderr, "fuzz_npy: %s\n", what);
  std::abort();
}

std::string scratch(const char *name) {
  const char *dir = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  return std::string(dir) + "/ringattn_fuzz_npy_" + std::to_string(::getpid()) + "_" + name;
}

void write_file(const std::string &path, const std::uint8_t *data, std::size_t size) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) bug("cannot write the scratch file");
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::write(fd, data + done, size - done);
    if (n <= 0) bug("cannot write the scratch file");
    done += std::size_t(n);
  }
  ::close(fd);
}

constexpr std::int64_t max_elements = 1 << 16; // read files no larger than this whole

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  static const std::string path = scratch("in.npy"), copy = scratch("copy.npy");
  write_file(path, data, size);
  try {
    const NpyReader reader(path);
    const NpyHeader &h = reader.header();
    if (h.fortran_order) bug("a Fortran-order file was accepted");
    const std::int64_t n = h.num_elements();
    if (n < 0 || h.data_offset < 10 || h.data_offset + h.data_bytes() > std::int64_t(size))
      bug("accepted header inconsistent with the file");
    if (n <= max_elements) {
      std::vector<float> f(std::size_t(n) + 1);
      std::vector<double> d(std::size_t(n) + 1);
      reader.read(0, n, f.data());
      reader.read(0, n, d.data());
      if (n > 2) reader.read(n / 3, n - n / 3, d.data());
      try { // one past the end: refused
        reader.read(n, 1, d.data());
        bug("a read past the end was accepted");
      } catch (const NpyError &) {
      }
      // Written back with the same dtype and shape, it reads as such.
      {
        NpyWriter w = NpyWriter::create(copy, h.dtype, h.shape);
        w.write(0, n, d.data());
        w.close();
      }
      const NpyReader back(copy);
      if (back.header().shape != h.shape || back.header().dtype != h.dtype)
        bug("NpyWriter's file reads back with another shape or dtype");
      std::vector<double> d2(std::size_t(n) + 1);
      back.read(0, n, d2.data());
      for (std::int64_t i = 0; i < n; ++i) {
        const double a = d[std::size_t(i)], b = d2[std::size_t(i)];
        if (a != b && !(a != a && b != b)) bug("NpyWriter's values read back different");
      }
    }
    (void)npy_shape_string(h.shape);
  } catch (const NpyError &) {
  }
  return 0;
}
