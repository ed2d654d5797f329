#!/usr/bin/env bash
# Sets RingAttn up on a fresh Debian machine and builds it:
#   1. Debian packages (compiler, CMake, OpenMPI, yaml-cpp, Catch2, OpenBLAS)
#   2. Kokkos 3.4.1, built once into a cache prefix
#      (skipped when Kokkos_ROOT points at a Kokkos of your own)
#   3. Intel MKL from PyPI (`mkl`, `mkl-include`) into a venv in the cache,
#      the default provider of the host tile GEMMs (skipped when MKLROOT is
#      set, or with -DRingAttn_BLAS_PROVIDER=OpenBLAS; when pip fails the
#      build falls back to OpenBLAS)
#   4. configure and build in ./build (RINGATTN_BUILD_DIR to change)
# Extra CMake arguments may follow, e.g. scripts/setup.sh -DRingAttn_ENABLE_MPI=OFF
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install_system_deps.sh
if [ -n "${Kokkos_ROOT:-}" ]; then
  prefix=$Kokkos_ROOT
else
  prefix=$(bash scripts/bootstrap_kokkos.sh | tail -n 1)
fi

mkl_venv="$HOME/.cache/ringattn/mkl-venv"
if [ -z "${MKLROOT:-}" ] && [[ " $* " != *"RingAttn_BLAS_PROVIDER=OpenBLAS"* ]] &&
   [ ! -e "$mkl_venv/include/mkl_cblas.h" ]; then
  echo "[setup] installing Intel MKL into $mkl_venv (pip install mkl mkl-include)"
  if ! { python3 -m venv "$mkl_venv" && "$mkl_venv/bin/pip" install -q mkl mkl-include; }; then
    echo "[setup] MKL could not be installed; the tile GEMMs will use OpenBLAS"
  fi
fi

build=${RINGATTN_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
  -DRingAttn_ENABLE_NATIVE=ON "$@"
cmake --build "$build" -j "$(nproc)"
echo "[setup] built in $build (Kokkos from $prefix)"
