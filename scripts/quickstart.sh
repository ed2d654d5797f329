#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs ringattn on a deck
# (inputs/quickstart.yaml unless another is given).
set -euo pipefail
cd "$(dirname "$0")/.."
deck=${1:-inputs/quickstart.yaml}
# Kokkos advises setting a binding; unbound threads also keep OpenBLAS off one core.
export OMP_PROC_BIND=${OMP_PROC_BIND:-false}
bash scripts/setup.sh
build=${RINGATTN_BUILD_DIR:-build}
"$build/src/driver/ringattn" run "$deck"
