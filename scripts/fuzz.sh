#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ and runs each for SECONDS (default
# 30): fuzz_deck (the input deck parser) and fuzz_npy (the .npy reader).
# Built with clang++ -fsanitize=fuzzer,address,undefined from the driver's
# deck sources (Deck*.cpp, SetOverrides.cpp, Sweep.cpp) and the .npy sources
# (Npy.cpp, NpyFile.cpp; yaml-cpp is linked, not instrumented). Each target
# starts from its committed corpus (fuzz/corpus/<target>) and writes what it
# finds to BUILD_DIR/corpus/<target>; a crash, sanitizer report, leak or an
# input slower than 10 s fails the run, and the input that did it is left in
# BUILD_DIR/artifacts/ (replay: BUILD_DIR/fuzz_deck FILE).
#
#   scripts/fuzz.sh [SECONDS] [BUILD_DIR]      (default 30, /tmp/ringattn-fuzz)
#   scripts/fuzz.sh 3600                       an hour each, by hand
#
#   RINGATTN_FUZZ_CXX       clang++ with libFuzzer (default clang++)
#   RINGATTN_FUZZ_TARGETS   which targets (default "fuzz_deck fuzz_npy")
#   RINGATTN_FUZZ_JOBS      parallel fuzzing processes per target (default 1)
#   RINGATTN_FUZZ_MERGE=1   afterwards, merge the new finds into fuzz/corpus
#   RINGATTN_FUZZ_KOKKOS_INCLUDE  a host Kokkos' include folder (default: the
#                           scripts/bootstrap_kokkos.sh prefix)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-30}
build=${2:-/tmp/ringattn-fuzz}
cxx=${RINGATTN_FUZZ_CXX:-clang++}
targets=${RINGATTN_FUZZ_TARGETS:-fuzz_deck fuzz_npy}
jobs=${RINGATTN_FUZZ_JOBS:-1}
command -v "$cxx" >/dev/null || { echo "fuzz.sh: $cxx not found (clang++ with libFuzzer is needed)" >&2; exit 1; }

# Deck.hpp includes the pattern headers, which include Kokkos': headers only
# (nothing of Kokkos is linked), of a host-only Kokkos: the one CMake found
# (CTest passes it), else the project's bootstrap prefix.
kokkos_include=${RINGATTN_FUZZ_KOKKOS_INCLUDE:-}
[ -n "$kokkos_include" ] || kokkos_include="$(bash "$repo/scripts/bootstrap_kokkos.sh" | tail -n 1)/include"
mkdir -p "$build/artifacts" "$build/config"
# The configured RingAttn_Config.hpp, as a build without MPI and BLAS would
# have it (the deck code reads RINGATTN_ENABLE_MPI; nothing here links MPI).
sed -e 's/@PROJECT_VERSION_MAJOR@/0/; s/@PROJECT_VERSION_MINOR@/0/; s/@PROJECT_VERSION_PATCH@/0/' \
    -e 's/@PROJECT_VERSION@/fuzz/' -e 's|^#cmakedefine \(.*\)$|/* #undef \1 */|' \
    "$repo/src/RingAttn_Config.hpp.in" >"$build/config/RingAttn_Config.hpp"
flags=(-std=c++17 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -fopenmp -I"$repo/src/driver" -I"$repo/src"
       -I"$build/config"
       -isystem "$kokkos_include" -Wall -Wextra)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

status=0
for target in $targets; do
  case $target in
  fuzz_deck)
    sources=("$repo"/src/driver/Deck*.cpp "$repo/src/driver/SetOverrides.cpp"
             "$repo/src/driver/Sweep.cpp" "$repo/src/driver/Npy.cpp"
             "$repo/src/driver/NpyFile.cpp")
    libs=(-lyaml-cpp) ;;
  fuzz_npy) sources=("$repo/src/driver/Npy.cpp" "$repo/src/driver/NpyFile.cpp") libs=() ;;
  *) echo "fuzz.sh: unknown target $target" >&2; exit 1 ;;
  esac
  echo "[fuzz] building $target"
  "$cxx" "${flags[@]}" "$repo/fuzz/$target.cpp" "${sources[@]}" "${libs[@]}" -o "$build/$target"
  corpus="$build/corpus/${target#fuzz_}"
  mkdir -p "$corpus"
  dict=() parallel=()
  [ "$jobs" -gt 1 ] && parallel=(-jobs="$jobs" -workers="$jobs")
  [ -f "$repo/fuzz/${target#fuzz_}.dict" ] && dict=(-dict="$repo/fuzz/${target#fuzz_}.dict")
  echo "[fuzz] running $target for ${seconds}s (corpus: fuzz/corpus/${target#fuzz_} + $corpus)"
  if ! "$build/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -max_len=65536 \
      -print_final_stats=1 "${parallel[@]}" -artifact_prefix="$build/artifacts/$target-" \
      "${dict[@]}" "$corpus" "$repo/fuzz/corpus/${target#fuzz_}" >"$build/$target.log" 2>&1; then
    tail -n 60 "$build/$target.log"
    echo "[fuzz] $target FAILED; inputs in $build/artifacts/" >&2
    status=1
    continue
  fi
  grep -E '^stat::(number_of_executed_units|new_units_added|peak_rss_mb)' "$build/$target.log" || true
  if [ "${RINGATTN_FUZZ_MERGE:-0}" = 1 ]; then
    "$build/$target" -merge=1 "$repo/fuzz/corpus/${target#fuzz_}" "$corpus" >/dev/null 2>&1
    echo "[fuzz] merged new finds into fuzz/corpus/${target#fuzz_}"
  fi
done
exit $status
