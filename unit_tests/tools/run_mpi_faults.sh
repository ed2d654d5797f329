#!/usr/bin/env bash
# Faults across ranks: an error on one rank, or a rank killed mid-ring, ends
# the whole job with a non-zero exit within a bounded time (no hang) and
# leaves no output file behind.
#   run_mpi_faults.sh RINGATTN DECK
set -uo pipefail
ringattn=$1 deck=$2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OMP_PROC_BIND=false
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# An Open MPI session folder of this script's own unless the caller (CTest)
# gave one: concurrent jobs race on a shared one (open-mpi/ompi#8510).
if [ -z "${OMPI_MCA_orte_tmpdir_base:-}" ]; then
  export OMPI_MCA_orte_tmpdir_base="$out/ompi" PRTE_MCA_prte_tmpdir_base="$out/ompi"
fi
status=0
for fault in load:1 kill:2 throw:1; do
  echo "== RINGATTN_TEST_FAULT=$fault"
  start=$(date +%s)
  RINGATTN_TEST_FAULT=$fault timeout 120 mpirun -np 3 --oversubscribe "$ringattn" run "$deck" \
    --quiet --set ring.mode=mpi --set output.o="$out/o.npy" --set output.lse="$out/lse.npy" \
    --set output.results="$out/results.yaml" >"$out/log" 2>&1
  rc=$?
  took=$(( $(date +%s) - start ))
  tail -n 3 "$out/log"
  if [ $rc -eq 0 ] || [ $rc -eq 124 ]; then
    echo "FAIL: fault $fault gave exit $rc after ${took}s (expected a non-zero exit, no hang)"; status=1
  fi
  if [ $took -gt 30 ]; then # the job ends seconds after the fault, not at a timeout
    echo "FAIL: fault $fault took ${took}s to end the job (bound: 30s)"; status=1
  fi
  if [ -e "$out/o.npy" ] || [ -e "$out/lse.npy" ] || [ -e "$out/results.yaml" ]; then
    echo "FAIL: fault $fault left an output file"; ls "$out"; status=1
  fi
  echo "exit $rc after ${took}s"
  rm -f "$out"/*.tmp.* # a killed job may leave its temporary files; never the final names
done
exit $status
