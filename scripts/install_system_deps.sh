#!/usr/bin/env bash
# Installs the Debian packages RingAttn builds and tests with (the whole
# toolchain: compiler, CMake, OpenMPI, yaml-cpp, Catch2, OpenBLAS, Python for
# the plotting script and the venvs of scripts/setup.sh (MKL) and
# perf_tests/compare_torch.py (PyTorch), libxsmm for the tile-GEMM probe,
# clang with libFuzzer for the fuzzers). Idempotent; does nothing when
# everything is present.
set -euo pipefail

packages=(cmake make g++ pkg-config xz-utils dpkg-dev
          libopenmpi-dev openmpi-bin libyaml-cpp-dev catch2 libopenblas-dev
          python3 python3-numpy python3-matplotlib python3-yaml python3-venv
          libxsmm-dev # timed by perf_tests/ringattn_tile_gemm_probe
          clang libclang-rt-dev libomp-dev) # the fuzzers (scripts/fuzz.sh)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "[deps] system packages present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
echo "[deps] installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
