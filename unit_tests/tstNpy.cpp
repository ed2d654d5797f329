// .npy reading and writing (docs/SPEC.md section 5) and all-or-nothing output files
// (docs/SPEC.md section 4).
#include <AtomicFile.hpp>
#include <Npy.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <unistd.h>

namespace fs = std::filesystem;
using namespace ringattn::driver;

namespace {

/// A fresh folder for one test, removed afterwards.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string &name) {
    path =
        fs::temp_directory_path() / ("ringattn_tstNpy_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string &f) const { return (path / f).string(); }
};

void write_bytes(const std::string &path, const std::string &bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

std::string read_bytes(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

/// A version 1.0 header written out by hand: magic, version, little-endian
/// length, the dict padded with spaces and ended by '\n' to 64 bytes.
std::string hand_header(const std::string &dict, unsigned char major = 1) {
  std::string d = dict;
  const std::size_t prefix = major == 1 ? 10 : 12;
  while ((prefix + d.size() + 1) % 64 != 0) d += ' ';
  d += '\n';
  std::string h = "\x93NUMPY";
  h += char(major);
  h += '\0';
  h += char(d.size() & 0xff);
  h += char((d.size() >> 8) & 0xff);
  if (major != 1) h += std::string(2, '\0');
  return h + d;
}

template <class Fn>
std::string error_of(Fn &&fn) {
  try {
    fn();
  } catch (const NpyError &e) {
    return e.what();
  }
  return "(no error)";
}

} // namespace

TEST_CASE("npy header matches what NumPy writes", "[npy]") {
  // q.npy of the golden case dense_small was written by numpy.save.
  const std::string golden = std::string(RINGATTN_TEST_DATA_DIR) + "/golden/dense_small/q.npy";
  const std::string bytes = read_bytes(golden);
  const std::string header = npy_header(DType::float32, {1, 37, 2, 8});
  REQUIRE(header.size() % 64 == 0);
  REQUIRE(bytes.compare(0, header.size(), header) == 0);
  CHECK(npy_shape_string({}) == "()");
  CHECK(npy_shape_string({7}) == "(7,)");
  CHECK(npy_shape_string({2, 3}) == "(2, 3)");
}

TEST_CASE("npy reads the golden files", "[npy]") {
  const std::string dir = std::string(RINGATTN_TEST_DATA_DIR) + "/golden/dense_small/";
  NpyReader q(dir + "q.npy");
  CHECK(q.header().dtype == DType::float32);
  CHECK(q.header().shape == std::vector<std::int64_t>{1, 37, 2, 8});
  CHECK(q.header().data_offset == 128);
  q.expect_shape({1, 37, 2, 8});
  NpyReader o(dir + "o_ref.npy");
  CHECK(o.header().dtype == DType::float64);
  NpyReader lse(dir + "lse_ref.npy");
  CHECK(lse.header().shape == std::vector<std::int64_t>{1, 2, 37});
  // The whole array and a slice of it agree, as float and as double.
  std::vector<float> all(std::size_t(q.header().num_elements()));
  q.read(0, std::int64_t(all.size()), all.data());
  std::vector<double> part(16);
  q.read(100, 16, part.data());
  for (std::size_t i = 0; i < part.size(); ++i) CHECK(part[i] == double(all[100 + i]));
}

TEST_CASE("npy reads a hand-written file", "[npy]") {
  TempDir tmp("hand");
  SECTION("float32, version 1.0") {
    // 1.0f, -2.0f, 0.5f, 3.0f as little-endian IEEE-754 bytes.
    const std::string data("\x00\x00\x80\x3f"
                           "\x00\x00\x00\xc0"
                           "\x00\x00\x00\x3f"
                           "\x00\x00\x40\x40",
                           16);
    write_bytes(tmp / "a.npy",
                hand_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }") + data);
    NpyReader r(tmp / "a.npy");
    CHECK(r.header().shape == std::vector<std::int64_t>{2, 2});
    std::vector<float> v(4);
    r.read(0, 4, v.data());
    CHECK(v == std::vector<float>{1.0f, -2.0f, 0.5f, 3.0f});
    std::vector<double> d(2);
    r.read(2, 2, d.data());
    CHECK(d == std::vector<double>{0.5, 3.0});
  }
  SECTION("float64, version 2.0, double-quoted keys, 1-d shape") {
    // 1.5 and -0.25 as little-endian doubles.
    const std::string data("\x00\x00\x00\x00\x00\x00\xf8\x3f"
                           "\x00\x00\x00\x00\x00\x00\xd0\xbf",
                           16);
    write_bytes(tmp / "b.npy",
                hand_header("{\"descr\": \"<f8\", \"shape\": (2,), \"fortran_order\": False}", 2) +
                    data);
    NpyReader r(tmp / "b.npy");
    CHECK(r.header().dtype == DType::float64);
    std::vector<float> v(2);
    r.read(0, 2, v.data());
    CHECK(v == std::vector<float>{1.5f, -0.25f});
  }
}

TEST_CASE("npy round trip and slices", "[npy]") {
  TempDir tmp("roundtrip");
  const std::vector<std::int64_t> shape = {2, 5, 3, 4}; // [B, N, H, D]
  const std::int64_t n = 2 * 5 * 3 * 4;
  std::vector<double> values(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) values[std::size_t(i)] = 0.25 * double(i) - 7.0;

  for (DType dtype : {DType::float32, DType::float64}) {
    const std::string path = tmp / (std::string(dtype_name(dtype)) + ".npy");
    {
      NpyWriter w = NpyWriter::create(path, dtype, shape);
      // Write in two pieces, out of order, the first from float.
      std::vector<float> first(values.begin(), values.begin() + 50);
      w.write(50, n - 50, values.data() + 50);
      w.write(0, 50, first.data());
      w.close();
    }
    NpyReader r(path);
    CHECK(r.header().dtype == dtype);
    CHECK(r.header().shape == shape);
    CHECK(r.header().data_offset % 64 == 0);
    CHECK(std::int64_t(fs::file_size(path)) == r.header().data_offset + r.header().data_bytes());
    std::vector<double> back(static_cast<std::size_t>(n));
    r.read(0, n, back.data());
    CHECK(back == values); // all values are exact in float32
    // A slice: the rows of positions 2..3 of batch 1 (what a ring member reads).
    const std::int64_t row = 3 * 4, offset = (1 * 5 + 2) * row;
    std::vector<float> slice(static_cast<std::size_t>(2 * row));
    r.read(offset, 2 * row, slice.data());
    for (std::int64_t i = 0; i < 2 * row; ++i)
      CHECK(double(slice[std::size_t(i)]) == values[std::size_t(offset + i)]);
    r.read(n, 0, slice.data()); // empty read at the end is fine
  }
}

TEST_CASE("npy float16 ('<f2') input and 16-bit storage values", "[npy][half]") {
  using ringattn::bfloat16_t;
  using ringattn::float16_t;
  TempDir tmp("half");
  // A hand-made '<f2' file: 1, -2, 0.5 + 2^-11, 65504 (the largest half),
  // the smallest subnormal 2^-24, -inf.
  const std::uint16_t bits[6] = {0x3c00, 0xc000, 0x3801, 0x7bff, 0x0001, 0xfc00};
  std::string bytes = hand_header("{'descr': '<f2', 'fortran_order': False, 'shape': (6,), }");
  for (std::uint16_t b : bits) {
    bytes.push_back(char(b & 0xff));
    bytes.push_back(char(b >> 8));
  }
  write_bytes(tmp / "half.npy", bytes);
  NpyReader r(tmp / "half.npy");
  CHECK(r.header().dtype == DType::float16);
  CHECK(r.header().data_bytes() == 12);
  std::vector<double> d(6);
  r.read(0, 6, d.data()); // exact in double
  CHECK(d == std::vector<double>{1, -2, 0.5 + 0x1p-11, 65504, 0x1p-24,
                                 -std::numeric_limits<double>::infinity()});
  std::vector<float16_t> h(6);
  r.read(0, 6, h.data()); // the very bits
  for (int i = 0; i < 6; ++i) CHECK(h[std::size_t(i)].bits == bits[i]);
  std::vector<bfloat16_t> b(6);
  r.read(0, 6, b.data()); // rounded to nearest even: 0.5 + 2^-11 -> 0.5, 65504 -> 65536
  CHECK(float(b[2]) == 0.5f);
  CHECK(float(b[3]) == 65536.0f);

  // float32 input rounded to the storage type on load (nearest even).
  {
    NpyWriter w = NpyWriter::create(tmp / "f4.npy", DType::float32, {3});
    const float x[3] = {1.0f + 0x1p-8f, 1.0f + 0x1p-11f + 0x1p-20f, 0.1f};
    w.write(0, 3, x);
  }
  NpyReader f4(tmp / "f4.npy");
  std::vector<bfloat16_t> bf(3);
  std::vector<float16_t> hf(3);
  f4.read(0, 3, bf.data());
  f4.read(0, 3, hf.data());
  CHECK(float(bf[0]) == 1.0f);            // a tie: to the even 1.0
  CHECK(float(hf[1]) == 1.0f + 0x1p-10f); // above the tie: up
  CHECK(float(bf[2]) == float(bfloat16_t(0.1f)));
  CHECK(float(hf[2]) == float(float16_t(0.1f)));

  // Outputs: 16-bit values written to a float32 file hold exactly the stored values;
  // float16 values may also go to a '<f2' file, bfloat16 to none.
  {
    NpyWriter w = NpyWriter::create(tmp / "o.npy", DType::float32, {3});
    w.write(0, 3, bf.data());
    NpyWriter w2 = NpyWriter::create(tmp / "o2.npy", DType::float16, {3});
    w2.write(0, 3, hf.data());
  }
  std::vector<float> back(3);
  NpyReader(tmp / "o.npy").read(0, 3, back.data());
  for (int i = 0; i < 3; ++i) CHECK(back[std::size_t(i)] == float(bf[std::size_t(i)]));
  NpyReader o2(tmp / "o2.npy");
  CHECK(o2.header().dtype == DType::float16);
  std::vector<float16_t> hback(3);
  o2.read(0, 3, hback.data());
  for (int i = 0; i < 3; ++i) CHECK(hback[std::size_t(i)].bits == hf[std::size_t(i)].bits);
  CHECK_THAT(error_of([&] { NpyWriter::create(tmp / "bf.npy", DType::bfloat16, {3}); }),
             Catch::Contains("no .npy dtype holds bfloat16"));
}

TEST_CASE("npy several writers fill one file", "[npy]") {
  TempDir tmp("writers");
  const std::vector<std::int64_t> shape = {1, 4, 2}; // e.g. LSE [B, H, N]
  {
    NpyWriter owner = NpyWriter::create(tmp / "lse.npy", DType::float32, shape);
    NpyWriter other = NpyWriter::open(tmp / "lse.npy", DType::float32, shape);
    const float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8};
    other.write(4, 4, b);
    owner.write(0, 4, a);
  }
  NpyReader r(tmp / "lse.npy");
  std::vector<float> v(8);
  r.read(0, 8, v.data());
  CHECK(v == std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8});
  CHECK_THAT(error_of([&] { NpyWriter::open(tmp / "lse.npy", DType::float64, shape); }),
             Catch::Contains("lse.npy: dtype float32 where float64 was expected"));
  CHECK_THAT(error_of([&] {
               NpyWriter::open(tmp / "lse.npy", DType::float32, {1, 8});
             }),
             Catch::Contains("shape (1, 4, 2) does not match the expected (1, 8)"));
}

TEST_CASE("npy rejects bad files with clear messages", "[npy]") {
  TempDir tmp("bad");
  const std::string good_dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }";
  const std::string data(16, '\0');
  struct Case {
    const char *name;
    std::string bytes;
    const char *expected;
  };
  const std::vector<Case> cases = {
      {"magic.npy", "PK\x03\x04 this is a zip file, not an array.........", "not a .npy file"},
      {"short.npy", "\x93NUM", "not a .npy file"},
      {"version.npy",
       [&] {
         std::string h = hand_header(good_dict);
         h[6] = 9;
         return h + data;
       }(),
       "unsupported .npy format version 9.0 (expected 1.0, 2.0 or 3.0)"},
      {"int.npy", hand_header("{'descr': '<i4', 'fortran_order': False, 'shape': (2, 2), }") + data,
       "unsupported dtype '<i4' (expected '<f4' float32 or '<f8' float64, or '<f2' float16)"},
      {"complex.npy",
       hand_header("{'descr': '<c8', 'fortran_order': False, 'shape': (2, 2), }") + data,
       "unsupported dtype '<c8'"},
      {"big_half.npy",
       hand_header("{'descr': '>f2', 'fortran_order': False, 'shape': (2, 2), }") + data,
       "big-endian dtype '>f2' is not supported"},
      {"big.npy", hand_header("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }") + data,
       "big-endian dtype '>f4' is not supported"},
      {"fortran.npy",
       hand_header("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }") + data,
       "fortran_order is True; only C-order arrays are supported"},
      {"truncated.npy", hand_header(good_dict) + data.substr(0, 10),
       "truncated: shape (2, 2) of float32 needs 16 bytes of data, the file holds 10"},
      {"header_cut.npy", hand_header(good_dict).substr(0, 40), "truncated .npy header"},
      {"noshape.npy", hand_header("{'descr': '<f4', 'fortran_order': False, }") + data,
       "malformed .npy header: the header has no 'shape'"},
      {"badshape.npy",
       hand_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, -1), }") + data,
       "'shape' must be a tuple of non-negative integers"},
      {"structured.npy",
       hand_header("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }") + data,
       "structured dtypes are not supported"},
  };
  for (const Case &c : cases) {
    DYNAMIC_SECTION(c.name) {
      write_bytes(tmp / c.name, c.bytes);
      const std::string msg = error_of([&] { NpyReader r(tmp / c.name); });
      CHECK_THAT(msg, Catch::StartsWith(tmp / c.name));
      CHECK_THAT(msg, Catch::Contains(c.expected));
    }
  }
  SECTION("missing file") {
    CHECK_THAT(error_of([&] { NpyReader r(tmp / "nope.npy"); }),
               Catch::Contains("nope.npy: cannot open for reading: No such file or directory"));
  }
  SECTION("shape mismatch and out-of-range reads") {
    write_bytes(tmp / "ok.npy", hand_header(good_dict) + data);
    NpyReader r(tmp / "ok.npy");
    CHECK_THAT(error_of([&] {
                 r.expect_shape({1, 2, 2}, "[B, N, H, D]");
               }),
               Catch::Contains("ok.npy: shape (2, 2) does not match the expected [B, N, H, D] = "
                               "(1, 2, 2)"));
    float buf[8];
    CHECK_THAT(error_of([&] { r.read(2, 3, buf); }),
               Catch::Contains("cannot read elements [2, 5) of an array of 4 elements"));
    CHECK_THAT(error_of([&] { r.read(-1, 1, buf); }), Catch::Contains("cannot read elements"));
  }
}

TEST_CASE("npy output files appear whole or not at all", "[npy]") {
  TempDir tmp("atomic");
  const std::string path = tmp / "sub/dir/o.npy"; // the folder is created
  SECTION("commit renames the temporary file into place") {
    AtomicFile f(path, 1234);
    CHECK(f.temp_path() == path + ".tmp.1234");
    CHECK(AtomicFile::temp_path_for(path, 1234) == f.temp_path());
    {
      NpyWriter w = NpyWriter::create(f.temp_path(), DType::float32, {3});
      const float x[3] = {1, 2, 3};
      w.write(0, 3, x);
      w.close();
    }
    CHECK_FALSE(fs::exists(path));
    f.commit();
    CHECK(fs::exists(path));
    CHECK_FALSE(fs::exists(f.temp_path()));
    NpyReader r(path);
    CHECK(r.header().shape == std::vector<std::int64_t>{3});
  }
  SECTION("an error before commit leaves nothing behind") {
    std::string temp;
    try {
      AtomicFile f(path);
      temp = f.temp_path();
      CHECK(temp == path + ".tmp." + std::to_string(::getpid()));
      NpyWriter w = NpyWriter::create(f.temp_path(), DType::float64, {2, 2});
      CHECK(fs::exists(temp));
      throw std::runtime_error("the run failed");
    } catch (const std::runtime_error &) {
    }
    CHECK_FALSE(fs::exists(temp));
    CHECK_FALSE(fs::exists(path));
  }
  SECTION("an existing file is replaced only on commit") {
    write_file_atomically(path, "old");
    CHECK(read_bytes(path) == "old");
    {
      AtomicFile f(path);
      write_bytes(f.temp_path(), "new, unfinished");
    }
    CHECK(read_bytes(path) == "old");
    write_file_atomically(path, "new");
    CHECK(read_bytes(path) == "new");
    for (const auto &entry : fs::directory_iterator(fs::path(path).parent_path()))
      CHECK(entry.path().filename() == "o.npy"); // no temporary files left
  }
}

TEST_CASE("npy offsets past 2^31 elements", "[npy]") {
  // A float32 array of 3 x 2^30 elements (12 GiB, a sparse file): the header,
  // the size check and reads and writes at element offsets beyond 2^31.
  const std::vector<std::int64_t> shape = {3, std::int64_t(1) << 30};
  const std::string header = npy_header(DType::float32, shape);
  CHECK(header.find("'shape': (3, 1073741824), }") != std::string::npos);
  CHECK(header.size() % 64 == 0);
  TempDir tmp("large");
  const std::int64_t n = 3 * (std::int64_t(1) << 30);
  std::optional<NpyWriter> w;
  try {
    w.emplace(NpyWriter::create(tmp / "big.npy", DType::float32, shape));
  } catch (const NpyError &e) {
    WARN("skipped: this file system cannot hold a 12 GiB sparse file: " << e.what());
    return;
  }
  const float a[2] = {1.5f, -2.5f}, b[3] = {3.0f, 4.0f, 5.0f};
  w->write((std::int64_t(1) << 31) + 5, 2, a);
  w->write(n - 3, 3, b);
  w->close();
  const NpyReader r(tmp / "big.npy");
  CHECK(r.header().num_elements() == n);
  CHECK(r.header().data_bytes() == 4 * n);
  double got[4] = {};
  r.read((std::int64_t(1) << 31) + 4, 4, got);
  CHECK(got[0] == 0.0);
  CHECK(got[1] == 1.5);
  CHECK(got[2] == -2.5);
  CHECK(got[3] == 0.0);
  float last[3] = {};
  r.read(n - 3, 3, last);
  CHECK(last[2] == 5.0f);
  CHECK_THROWS_AS(r.read(n - 2, 3, got), NpyError);
  // Truncated by one byte, the same header is refused before any read.
  fs::resize_file(tmp / "big.npy", fs::file_size(tmp / "big.npy") - 1);
  CHECK_THAT(error_of([&] { NpyReader(tmp / "big.npy"); }),
             Catch::Contains("needs 12884901888 bytes of data, the file holds 12884901887"));
}
