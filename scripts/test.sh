#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the whole test suite:
# unit tests on the Serial and OpenMP (2 threads) backends, MPI tests at
# 1 to 4 ranks, driver and deck tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "$@"
build=${RINGATTN_BUILD_DIR:-build}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cd "$build"
ctest --output-on-failure --timeout 1200
