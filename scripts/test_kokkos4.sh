#!/usr/bin/env bash
# The Kokkos 4.x tier, run by CTest as the test "kokkos4" (label full):
#   1. builds Kokkos 4.6.01 (Serial + OpenMP, C++17, deprecated 4.x code off)
#      from the unchanged source release in ../shared/deps, once per machine,
#      into ~/.cache/ringattn/kokkos-4.6.01 (a completion stamp, as
#      scripts/bootstrap_kokkos.sh does); Kokkos Kernels 4.6.02 on top (ETI
#      for float and double only, BLAS TPL off, tests off) only while the
#      project's CMakeLists still asks for KokkosKernels;
#   2. configures RingAttn against it in C++20 (the strictest standard it
#      supports, and the one Kokkos 5 needs), builds the unit tests, the MPI
#      tests and the program, and runs the unit tests, the MPI tests at 2
#      ranks (results and collective errors), the program's golden cases
#      under mpirun and the CLI checks. (C++17 against Kokkos 3.4.1 is the
#      main build; one build here keeps the CI tier inside its time.)
# Skipped (exit 0, saying so) when the deps folder is absent: a clone does not
# have it.
#
#   RINGATTN_KOKKOS4_DEPS    folder holding kokkos-4.6.01.tar.xz and
#                            kokkos-kernels-4.6.02.tar.xz
#                            (default: <repo root>/../shared/deps)
#   RINGATTN_KOKKOS4_PREFIX  install prefix (default ~/.cache/ringattn/kokkos-4.6.01)
#   RINGATTN_KOKKOS4_WORK    where the sources unpack (default ~/.cache/ringattn/src-4.6)
#
# Usage: scripts/test_kokkos4.sh [BUILD_DIR]   (default: build-kokkos4 in the repo)
#        scripts/test_kokkos4.sh --bootstrap-only
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
top=$(git -C "$src" rev-parse --show-toplevel 2>/dev/null || echo "$src")
deps=${RINGATTN_KOKKOS4_DEPS:-$top/../shared/deps}
kokkos_tar=$deps/kokkos-4.6.01.tar.xz
kk_tar=$deps/kokkos-kernels-4.6.02.tar.xz
if [ ! -f "$kokkos_tar" ]; then
  if [ -n "${RINGATTN_KOKKOS4_DEPS:-}" ]; then
    echo "[kokkos4] skipped: $kokkos_tar not found (RINGATTN_KOKKOS4_DEPS)"
  else
    echo "[kokkos4] skipped: ../shared/deps not found"
  fi
  exit 0
fi

bootstrap_only=0
build=""
case ${1:-} in
  --bootstrap-only) bootstrap_only=1 ;;
  "") build=$src/build-kokkos4 ;;
  *) build=$1 ;;
esac

prefix=${RINGATTN_KOKKOS4_PREFIX:-$HOME/.cache/ringattn/kokkos-4.6.01}
work=${RINGATTN_KOKKOS4_WORK:-$HOME/.cache/ringattn/src-4.6}
jobs=$(nproc)
t0=$SECONDS
log() { echo "[kokkos4] $* ($((SECONDS - t0)) s)"; }

# --- 1. Kokkos 4.6.01 (and Kokkos Kernels 4.6.02 while the project needs it) --
mkdir -p "$work"
if [ ! -f "$prefix/.ringattn-kokkos-complete" ]; then
  log "building Kokkos 4.6.01 into $prefix"
  rm -rf "$work/kokkos-4.6.01" "$work/build-kokkos"
  tar -xf "$kokkos_tar" -C "$work"
  cmake -S "$work/kokkos-4.6.01" -B "$work/build-kokkos" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_STANDARD=17 -DCMAKE_INSTALL_PREFIX="$prefix" -DBUILD_SHARED_LIBS=OFF \
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DKokkos_ENABLE_SERIAL=ON -DKokkos_ENABLE_OPENMP=ON \
    -DKokkos_ENABLE_DEPRECATED_CODE_4=OFF -DKokkos_ENABLE_TESTS=OFF >/dev/null
  cmake --build "$work/build-kokkos" -j "$jobs" >/dev/null
  cmake --install "$work/build-kokkos" >/dev/null
  rm -rf "$work/build-kokkos" "$work/kokkos-4.6.01"
  touch "$prefix/.ringattn-kokkos-complete"
  log "Kokkos 4.6.01 installed"
else
  log "reusing Kokkos 4.6.01 in $prefix"
fi

if grep -q 'find_package(KokkosKernels' "$src/CMakeLists.txt"; then
  if [ ! -f "$prefix/.ringattn-kokkoskernels-complete" ]; then
    [ -f "$kk_tar" ] || { echo "[kokkos4] the project asks for KokkosKernels but $kk_tar is missing" >&2; exit 1; }
    log "building Kokkos Kernels 4.6.02 into $prefix (ETI float and double)"
    rm -rf "$work/kokkos-kernels-4.6.02" "$work/build-kk"
    tar -xf "$kk_tar" -C "$work"
    cmake -S "$work/kokkos-kernels-4.6.02" -B "$work/build-kk" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_CXX_STANDARD=17 -DCMAKE_INSTALL_PREFIX="$prefix" -DKokkos_ROOT="$prefix" \
      -DBUILD_SHARED_LIBS=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
      -DKokkosKernels_ENABLE_TESTS=OFF -DKokkosKernels_ENABLE_EXAMPLES=OFF \
      -DKokkosKernels_ENABLE_PERFTESTS=OFF -DKokkosKernels_ENABLE_TPL_BLAS=OFF \
      -DKokkosKernels_ADD_DEFAULT_ETI=OFF -DKokkosKernels_INST_FLOAT=ON -DKokkosKernels_INST_DOUBLE=ON \
      -DKokkosKernels_INST_COMPLEX_FLOAT=OFF -DKokkosKernels_INST_COMPLEX_DOUBLE=OFF \
      -DKokkosKernels_INST_LAYOUTLEFT=ON -DKokkosKernels_INST_LAYOUTRIGHT=OFF \
      -DKokkosKernels_INST_ORDINAL_INT=ON -DKokkosKernels_INST_OFFSET_INT=ON \
      -DKokkosKernels_INST_OFFSET_SIZE_T=ON >/dev/null
    cmake --build "$work/build-kk" -j "$jobs" >/dev/null
    cmake --install "$work/build-kk" >/dev/null
    rm -rf "$work/build-kk" "$work/kokkos-kernels-4.6.02"
    touch "$prefix/.ringattn-kokkoskernels-complete"
    log "Kokkos Kernels 4.6.02 installed"
  else
    log "reusing Kokkos Kernels 4.6.02 in $prefix"
  fi
else
  log "the project does not ask for KokkosKernels: Kokkos Kernels 4.6.02 not built"
fi
[ "$bootstrap_only" = 1 ] && { echo "$prefix"; exit 0; }

# --- 2. RingAttn in C++20 against Kokkos 4.6.01 ------------------------------
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p "$build"
configure() { # folder, C++ standard
  cmake -S "$src" -B "$1" -G "Unix Makefiles" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_CXX_STANDARD="$2" -DRingAttn_ENABLE_NATIVE=ON -DRingAttn_MPI_TEST_RANKS="1;2" \
    -DRingAttn_ENABLE_PACKAGING_TESTS=OFF -DRingAttn_ENABLE_CUDA_BUILD_TEST=OFF \
    -DRingAttn_ENABLE_KOKKOS4_TEST=OFF -DRingAttn_ENABLE_RELIABILITY_TESTS=OFF >"$1.configure.log" 2>&1 ||
    { cat "$1.configure.log" >&2; echo "[kokkos4] configure (C++$2) failed" >&2; exit 1; }
  # The compile line itself, not only the cache: the top-level CMakeLists once
  # overrode the standard given on the command line.
  grep -q -- "-std=c++$2\b" "$1/unit_tests/CMakeFiles/ringattn_unit_tests.dir/flags.make" ||
    { echo "[kokkos4] CMAKE_CXX_STANDARD=$2 was not honoured (no -std=c++$2)" >&2; exit 1; }
}
log "configuring RingAttn (C++20) in $build/cxx20"
configure "$build/cxx20" 20
cmake --build "$build/cxx20" -j "$jobs" \
  --target ringattn_unit_tests ringattn_mpi_tests ringattn_exe ringattn_npy_compare \
  >"$build/cxx20.build.log" 2>&1 ||
  { tail -n 60 "$build/cxx20.build.log" >&2; echo "[kokkos4] build (C++20) failed" >&2; exit 1; }
log "built (C++20); running the unit, MPI (np 2) and program tests"
(cd "$build/cxx20" && ctest --output-on-failure --timeout 900 \
  -R '^(unit_tests|mpi_tests_np2|mpi_errors_np2|driver_mpi_golden_np2|cli_.*)$')
log "passed: Kokkos 4.6.01, C++20 (build + unit, MPI and program tests)"
