// Writes .npy files, good and bad, for the hostile-input table
// (unit_tests/hostile/cases.tsv) and the fuzzing corpus. No dependencies.
//
//   ringattn_make_npy OUT [key=value]...
//     shape=1,32,2,8     the header's shape (and the number of elements written)
//     descr=<f4          the dtype string ('<f4', '<f8', '>f4', '<i4', ...)
//     version=1.0        format version MAJOR.MINOR (2.0/3.0: 4-byte length)
//     magic=good|bad     bad: the first byte is not \x93
//     fortran=False      the fortran_order value, written as given
//     dict=TEXT          the whole header dictionary, verbatim (replaces the above)
//     headerlen=N        the header length field, whatever the header's real length
//     truncate=N         drop the last N bytes of the file
//     nan=I inf=I ninf=I element I (flat, C order) is NaN / +inf / -inf
//     seed=S             values: a smooth function of the index and S, in [-1, 1]
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::vector<std::int64_t> parse_shape(const std::string &s) {
  std::vector<std::int64_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(std::strtoll(item.c_str(), nullptr, 10));
  return out;
}

std::string shape_text(const std::vector<std::int64_t> &shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) s += ",";
  return s + ")";
}

template <class T>
void put(std::string &out, T x, bool big_endian) {
  unsigned char b[sizeof(T)];
  std::memcpy(b, &x, sizeof(T));
  if (big_endian)
    for (std::size_t i = 0; i < sizeof(T); ++i) out.push_back(char(b[sizeof(T) - 1 - i]));
  else
    out.append(reinterpret_cast<const char *>(b), sizeof(T));
}

} // namespace

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s OUT [key=value]...\n", argv[0]);
    return 2;
  }
  std::map<std::string, std::string> opt = {{"shape", "1,32,2,8"}, {"descr", "<f4"},
                                            {"version", "1.0"},    {"magic", "good"},
                                            {"fortran", "False"},  {"seed", "1"}};
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    const auto eq = a.find('=');
    if (eq == std::string::npos) {
      std::fprintf(stderr, "make_npy: expected key=value, got %s\n", a.c_str());
      return 2;
    }
    opt[a.substr(0, eq)] = a.substr(eq + 1);
  }
  const std::vector<std::int64_t> shape = parse_shape(opt["shape"]);
  std::int64_t n = 1;
  for (std::int64_t d : shape) n *= d;
  const std::string descr = opt["descr"];
  const int major = std::atoi(opt["version"].c_str());
  const int minor = std::atoi(opt["version"].substr(opt["version"].find('.') + 1).c_str());

  std::string dict = opt.count("dict")
                         ? opt["dict"]
                         : "{'descr': '" + descr + "', 'fortran_order': " + opt["fortran"] +
                               ", 'shape': " + shape_text(shape) + ", }";
  const std::size_t prefix = major >= 2 ? 12 : 10;
  std::size_t total = prefix + dict.size() + 1;
  total = (total + 63) / 64 * 64;
  dict.append(total - prefix - dict.size() - 1, ' ');
  dict.push_back('\n');
  std::uint64_t len = dict.size();
  if (opt.count("headerlen")) len = std::strtoull(opt["headerlen"].c_str(), nullptr, 10);

  std::string out = "\x93NUMPY";
  if (opt["magic"] == "bad") out[0] = 'X';
  out.push_back(char(major));
  out.push_back(char(minor));
  out.push_back(char(len & 0xff));
  out.push_back(char((len >> 8) & 0xff));
  if (major >= 2) {
    out.push_back(char((len >> 16) & 0xff));
    out.push_back(char((len >> 24) & 0xff));
  }
  out += dict;

  const bool big = !descr.empty() && descr[0] == '>';
  const std::string kind = descr.size() >= 3 ? descr.substr(1) : "f4";
  const double seed = std::atof(opt["seed"].c_str());
  auto special = [&](const char *key, std::int64_t i, double &v) {
    if (opt.count(key) && std::strtoll(opt[key].c_str(), nullptr, 10) == i) {
      if (std::strcmp(key, "nan") == 0) v = std::numeric_limits<double>::quiet_NaN();
      if (std::strcmp(key, "inf") == 0) v = std::numeric_limits<double>::infinity();
      if (std::strcmp(key, "ninf") == 0) v = -std::numeric_limits<double>::infinity();
    }
  };
  for (std::int64_t i = 0; i < n; ++i) {
    double v = std::sin(0.7 * double(i) + seed) * std::cos(0.13 * double(i) * seed);
    special("nan", i, v);
    special("inf", i, v);
    special("ninf", i, v);
    if (kind == "f8")
      put(out, v, big);
    else if (kind == "i4")
      put(out, std::int32_t(v * 100), big);
    else if (kind == "i8")
      put(out, std::int64_t(v * 100), big);
    else if (kind == "f2" || kind == "i2")
      put(out, std::int16_t(v * 100), big);
    else
      put(out, float(v), big);
  }
  if (opt.count("truncate")) {
    const std::size_t cut = std::strtoull(opt["truncate"].c_str(), nullptr, 10);
    out.resize(cut < out.size() ? out.size() - cut : 0);
  }

  std::FILE *f = std::fopen(argv[1], "wb");
  if (!f || std::fwrite(out.data(), 1, out.size(), f) != out.size() || std::fclose(f) != 0) {
    std::perror(argv[1]);
    return 1;
  }
  return 0;
}
