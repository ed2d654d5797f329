// ringattn_npy_compare A.npy B.npy TOLERANCE: exit 0 when both arrays have
// the same shape and max |a - b| <= TOLERANCE (-inf matching -inf; NaN or a
// lone infinity fails); prints the max error. A test helper for CTest.
#include <Npy.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <vector>

int main(int argc, char **argv) {
  using ringattn::driver::NpyReader;
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s A.npy B.npy TOLERANCE\n", argv[0]);
    return 2;
  }
  try {
    const NpyReader a(argv[1]), b(argv[2]);
    const double tol = std::atof(argv[3]);
    if (a.header().shape != b.header().shape) {
      std::fprintf(stderr, "shapes differ\n");
      return 1;
    }
    const std::int64_t n = a.header().num_elements();
    std::vector<double> x(static_cast<std::size_t>(n)), y(static_cast<std::size_t>(n));
    a.read(0, n, x.data());
    b.read(0, n, y.data());
    double err = 0;
    bool bad = false;
    for (std::int64_t i = 0; i < n; ++i) {
      if (std::isnan(x[i]) || std::isnan(y[i]))
        bad = true;
      else if (std::isinf(x[i]) || std::isinf(y[i]))
        bad = bad || x[i] != y[i];
      else
        err = std::fmax(err, std::fabs(x[i] - y[i]));
    }
    std::printf("max abs error %.3e over %lld elements%s\n", err, (long long)n,
                bad ? " (NaN or unmatched infinity)" : "");
    return !bad && err <= tol ? 0 : 1;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
}
