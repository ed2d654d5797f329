#!/usr/bin/env bash
# The packaging test (docs/packaging.md), run by CTest as the test "packaging":
#   1. install RingAttn (MPI, driver) into a prefix, then move the prefix
#      elsewhere (relocatable) and check what it holds;
#   2. build examples/embed against the moved prefix (CMAKE_PREFIX_PATH holds
#      only it and the Kokkos prefix) and run it under mpirun -np 2 and -np 3;
#   3. configure, build and ctest RingAttn without MPI (simulated ring only),
#      install it, and build and run examples/embed against that install;
#   4. run the Spack recipe test (spack/test/test_package.py).
#
# Options:
#   --build-dir DIR     install step 1 from this build (configured with MPI and
#                       the driver, already built) instead of building anew
#   --prefix-path DIR   prefix of Kokkos (or another dependency); may be repeated
#                       (default: $Kokkos_ROOT, else scripts/bootstrap_kokkos.sh)
#   --cxx PATH          C++ compiler for the builds (default: CMake's choice)
#   --mpiexec PATH      default: mpirun
#   --python PATH       default: python3
#   --work DIR          scratch folder, emptied first (default: a new one under
#                       ${TMPDIR:-/tmp}); removed after success unless --keep,
#                       kept with its logs after a failure
#   --keep              keep the scratch folder after success too
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
build_dir="" prefix_path="" cxx="" mpiexec=mpirun python=python3 work="" keep=0
while [ $# -gt 0 ]; do
  case $1 in
    --build-dir) build_dir=$2; shift 2 ;;
    --prefix-path) prefix_path=${prefix_path:+$prefix_path;}$2; shift 2 ;;
    --cxx) cxx=$2; shift 2 ;;
    --mpiexec) mpiexec=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "test_packaging.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

if [ -z "$prefix_path" ]; then
  if [ -n "${Kokkos_ROOT:-}" ]; then
    prefix_path=$Kokkos_ROOT
  else
    prefix_path=$(bash "$src/scripts/bootstrap_kokkos.sh" | tail -n 1)
  fi
fi
if [ -z "$work" ]; then
  work=$(mktemp -d "${TMPDIR:-/tmp}/ringattn-packaging.XXXXXX")
else
  rm -rf "$work" && mkdir -p "$work"
fi
jobs=$(nproc 2>/dev/null || echo 2)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OMP_PROC_BIND=false
cmake_common=(-DCMAKE_BUILD_TYPE=Release)
[ -n "$cxx" ] && cmake_common+=(-DCMAKE_CXX_COMPILER="$cxx")
mkdir -p "$work/logs"
# An Open MPI session folder of this script's own unless the caller (CTest)
# gave one: concurrent jobs race on a shared one (open-mpi/ompi#8510).
if [ -z "${OMPI_MCA_orte_tmpdir_base:-}" ]; then
  export OMPI_MCA_orte_tmpdir_base="$work/ompi" PRTE_MCA_prte_tmpdir_base="$work/ompi"
fi
start=$SECONDS

say() { echo "[packaging $((SECONDS - start))s] $*"; }
fail() { echo "[packaging] FAILED: $* (logs in $work/logs)" >&2; exit 1; }
# run LOG CMD...: output to $work/logs/LOG.log, shown when the command fails.
run() {
  local log="$work/logs/$1.log"; shift
  if ! "$@" >"$log" 2>&1; then
    echo "[packaging] command failed: $*" >&2
    tail -n 60 "$log" >&2
    fail "$(basename "$log" .log)"
  fi
}
expect_file() { [ -f "$1" ] || fail "missing $1"; }

# ---- 1. install, move the prefix, check it ---------------------------------
stage="$work/stage"
if [ -n "$build_dir" ]; then
  say "1. installing the build in $build_dir"
  run install cmake --install "$build_dir" --prefix "$stage"
else
  say "1. configuring, building and installing RingAttn (MPI, driver; no tests)"
  run configure-mpi cmake -S "$src" -B "$work/build-mpi" "${cmake_common[@]}" \
    -DCMAKE_PREFIX_PATH="$prefix_path" -DCMAKE_INSTALL_PREFIX="$stage" \
    -DRingAttn_ENABLE_MPI=ON -DRingAttn_ENABLE_DRIVER=ON \
    -DRingAttn_ENABLE_TESTS=OFF -DRingAttn_ENABLE_PERF_TESTS=OFF
  run build-mpi cmake --build "$work/build-mpi" -j "$jobs"
  run install cmake --install "$work/build-mpi"
fi
prefix="$work/moved/elsewhere/ringattn"
mkdir -p "$(dirname "$prefix")"
mv "$stage" "$prefix"
cfg="$prefix/lib/cmake/RingAttn"
for f in include/RingAttn/RingAttn.hpp include/RingAttn/RingAttn_Config.hpp \
         include/RingAttn/api/RingAttn_RingAttention.hpp include/RingAttn/ring/detail/RingAttn_MpiRing.hpp \
         lib/cmake/RingAttn/RingAttnConfig.cmake lib/cmake/RingAttn/RingAttnConfigVersion.cmake \
         lib/cmake/RingAttn/RingAttnTargets.cmake bin/ringattn; do
  expect_file "$prefix/$f"
done
# Relocatable: the package names neither the source tree, the build tree nor
# the prefix it was installed to.
for path in "$src" "$stage" ${build_dir:+"$build_dir"} "$work/build-mpi"; do
  if grep -rlF "$path" "$prefix/lib" "$prefix/include" >"$work/logs/paths.log"; then
    cat "$work/logs/paths.log" >&2
    fail "the installed package refers to $path"
  fi
done
grep -q '^set(RingAttn_ENABLE_MPI ON)' "$cfg/RingAttnConfig.cmake" || fail "config: MPI not ON"
grep -q 'RINGATTN_ENABLE_MPI' "$prefix/include/RingAttn/RingAttn_Config.hpp" || fail "header: no MPI macro"
run validate "$prefix/bin/ringattn" validate "$src/inputs/quickstart.yaml"
# The version file: this version exactly; not a later minor or major one.
version=$(sed -n 's/^set(PACKAGE_VERSION "\(.*\)")$/\1/p' "$cfg/RingAttnConfigVersion.cmake")
IFS=. read -r major minor _ <<<"$version"
mkdir -p "$work/versioncheck"
cat >"$work/versioncheck/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.16)
project(RingAttnVersionCheck LANGUAGES CXX)
find_package(RingAttn $major.$((minor + 1)) QUIET)
if(RingAttn_FOUND)
  message(FATAL_ERROR "RingAttn $version accepted for $major.$((minor + 1))")
endif()
find_package(RingAttn $((major + 1)).0 QUIET)
if(RingAttn_FOUND)
  message(FATAL_ERROR "RingAttn $version accepted for $((major + 1)).0")
endif()
find_package(RingAttn $version EXACT REQUIRED)
EOF
run versioncheck cmake -S "$work/versioncheck" -B "$work/versioncheck/build" "${cmake_common[@]}" \
  -DCMAKE_PREFIX_PATH="$prefix;$prefix_path"
say "   installed RingAttn $version, moved to $prefix: layout, paths, version file and the ringattn program OK"

# ---- 2. examples/embed against the moved prefix, under mpirun --------------
say "2. building examples/embed against the installed package"
run configure-embed cmake -S "$src/examples/embed" -B "$work/embed" "${cmake_common[@]}" \
  -DCMAKE_PREFIX_PATH="$prefix;$prefix_path" -DCMAKE_CXX_FLAGS=-Werror
grep -q "RingAttn $version (.*): MPI ON" "$work/logs/configure-embed.log" ||
  fail "examples/embed did not see RingAttn $version with MPI ON"
run build-embed cmake --build "$work/embed" -j "$jobs"
for np in 2 3; do
  ring=$((np < 3 ? np : np - 1))
  run "embed-np$np" "$mpiexec" -np "$np" --oversubscribe "$work/embed/embed"
  grep "^embed:" "$work/logs/embed-np$np.log"
  grep -q "ring of $ring ranks (sub-communicator of $np)" "$work/logs/embed-np$np.log" ||
    fail "embed -np $np: no ring of $ring ranks"
  grep -q "^embed: PASSED" "$work/logs/embed-np$np.log" || fail "embed -np $np"
done

# ---- 3. without MPI ----------------------------------------------------------
say "3. configuring, building and testing RingAttn without MPI"
nompi_prefix="$work/nompi-prefix"
run configure-nompi cmake -S "$src" -B "$work/build-nompi" "${cmake_common[@]}" --no-warn-unused-cli \
  -DCMAKE_PREFIX_PATH="$prefix_path" -DCMAKE_INSTALL_PREFIX="$nompi_prefix" \
  -DRingAttn_ENABLE_MPI=OFF -DCMAKE_DISABLE_FIND_PACKAGE_MPI=ON \
  -DRingAttn_ENABLE_TESTS=ON -DRingAttn_ENABLE_PACKAGING_TESTS=OFF -DRingAttn_ENABLE_KOKKOS4_TEST=OFF \
  -DRingAttn_ENABLE_CUDA_BUILD_TEST=OFF
run build-nompi cmake --build "$work/build-nompi" -j "$jobs"
(cd "$work/build-nompi" && ctest -N) >"$work/logs/ctest-list.log"
if grep -qi "mpi_tests" "$work/logs/ctest-list.log"; then fail "MPI tests registered without MPI"; fi
grep -q "cli_no_mpi_refuses_mode_mpi" "$work/logs/ctest-list.log" ||
  fail "the no-MPI build lacks its mode mpi refusal test"
run ctest-nompi bash -c 'cd "$1" && ctest --output-on-failure --timeout 900 -LE full' _ "$work/build-nompi"
grep -E "tests passed|Total Test time" "$work/logs/ctest-nompi.log"
run install-nompi cmake --install "$work/build-nompi"
grep -q '^set(RingAttn_ENABLE_MPI OFF)' "$nompi_prefix/lib/cmake/RingAttn/RingAttnConfig.cmake" ||
  fail "no-MPI config: MPI not OFF"
if grep -q "MPI::" "$nompi_prefix/lib/cmake/RingAttn/RingAttnTargets.cmake"; then
  fail "the no-MPI package links MPI"
fi
run configure-embed-nompi cmake -S "$src/examples/embed" -B "$work/embed-nompi" "${cmake_common[@]}" \
  --no-warn-unused-cli -DCMAKE_PREFIX_PATH="$nompi_prefix;$prefix_path" \
  -DCMAKE_DISABLE_FIND_PACKAGE_MPI=ON -DCMAKE_CXX_FLAGS=-Werror
run build-embed-nompi cmake --build "$work/embed-nompi" -j "$jobs"
run embed-nompi "$work/embed-nompi/embed"
grep "^embed:" "$work/logs/embed-nompi.log"
grep -q "^embed: PASSED" "$work/logs/embed-nompi.log" || fail "embed without MPI"

# ---- 4. the Spack recipe ------------------------------------------------------
say "4. Spack recipe test"
run recipe "$python" "$src/spack/test/test_package.py" -v
grep -E "^(Ran |OK|FAILED)" "$work/logs/recipe.log"

say "all packaging checks passed"
[ "$keep" = 1 ] || rm -rf "$work"
