#!/usr/bin/env bash
# The project's code under AddressSanitizer + UndefinedBehaviorSanitizer,
# built against a Kokkos with Kokkos_ENABLE_DEBUG_BOUNDS_CHECK (every View
# access checked; Kokkos itself is not sanitized). One build does both:
#   1. Kokkos 3.4.1 with bounds checking, built once into
#      ~/.cache/ringattn/kokkos-3.4.1-boundscheck (scripts/bootstrap_kokkos.sh)
#   2. RingAttn with -fsanitize=address,undefined -fno-sanitize-recover=undefined
#      at -O0 -g1 (line tables: quick to compile, file:line in reports),
#      without -march=native and benchmarks, in BUILD_DIR
#   3. runs the unit tests (all but two slow cases, see `tags`), the MPI
#      tests at np 2, and the serial hostile-input table against the
#      sanitized ringattn
#
#   scripts/test_sanitizers.sh [BUILD_DIR]     (default /tmp/ringattn-sanitizers)
#
#   RINGATTN_SANITIZER_TAGS      Catch test spec for the unit tests
#   RINGATTN_SANITIZER_CXX       C++ compiler (default: c++)
#   RINGATTN_BOUNDS_CHECK_PREFIX the bounds-checked Kokkos prefix
#
# Leak detection is off (ASAN_OPTIONS=detect_leaks=0): OpenMPI's and
# OpenBLAS's one-time allocations, never freed, drown any report. Every other
# ASan and UBSan finding ends the run with an error.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-/tmp/ringattn-sanitizers}
# An Open MPI session folder of this script's own unless the caller (CTest)
# gave one: concurrent jobs race on a shared one (open-mpi/ompi#8510).
if [ -z "${OMPI_MCA_orte_tmpdir_base:-}" ]; then
  export OMPI_MCA_orte_tmpdir_base="$build-ompi" PRTE_MCA_prte_tmpdir_base="$build-ompi"
fi
start=$(date +%s)
log() { echo "[sanitizers $(($(date +%s) - start))s] $*"; }

# All unit tests but the two long-sequence kernel cases (a minute under the
# sanitizers; the same kernels run on the other attention cases).
tags=${RINGATTN_SANITIZER_TAGS:-"~long sequences*"}

log "Kokkos with bounds checking"
kokkos=$(RINGATTN_DEPS_PREFIX=${RINGATTN_BOUNDS_CHECK_PREFIX:-$HOME/.cache/ringattn/kokkos-3.4.1-boundscheck} \
  RINGATTN_KOKKOS_EXTRA_CMAKE_ARGS="-DKokkos_ENABLE_DEBUG_BOUNDS_CHECK=ON" \
  bash "$repo/scripts/bootstrap_kokkos.sh" | tail -n 1)
grep -q '^#define KOKKOS_ENABLE_DEBUG_BOUNDS_CHECK' "$kokkos/include/KokkosCore_config.h" ||
  { echo "$kokkos: Kokkos was built without bounds checking" >&2; exit 1; }

log "configure in $build"
san="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER="${RINGATTN_SANITIZER_CXX:-c++}" \
  -DCMAKE_CXX_FLAGS_DEBUG="-O0 -g1" -DCMAKE_CXX_FLAGS="$san" -DCMAKE_PREFIX_PATH="$kokkos" \
  -DRingAttn_ENABLE_NATIVE=OFF -DRingAttn_ENABLE_PERF_TESTS=OFF -DRingAttn_ENABLE_PACKAGING_TESTS=OFF \
  -DRingAttn_ENABLE_CUDA_BUILD_TEST=OFF >"$build.configure.log" 2>&1 ||
  { cat "$build.configure.log"; exit 1; }
log "build"
targets=(ringattn_unit_tests ringattn_exe ringattn_make_npy)
grep -q '^RingAttn_ENABLE_MPI:BOOL=ON' "$build/CMakeCache.txt" && targets+=(ringattn_mpi_tests)
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}" >"$build.build.log" 2>&1 ||
  { tail -n 60 "$build.build.log"; exit 1; }

# allocator_may_return_null: a huge allocation fails as in a normal build
# (Kokkos reports it), instead of ASan ending the run.
export ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1:halt_on_error=1:detect_stack_use_after_return=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export OMP_NUM_THREADS=2 OMP_PROC_BIND=false
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

# step NAME COMMAND...: runs it with its output in BUILD_DIR.NAME.log; on
# failure shows the end of the log (and the failures) and stops.
step() {
  local name=$1
  shift
  log "$name"
  if "$@" >"$build.$name.log" 2>&1; then
    tail -n 2 "$build.$name.log"
  else
    grep -E -A 12 '^FAIL|FAILED|ERROR: [A-Za-z]+Sanitizer|runtime error:' "$build.$name.log" |
      head -n 150 || true
    echo "..."
    tail -n 30 "$build.$name.log"
    log "$name FAILED (log: $build.$name.log)"
    exit 1
  fi
}

# The brute-force traffic enumeration and the backward's random sweeps
# (their float64 reference is a host loop) run for many minutes under ASan
# and bounds checks; the same kernels and plans run on the other cases
# (golden gradients, empty rows, float64, simulated rings). So does the
# 16-bit chunked running O at N = 8,192 and eight heads (a float64 reference
# of N^2 H pairs per case); its chunked path runs here in tstRingPlan's and
# the MPI tests' 16-bit plan cases.
step unit_tests "$build/unit_tests/ringattn_unit_tests" "$tags" "~[traffic]" \
  "~backward: long sequences*" "~backward: random shapes*" "~backward: the portable kernel*" \
  "~16-bit storage: a member whose own block*"
if [ -x "$build/unit_tests/ringattn_mpi_tests" ]; then
  step mpi_tests_np2 env OMP_NUM_THREADS=1 mpirun -np 2 "$build/unit_tests/ringattn_mpi_tests"
  step mpi_errors_np2 env OMP_NUM_THREADS=1 mpirun -np 2 "$build/unit_tests/ringattn_mpi_tests" "[errors]"
fi
step hostile_inputs bash "$repo/unit_tests/tools/run_hostile.sh" "$build/src/driver/ringattn" \
  "$build/ringattn_make_npy" "$repo/unit_tests/hostile/cases.tsv" serial
log "passed"
