#!/usr/bin/env bash
# Builds Kokkos 3.4.1 (Serial + OpenMP) from Debian's Trilinos 13.2 source
# package into a cache prefix, once per machine, and prints the prefix on its
# last line. Reused when already built (a prefix an older version of this
# script filled, which also holds Kokkos Kernels, is reused as it is: RingAttn
# does not use Kokkos Kernels).
#
#   RINGATTN_DEPS_PREFIX  where to install   (default ~/.cache/ringattn/kokkos-3.4.1)
#   RINGATTN_KOKKOS_CUDA  =1 builds a CUDA + Serial variant instead (see scripts/build_cuda.sh)
#   RINGATTN_KOKKOS_EXTRA_CMAKE_ARGS  more Kokkos CMake options, e.g.
#                         -DKokkos_ENABLE_DEBUG_BOUNDS_CHECK=ON (give such a
#                         variant its own RINGATTN_DEPS_PREFIX; see
#                         scripts/test_sanitizers.sh)
#
# The Debian mirror is taken from the machine's own apt configuration; the
# system's apt sources are left untouched (a private sources list and state
# directory are used for the source download).
set -euo pipefail

prefix=${RINGATTN_DEPS_PREFIX:-$HOME/.cache/ringattn/kokkos-3.4.1}
stamp="$prefix/.ringattn-complete"
if [ -f "$stamp" ]; then
  echo "[kokkos] reusing $prefix" >&2
  echo "$prefix"
  exit 0
fi

work=${RINGATTN_DEPS_WORK:-$HOME/.cache/ringattn/src}
mkdir -p "$work"
cd "$work"

# --- 1. fetch the Trilinos source package through apt -------------------------
if ! ls trilinos_13.2*.orig.tar.* >/dev/null 2>&1; then
  # The first Debian archive URI of the machine's apt sources (deb822 or one-line).
  mirror=$( { grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}';
              grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
                sed -E 's/^deb (\[[^]]*\] )?//' | awk '{print $1}'; } |
            grep -v -- '-security' | head -n 1 || true)
  suite=$( { grep -h '^Suites:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}';
             grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | sed -E 's/^deb (\[[^]]*\] )?//' | awk '{print $2}'; } |
           head -n 1 || true)
  [ -n "$mirror" ] && [ -n "$suite" ] || { echo "[kokkos] cannot find a Debian mirror in apt's sources" >&2; exit 1; }
  echo "[kokkos] source package from the apt mirror ($suite)" >&2
  aptdir="$work/apt"
  mkdir -p "$aptdir/lists/partial" "$aptdir/archives/partial"
  echo "deb-src $mirror $suite main" > "$aptdir/sources.list"
  aptopts=(-o "Dir::Etc::SourceList=$aptdir/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
           -o "Dir::State::Lists=$aptdir/lists" -o "Dir::Cache::Archives=$aptdir/archives"
           -o "APT::Sandbox::User=root" -o "Acquire::Languages=none")
  apt-get "${aptopts[@]}" update -q >&2
  apt-get "${aptopts[@]}" source --download-only -q trilinos >&2
fi
tarball=$(ls trilinos_13.2*.orig.tar.* | head -n 1)

# --- 2. extract only packages/kokkos ------------------------------------------
if [ ! -d kokkos-src ]; then
  echo "[kokkos] extracting kokkos from $tarball" >&2
  rm -rf extract && mkdir extract
  tar -xf "$tarball" -C extract --wildcards '*/packages/kokkos/*'
  top=$(ls extract | head -n 1)
  rm -rf kokkos-src
  mv "extract/$top/packages/kokkos" kokkos-src
  rm -rf extract
fi

# --- 3. build and install ----------------------------------------------------
jobs=$(nproc)
if [ "${RINGATTN_KOKKOS_CUDA:-0}" = 1 ]; then
  backend_args=(-DKokkos_ENABLE_CUDA=ON -DKokkos_ENABLE_SERIAL=ON -DKokkos_ARCH_AMPERE80=ON
                -DKokkos_ENABLE_CUDA_LAMBDA=ON
                -DCMAKE_CXX_COMPILER="$work/kokkos-src/bin/nvcc_wrapper")
else
  backend_args=(-DKokkos_ENABLE_SERIAL=ON -DKokkos_ENABLE_OPENMP=ON)
fi
build="$work/build-$(basename "$prefix")"
rm -rf "$build"
echo "[kokkos] building Kokkos 3.4.1 into $prefix" >&2
cmake -S kokkos-src -B "$build/kokkos" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_STANDARD=17 \
  -DCMAKE_INSTALL_PREFIX="$prefix" -DBUILD_SHARED_LIBS=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
  "${backend_args[@]}" ${RINGATTN_KOKKOS_EXTRA_CMAKE_ARGS:-} >&2
cmake --build "$build/kokkos" -j "$jobs" >&2
cmake --install "$build/kokkos" >&2

rm -rf "$build"
touch "$stamp"
echo "$prefix"
