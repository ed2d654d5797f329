#ifndef RINGATTN_GOLDENCASE_HPP
#define RINGATTN_GOLDENCASE_HPP

// The golden cases (unit_tests/data/golden) as the driver reads them: their
// names, their .npy files and the test Problem of a case's deck. Needs the
// driver (ringattn_driver), unlike RingAttn_TestCase.hpp, which the MPI
// tests and builds without the driver include too.

#include "RingAttn_TestCase.hpp"

#include <Deck.hpp>
#include <Npy.hpp>

#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

namespace ringattn::test {

/// The cases of unit_tests/data/golden.
inline const char *const golden_cases[] = {
    "dense_causal",       "dense_gqa_causal",       "dense_mqa",
    "dense_small",        "dilated_head_groups",    "dilated_head_groups_uneven",
    "dilated_mixture",    "dilated_mixture_causal", "dilated_mixture_ragged",
    "dilated_one_branch", "dilated_r_equals_w",     "dilated_w_beyond_n"};

/// A whole .npy file as float64.
inline std::vector<double> read_npy(const std::string &path) {
  driver::NpyReader reader(path);
  std::vector<double> x(std::size_t(reader.header().num_elements()));
  reader.read(0, std::int64_t(x.size()), x.data());
  return x;
}

/// The Problem of a deck, with inputs read from the .npy files q, k, v.
inline Problem deck_problem(const driver::RunConfig &cfg, const std::string &q,
                            const std::string &k, const std::string &v) {
  Problem p;
  p.B = int(cfg.problem.batch);
  p.N = cfg.problem.seq_len;
  p.H = cfg.problem.heads;
  p.Hkv = cfg.problem.kv_heads;
  p.D = int(cfg.problem.head_dim);
  p.causal = cfg.attention.causal;
  p.dilated = cfg.attention.kind == driver::AttentionKind::dilated;
  p.mixing = cfg.attention.mixing;
  p.w = cfg.attention.segment_lengths;
  p.r = cfg.attention.dilation_rates;
  p.scale = cfg.effective_scale();
  p.q = read_npy(q);
  p.k = read_npy(k);
  p.v = read_npy(v);
  return p;
}

/// A fresh folder ringattn_test_<name>_<pid> under the system's temporary
/// folder: its own per process, since test binaries run at once (CTest -j,
/// the sanitizer and Kokkos 4 tiers) must not share outputs.
inline std::filesystem::path scratch_dir(const std::string &name) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("ringattn_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return dir;
}

} // namespace ringattn::test

#endif
